//! CLOSE (PROTOCOL.md §7.1): `{1 reason, 2 message, 3 session_id}`. The
//! reference client sends it empty.

use crate::transport::cbor::{Fields, MapWriter};
use crate::transport::kind;
use crate::transport::reason::CloseReason;

use super::{MessageError, map_message};

/// CLOSE (0x07): ends a session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Close {
    /// Key 1: why.
    pub reason: Option<CloseReason>,
    /// Key 2: a human-readable detail.
    pub message: Option<String>,
    /// Key 3: the session being closed.
    pub session_id: Option<String>,
}

map_message!(Close, kind::CLOSE);

impl Close {
    /// A CLOSE with a reason and a detail.
    pub fn new(reason: CloseReason, message: impl Into<String>) -> Self {
        Self {
            reason: Some(reason),
            message: Some(message.into()),
            session_id: None,
        }
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        Ok(Self {
            reason: f.text(1, "reason")?.map(|r| CloseReason::from(r.as_str())),
            message: f.text(2, "message")?,
            session_id: f.id(3, "session_id")?,
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.reason.as_ref().map(|r| r.as_str().to_owned()))
            .opt(2, self.message.clone())
            .opt(3, self.session_id.clone());
    }
}
