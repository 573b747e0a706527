//! Typed native messages (PROTOCOL.md §7.1): each is a CBOR map with integer
//! keys in a frame of its type.
//!
//! Every message type has `decode(payload)`, `decode_with(payload, limits)`,
//! `encode()` and (when it has one frame type) `to_frame()`; [`Message`]
//! dispatches on the frame type. Decoding accepts any key order, ignores
//! unknown keys and reads every key layout PROTOCOL.md lists; encoding writes
//! deterministic CBOR. Fields are optional where a peer may leave them out;
//! what to do about a missing one is the session's decision.

mod call;
mod close;
mod discover;
mod error;
mod handshake;
mod ping;
mod relay;
mod response;

pub use call::Call;
pub use close::Close;
pub use discover::{Discover, DiscoverQuery};
pub use error::MessageError;
pub use handshake::{Ack, Init};
pub use ping::{Echo, MAX_ECHO_LEN};
pub use relay::{MAX_BIND_TICKET, MAX_RELAY_MODELS, MAX_RELAY_TEXT, RelayAck, RelayBind};
pub use response::{
    BufferedError, BufferedResponse, DiscoverReply, Lifecycle, LifecycleEvent, Response,
    ResultEncoding, SpecError, SpecResponse,
};

use super::cbor::CborLimits;
use super::frame::{Frame, flags};
use super::kind;

/// Generates the public decode/encode entry points of a message type from its
/// private `read(&mut Fields)` and `write(&self, &mut MapWriter)`.
macro_rules! map_message {
    ($ty:ty) => {
        impl $ty {
            /// Decodes the payload with the default [`CborLimits`](crate::transport::CborLimits).
            pub fn decode(payload: &[u8]) -> Result<Self, crate::transport::MessageError> {
                Self::decode_with(payload, &crate::transport::CborLimits::default())
            }

            /// Decodes the payload within `limits`.
            pub fn decode_with(
                payload: &[u8],
                limits: &crate::transport::CborLimits,
            ) -> Result<Self, crate::transport::MessageError> {
                let mut fields = crate::transport::cbor::Fields::decode(payload, limits)?;
                Self::read(&mut fields)
            }

            /// The payload as deterministic CBOR.
            pub fn encode(&self) -> bytes::Bytes {
                let mut writer = crate::transport::cbor::MapWriter::new();
                self.write(&mut writer);
                writer.finish()
            }
        }
    };
    ($ty:ty, $kind:expr) => {
        map_message!($ty);

        impl $ty {
            /// The frame type this message travels in.
            pub const KIND: u8 = $kind;

            /// The message in a frame of its type.
            pub fn to_frame(&self) -> crate::transport::Frame {
                crate::transport::Frame::new(Self::KIND, self.encode())
            }
        }
    };
}
use map_message;

/// Any message this SDK can decode, tagged by its frame type.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// INIT (0x01).
    Init(Init),
    /// ACK (0x02).
    Ack(Ack),
    /// DISCOVER (0x03).
    Discover(Discover),
    /// CALL (0x05).
    Call(Call),
    /// RESPONSE (0x06).
    Response(Response),
    /// CLOSE (0x07).
    Close(Close),
    /// PING (0x09).
    Ping(Echo),
    /// PONG (0x0A).
    Pong(Echo),
    /// RELAY_BIND (0x0B).
    RelayBind(RelayBind),
    /// RELAY_ACK (0x0C).
    RelayAck(RelayAck),
}

/// Flags whose meaning changes how the payload reads; none is implemented.
const UNSUPPORTED_FLAGS: u8 = flags::GZIP | flags::FRAGMENT | flags::CONF_ENCRYPTED;

impl Message {
    /// Decodes a frame: refuses the payload-changing flags (gzip, fragment,
    /// CX-encrypted; unknown bits are ignored) and dispatches on the type.
    pub fn from_frame(frame: &Frame) -> Result<Self, MessageError> {
        Self::from_frame_with(frame, &CborLimits::default())
    }

    /// [`Message::from_frame`] within `limits`.
    pub fn from_frame_with(frame: &Frame, limits: &CborLimits) -> Result<Self, MessageError> {
        let unsupported = frame.flags & UNSUPPORTED_FLAGS;
        if unsupported != 0 {
            return Err(MessageError::UnsupportedFlags(unsupported));
        }
        Self::decode_with(frame.kind, &frame.payload, limits)
    }

    /// Decodes the payload of a frame of type `kind`. Types without a layout
    /// here (SUB_PROTOCOL, FEEDBACK, OBSERVE, TELEMETRY, custom and
    /// undefined ones) give [`MessageError::UnknownType`].
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Self, MessageError> {
        Self::decode_with(kind, payload, &CborLimits::default())
    }

    /// [`Message::decode`] within `limits`.
    pub fn decode_with(
        kind: u8,
        payload: &[u8],
        limits: &CborLimits,
    ) -> Result<Self, MessageError> {
        Ok(match kind {
            kind::INIT => Self::Init(Init::decode_with(payload, limits)?),
            kind::ACK => Self::Ack(Ack::decode_with(payload, limits)?),
            kind::DISCOVER => Self::Discover(Discover::decode_with(payload, limits)?),
            kind::CALL => Self::Call(Call::decode_with(payload, limits)?),
            kind::RESPONSE => Self::Response(Response::decode_with(payload, limits)?),
            kind::CLOSE => Self::Close(Close::decode_with(payload, limits)?),
            kind::PING => Self::Ping(Echo::decode_with(payload, limits)?),
            kind::PONG => Self::Pong(Echo::decode_with(payload, limits)?),
            kind::RELAY_BIND => Self::RelayBind(RelayBind::decode_with(payload, limits)?),
            kind::RELAY_ACK => Self::RelayAck(RelayAck::decode_with(payload, limits)?),
            other => return Err(MessageError::UnknownType(other)),
        })
    }

    /// The frame type of this message.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Init(_) => kind::INIT,
            Self::Ack(_) => kind::ACK,
            Self::Discover(_) => kind::DISCOVER,
            Self::Call(_) => kind::CALL,
            Self::Response(_) => kind::RESPONSE,
            Self::Close(_) => kind::CLOSE,
            Self::Ping(_) => kind::PING,
            Self::Pong(_) => kind::PONG,
            Self::RelayBind(_) => kind::RELAY_BIND,
            Self::RelayAck(_) => kind::RELAY_ACK,
        }
    }

    /// The payload as deterministic CBOR.
    pub fn encode(&self) -> bytes::Bytes {
        match self {
            Self::Init(m) => m.encode(),
            Self::Ack(m) => m.encode(),
            Self::Discover(m) => m.encode(),
            Self::Call(m) => m.encode(),
            Self::Response(m) => m.encode(),
            Self::Close(m) => m.encode(),
            Self::Ping(m) | Self::Pong(m) => m.encode(),
            Self::RelayBind(m) => m.encode(),
            Self::RelayAck(m) => m.encode(),
        }
    }

    /// The message in a frame of its type.
    pub fn to_frame(&self) -> Frame {
        Frame::new(self.kind(), self.encode())
    }
}
