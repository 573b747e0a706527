//! `CloseReason`: the reason strings of CLOSE key 1 and of frame rejects
//! (PROTOCOL.md §7.1).

use std::fmt;

/// Why a session ends. The wire form is the snake_case string; a reason this
/// SDK does not know is kept as [`CloseReason::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// `graceful`: an orderly end.
    Graceful,
    /// `unknown_type`: a frame type the peer does not handle.
    UnknownType,
    /// `unsupported_extension`: a flag or sub-protocol the peer does not support.
    UnsupportedExtension,
    /// `frame_too_large`: the header announced more than the maximum frame size.
    FrameTooLarge,
    /// `payload_too_large`: the decoded task is over a size limit.
    PayloadTooLarge,
    /// `version_mismatch`: no common protocol version.
    VersionMismatch,
    /// `auth_failed`: credentials missing or wrong.
    AuthFailed,
    /// `idle_timeout`: nothing arrived for too long.
    IdleTimeout,
    /// `protocol_error`: a payload that is not what its type requires.
    ProtocolError,
    /// `invalid_magic`: the header does not start with `IICP`.
    InvalidMagic,
    /// `truncated_header`: the stream ended inside a header.
    TruncatedHeader,
    /// `truncated_payload`: the stream ended inside a payload.
    TruncatedPayload,
    /// Any other reason string, kept as received.
    Other(String),
}

impl CloseReason {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Graceful => "graceful",
            Self::UnknownType => "unknown_type",
            Self::UnsupportedExtension => "unsupported_extension",
            Self::FrameTooLarge => "frame_too_large",
            Self::PayloadTooLarge => "payload_too_large",
            Self::VersionMismatch => "version_mismatch",
            Self::AuthFailed => "auth_failed",
            Self::IdleTimeout => "idle_timeout",
            Self::ProtocolError => "protocol_error",
            Self::InvalidMagic => "invalid_magic",
            Self::TruncatedHeader => "truncated_header",
            Self::TruncatedPayload => "truncated_payload",
            Self::Other(other) => other,
        }
    }
}

impl From<&str> for CloseReason {
    fn from(s: &str) -> Self {
        match s {
            "graceful" => Self::Graceful,
            "unknown_type" => Self::UnknownType,
            "unsupported_extension" => Self::UnsupportedExtension,
            "frame_too_large" => Self::FrameTooLarge,
            "payload_too_large" => Self::PayloadTooLarge,
            "version_mismatch" => Self::VersionMismatch,
            "auth_failed" => Self::AuthFailed,
            "idle_timeout" => Self::IdleTimeout,
            "protocol_error" => Self::ProtocolError,
            "invalid_magic" => Self::InvalidMagic,
            "truncated_header" => Self::TruncatedHeader,
            "truncated_payload" => Self::TruncatedPayload,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_reason_round_trips_and_unknown_ones_are_kept() {
        let known = [
            "graceful",
            "unknown_type",
            "unsupported_extension",
            "frame_too_large",
            "payload_too_large",
            "version_mismatch",
            "auth_failed",
            "idle_timeout",
            "protocol_error",
            "invalid_magic",
            "truncated_header",
            "truncated_payload",
        ];
        for s in known {
            let reason = CloseReason::from(s);
            assert!(!matches!(reason, CloseReason::Other(_)), "{s}");
            assert_eq!(reason.as_str(), s);
        }
        assert_eq!(
            CloseReason::from("relay_gone"),
            CloseReason::Other("relay_gone".into())
        );
        assert_eq!(CloseReason::from("relay_gone").to_string(), "relay_gone");
    }
}
