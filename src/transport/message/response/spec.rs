//! The spec layout of RESPONSE and the streaming lifecycle of key 13
//! (PROTOCOL.md §7.1): accepted → partial… → completed | failed | cancelled |
//! timed_out, each step with `is_final`.

use std::fmt;

use ciborium::Value;
use serde_json::Value as Json;

use crate::transport::cbor::{Fields, MapWriter, from_json, invalid};
use crate::transport::frame::FRAMING_VERSION;
use crate::transport::message::MessageError;

use super::buffered::read_result;

/// One event of the streaming lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    /// The task was admitted.
    Accepted,
    /// A piece of the result.
    Partial,
    /// The task finished; the result is complete.
    Completed,
    /// The task failed; the step carries an error.
    Failed,
    /// The task was cancelled.
    Cancelled,
    /// The task ran out of time.
    TimedOut,
}

impl LifecycleEvent {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Partial => "partial",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => Self::Accepted,
            "partial" => Self::Partial,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "timed_out" => Self::TimedOut,
            _ => return None,
        })
    }

    /// True for the events that end a lifecycle.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Accepted | Self::Partial)
    }

    /// The key-4 status the reference peers pair with the event.
    pub fn status(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Partial => "partial",
            Self::Completed => "success",
            Self::Failed => "error",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timeout",
        }
    }
}

impl fmt::Display for LifecycleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key 13: `{1 task_id, 2 sequence, 3 event, 4 is_final}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// Key 1: the CALL's key 24.
    pub task_id: Option<String>,
    /// Key 2: step number, from 0 (absent reads as 0).
    pub sequence: u64,
    /// Key 3 (required).
    pub event: LifecycleEvent,
    /// Key 4 (absent reads as [`LifecycleEvent::is_terminal`]).
    pub is_final: bool,
}

impl Lifecycle {
    fn read(mut f: Fields) -> Result<Self, MessageError> {
        let name = "lifecycle.event";
        let text = f
            .text(3, name)?
            .ok_or(MessageError::Missing { key: 3, name })?;
        let event = LifecycleEvent::parse(&text)
            .ok_or_else(|| invalid(3, name, format!("unknown event `{text}`")))?;
        Ok(Self {
            task_id: f.id(1, "lifecycle.task_id")?,
            sequence: f.uint(2, "lifecycle.sequence")?.unwrap_or(0),
            event,
            is_final: f
                .boolean(4, "lifecycle.is_final")?
                .unwrap_or_else(|| event.is_terminal()),
        })
    }

    fn to_value(&self) -> Value {
        let mut w = MapWriter::new();
        w.opt(1, self.task_id.clone())
            .put(2, self.sequence)
            .put(3, self.event.as_str())
            .put(4, self.is_final);
        w.into_value()
    }
}

/// Key 6: `{1 code, 2 message}` (the code is text; an integer reads as its
/// decimal text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecError {
    /// Key 1.
    pub code: Option<String>,
    /// Key 2.
    pub message: Option<String>,
}

impl SpecError {
    /// Reads key `key` as `{1 code, 2 message}`, if present.
    pub(super) fn read(f: &mut Fields, key: u64) -> Result<Option<Self>, MessageError> {
        match f.map(key, "error")? {
            None => Ok(None),
            Some(mut e) => Ok(Some(Self {
                code: e.id(1, "error.code")?,
                message: e.text(2, "error.message")?,
            })),
        }
    }

    /// The map `{1 code, 2 message}`.
    pub(super) fn to_value(&self) -> Value {
        let mut inner = MapWriter::new();
        inner.opt(1, self.code.clone()).opt(2, self.message.clone());
        inner.into_value()
    }
}

/// The spec layout of RESPONSE.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpecResponse {
    /// Key 1: protocol version.
    pub version: Option<u64>,
    /// Key 2.
    pub session_id: Option<String>,
    /// Key 3: the CALL's call id.
    pub call_id: Option<String>,
    /// Key 4: `partial`, `success`, `error`, `timeout`, … (kept as sent).
    pub status: Option<String>,
    /// Key 5: the result or partial result (written inline).
    pub result: Option<Json>,
    /// Key 6.
    pub error: Option<SpecError>,
    /// Key 7.
    pub tokens_used: Option<u64>,
    /// Key 8.
    pub duration_ms: Option<u64>,
    /// Key 11: the answering node.
    pub node_id: Option<String>,
    /// Key 12.
    pub is_final: Option<bool>,
    /// Key 13: present on streaming steps.
    pub lifecycle: Option<Lifecycle>,
}

impl SpecResponse {
    /// One step of a streaming lifecycle, with version, status and both
    /// `is_final` keys filled in as the reference peers do.
    pub fn step(session_id: Option<String>, call_id: Option<String>, lifecycle: Lifecycle) -> Self {
        Self {
            version: Some(u64::from(FRAMING_VERSION)),
            session_id,
            call_id,
            status: Some(lifecycle.event.status().to_owned()),
            is_final: Some(lifecycle.is_final),
            lifecycle: Some(lifecycle),
            ..Self::default()
        }
    }

    /// Key 13's `is_final`, else key 12, else true.
    pub fn is_final(&self) -> bool {
        self.lifecycle
            .as_ref()
            .map(|l| l.is_final)
            .or(self.is_final)
            .unwrap_or(true)
    }

    pub(super) fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let error = SpecError::read(f, 6)?;
        let lifecycle = match f.map(13, "lifecycle")? {
            None => None,
            Some(l) => Some(Lifecycle::read(l)?),
        };
        Ok(Self {
            version: f.uint(1, "version")?,
            session_id: f.id(2, "session_id")?,
            call_id: f.id(3, "call_id")?,
            status: f.text(4, "status")?,
            result: read_result(f)?.map(|(json, _)| json),
            error,
            tokens_used: f.uint(7, "tokens_used")?,
            duration_ms: f.uint(8, "duration_ms")?,
            node_id: f.id(11, "node_id")?,
            is_final: f.boolean(12, "is_final")?,
            lifecycle,
        })
    }

    pub(super) fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.version)
            .opt(2, self.session_id.clone())
            .opt(3, self.call_id.clone())
            .opt(4, self.status.clone())
            .opt(5, self.result.as_ref().map(from_json))
            .opt(6, self.error.as_ref().map(SpecError::to_value))
            .opt(7, self.tokens_used)
            .opt(8, self.duration_ms)
            .opt(11, self.node_id.clone())
            .opt(12, self.is_final)
            .opt(13, self.lifecycle.as_ref().map(Lifecycle::to_value));
    }
}
