//! PING and PONG (PROTOCOL.md §7.1): `{1: echo}` with at most 64 bytes of
//! echo; PONG returns the PING's echo. The payload may be empty.

use bytes::Bytes;

use crate::transport::cbor::{Fields, MapWriter, invalid};
use crate::transport::frame::Frame;
use crate::transport::kind;

use super::{MessageError, map_message};

/// The longest echo a PING may carry.
pub const MAX_ECHO_LEN: usize = 64;

/// The payload of PING (0x09) and PONG (0x0A).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Echo {
    /// Key 1: opaque bytes to send back; absent when the payload is empty.
    pub echo: Option<Bytes>,
}

map_message!(Echo);

impl Echo {
    /// A PING frame carrying this echo.
    pub fn ping(&self) -> Frame {
        Frame::new(kind::PING, self.encode())
    }

    /// A PONG frame carrying this echo (the answer to a PING with it).
    pub fn pong(&self) -> Frame {
        Frame::new(kind::PONG, self.encode())
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let echo = f.bytes(1, "echo")?;
        let len = echo.as_ref().map_or(0, Vec::len);
        if len > MAX_ECHO_LEN {
            return Err(invalid(
                1,
                "echo",
                format!("{len} bytes, at most {MAX_ECHO_LEN} allowed"),
            ));
        }
        Ok(Self {
            echo: echo.map(Bytes::from),
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.echo.as_ref().map(|e| e.to_vec()));
    }
}
