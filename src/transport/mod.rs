//! The native IICP transport (`iicp-tcp`, PROTOCOL.md §7.1): binary frames
//! with a 12-byte header and CBOR payloads with integer keys.
//!
//! The framing layer knows bytes, not tasks: [`FrameCodec`] turns bytes into
//! [`Frame`]s (and back) for a `Framed` socket, and [`Message`] turns a
//! frame's payload into typed messages ([`Init`], [`Call`], [`Response`], …)
//! and back. Every decoding error names the CLOSE reason to send
//! ([`FrameError::close_reason`], [`MessageError::close_reason`]). Above it,
//! [`NativeClient`] is the consumer's side of a connection (handshake, ping,
//! discover, multiplexed buffered and streaming calls), and [`NativePool`]
//! keeps such connections per endpoint for reuse; the node's side is
//! the session in `node/native.rs`, in front of the task pipeline.
//!
//! Guarantees:
//! - a frame's length is checked against the codec's maximum before any
//!   buffer is reserved for it;
//! - decoding never panics, never recurses without bound and never allocates
//!   more than a small multiple of the frame it reads;
//! - input is lenient (any key order, unknown keys ignored, every key layout
//!   PROTOCOL.md lists), output is deterministic CBOR (map keys ascending,
//!   shortest integer and float forms, definite lengths).

mod cbor;
mod client;
mod frame;
pub mod kind;
mod message;
mod pool;
mod reason;
mod writer;

/// Typed reading of integer-keyed maps, for the relay's reading of a
/// worker's RESPONSE (key 5 beside key 100, which no message type keeps).
#[cfg_attr(not(feature = "iicp-tcp"), allow(unused_imports))]
pub(crate) use cbor::Fields;
pub use cbor::{CborLimits, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS};
pub(crate) use client::{Failure, answer_value};
pub use client::{NativeClient, NativeOptions, StreamStep};
pub use frame::{
    DEFAULT_MAX_FRAME_PAYLOAD, FRAMING_VERSION, Frame, FrameCodec, FrameError, FrameHeader,
    HEADER_LEN, MAGIC, decode_one, flags,
};
pub use message::{
    Ack, BufferedError, BufferedResponse, Call, Close, Discover, DiscoverQuery, DiscoverReply,
    Echo, Init, Lifecycle, LifecycleEvent, MAX_BIND_TICKET, MAX_ECHO_LEN, MAX_RELAY_MODELS,
    MAX_RELAY_TEXT, Message, MessageError, RelayAck, RelayBind, Response, ResultEncoding,
    SpecError, SpecResponse,
};
pub(crate) use pool::Resolver;
pub use pool::{NativePool, PoolOptions};
pub use reason::CloseReason;
pub(crate) use writer::spawn_writer;
