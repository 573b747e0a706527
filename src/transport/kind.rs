//! Frame types: byte 5 of the header (PROTOCOL.md §7.1 "Types").
//!
//! The frame decoder does not validate the type (the vectors' decode contract
//! puts that outside it); the session answers an unknown one with CLOSE
//! `unknown_type`.

/// Opens a session: version negotiation and credentials.
pub const INIT: u8 = 0x01;
/// The answer to INIT: chosen version and node id.
pub const ACK: u8 = 0x02;
/// Asks for nodes serving an intent.
pub const DISCOVER: u8 = 0x03;
/// Sub-protocol negotiation (no payload layout defined yet).
pub const SUB_PROTOCOL: u8 = 0x04;
/// A task call.
pub const CALL: u8 = 0x05;
/// The answer to CALL (or DISCOVER): buffered, or one step of a streaming lifecycle.
pub const RESPONSE: u8 = 0x06;
/// Ends a session, with a reason.
pub const CLOSE: u8 = 0x07;
/// Feedback on a finished task (no payload layout defined yet).
pub const FEEDBACK: u8 = 0x08;
/// Liveness probe, answered by PONG with the same echo.
pub const PING: u8 = 0x09;
/// The answer to PING.
pub const PONG: u8 = 0x0A;
/// RELAY_BIND in the reference code; CONTROL in the spec (PROTOCOL.md §7.1 ⚠).
pub const RELAY_BIND: u8 = 0x0B;
/// The spec's name for 0x0B.
pub const CONTROL: u8 = RELAY_BIND;
/// RELAY_ACK in the reference code; ADVERTISE in the spec (PROTOCOL.md §7.1 ⚠).
pub const RELAY_ACK: u8 = 0x0C;
/// The spec's name for 0x0C.
pub const ADVERTISE: u8 = RELAY_ACK;
/// Observation stream (no payload layout defined yet).
pub const OBSERVE: u8 = 0x0D;
/// Telemetry (no payload layout defined yet).
pub const TELEMETRY: u8 = 0x0E;
/// First type of the custom range `F0–FE`.
pub const CUSTOM_FIRST: u8 = 0xF0;
/// Last type of the custom range `F0–FE`.
pub const CUSTOM_LAST: u8 = 0xFE;

/// The name of a frame type for logs, or `None` for a type IICP does not
/// define (the custom range is named `CUSTOM`).
pub fn name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        INIT => "INIT",
        ACK => "ACK",
        DISCOVER => "DISCOVER",
        SUB_PROTOCOL => "SUB_PROTOCOL",
        CALL => "CALL",
        RESPONSE => "RESPONSE",
        CLOSE => "CLOSE",
        FEEDBACK => "FEEDBACK",
        PING => "PING",
        PONG => "PONG",
        RELAY_BIND => "RELAY_BIND",
        RELAY_ACK => "RELAY_ACK",
        OBSERVE => "OBSERVE",
        TELEMETRY => "TELEMETRY",
        CUSTOM_FIRST..=CUSTOM_LAST => "CUSTOM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_the_defined_types_and_nothing_else() {
        assert_eq!(name(0x0A), Some("PONG"));
        assert_eq!(name(CONTROL), Some("RELAY_BIND"));
        assert_eq!(name(0xF3), Some("CUSTOM"));
        for undefined in [0x00, 0x0F, 0x10, 0x7F, 0xEF, 0xFF] {
            assert_eq!(name(undefined), None, "0x{undefined:02x}");
        }
    }
}
