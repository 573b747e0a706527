//! `iicp_client::transport` without the client: frame codec and typed CBOR
//! messages, from the main crate's files (`#[path]` is relative to `fuzz/src/`).

#[path = "../../src/transport/cbor/mod.rs"]
mod cbor;
#[path = "../../src/transport/frame.rs"]
mod frame;
#[path = "../../src/transport/kind.rs"]
pub mod kind;
#[path = "../../src/transport/message/mod.rs"]
mod message;
#[path = "../../src/transport/reason.rs"]
mod reason;

pub use cbor::{CborLimits, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS};
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
pub use reason::CloseReason;
