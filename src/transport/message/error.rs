//! `MessageError`: why a frame's payload is not the message its type says.

use crate::transport::reason::CloseReason;

/// A payload that does not decode. Every variant maps to the CLOSE reason the
/// session should send ([`MessageError::close_reason`]): `protocol_error`
/// for malformed or mistyped payloads, `payload_too_large` for the item
/// budget, `unknown_type` and `unsupported_extension` for what this SDK does
/// not speak.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// Not well-formed CBOR (including a payload that ends early).
    #[error("payload is not well-formed CBOR: {0}")]
    Malformed(String),
    /// Arrays, maps and tags nested deeper than the limit.
    #[error("CBOR nested deeper than {max} levels")]
    TooDeep {
        /// The depth limit.
        max: usize,
    },
    /// More CBOR items than the limit.
    #[error("CBOR payload has more than {max} items")]
    TooManyItems {
        /// The item limit.
        max: usize,
    },
    /// Bytes after the payload's one CBOR item.
    #[error("{0} bytes after the CBOR item")]
    TrailingBytes(usize),
    /// The top-level item is not a map.
    #[error("payload is a CBOR {found}, expected a map")]
    NotAMap {
        /// The CBOR type found.
        found: &'static str,
    },
    /// A known key holds the wrong CBOR type.
    #[error("key {key} ({name}): expected {expected}, found {found}")]
    WrongType {
        /// The integer key.
        key: u64,
        /// What the key means.
        name: &'static str,
        /// The CBOR type(s) accepted.
        expected: &'static str,
        /// The CBOR type found.
        found: &'static str,
    },
    /// A known key holds a value of the right type that is not acceptable.
    #[error("key {key} ({name}): {problem}")]
    InvalidValue {
        /// The integer key.
        key: u64,
        /// What the key means.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A key the message cannot do without is absent.
    #[error("key {key} ({name}) is required")]
    Missing {
        /// The integer key.
        key: u64,
        /// What the key means.
        name: &'static str,
    },
    /// A frame type this SDK has no payload layout for.
    #[error("frame type 0x{0:02x} has no message layout here")]
    UnknownType(u8),
    /// Flags this SDK does not implement (gzip, fragment, CX-encrypted frame).
    #[error("frame flags 0x{0:02x} are not supported")]
    UnsupportedFlags(u8),
}

impl MessageError {
    /// The reason as PROTOCOL.md spells it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownType(_) => "unknown_type",
            Self::UnsupportedFlags(_) => "unsupported_extension",
            Self::TooManyItems { .. } => "payload_too_large",
            _ => "protocol_error",
        }
    }

    /// The reason as a [`CloseReason`], for the CLOSE frame.
    pub fn close_reason(&self) -> CloseReason {
        CloseReason::from(self.reason())
    }
}
