//! RESPONSE (PROTOCOL.md §7.1 "RESPONSE") in every layout peers send:
//!
//! - buffered success (reference code): `{2 session_id, 15 call_id, 5 result}`
//!   with key 5 a byte string of CBOR (direct) or JSON (relay);
//! - buffered error: `{100 code, 101 message}` (we add 2 and 15 when known,
//!   so a multiplexing client can match it);
//! - the spec layout, which the reference code uses for streaming:
//!   `{1 ver, 2 session_id, 3 call_id, 4 status, 5 result, 6 {1 code, 2 message},
//!   7 tokens_used, 8 duration_ms, 11 node_id, 12 is_final, 13 lifecycle}`;
//! - the answer to DISCOVER: `{2 session_id, 3 intent, 20 [nodes]}`.
//!
//! The layout is told by its keys: 100 means an error, 20 a discover answer,
//! 13 the spec layout, then 15 the buffered layout, then any other spec key
//! (1, 3, 4, 6, 7, 8, 11, 12) the spec layout.

mod buffered;
mod spec;

pub use buffered::{BufferedError, BufferedResponse, DiscoverReply, ResultEncoding};
pub use spec::{Lifecycle, LifecycleEvent, SpecError, SpecResponse};

use crate::transport::cbor::{Fields, MapWriter};
use crate::transport::kind;

use super::{MessageError, map_message};

/// RESPONSE (0x06), in the layout it came in or is to be sent in.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Buffered success.
    Buffered(BufferedResponse),
    /// Buffered error `{100, 101}`.
    Error(BufferedError),
    /// The spec layout (streaming lifecycle steps, and spec peers).
    Spec(SpecResponse),
    /// The answer to DISCOVER.
    Discover(DiscoverReply),
}

map_message!(Response, kind::RESPONSE);

/// Keys only the spec layout uses (besides 13, checked first).
const SPEC_KEYS: [u64; 8] = [1, 3, 4, 6, 7, 8, 11, 12];

impl Response {
    /// The call this answers, when the layout carries it.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Buffered(r) => r.call_id.as_deref(),
            Self::Error(r) => r.call_id.as_deref(),
            Self::Spec(r) => r.call_id.as_deref(),
            Self::Discover(_) => None,
        }
    }

    /// True unless this is a non-final step of a streaming lifecycle.
    pub fn is_final(&self) -> bool {
        match self {
            Self::Spec(r) => r.is_final(),
            _ => true,
        }
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        Ok(if f.has(100) {
            Self::Error(BufferedError::read(f)?)
        } else if f.has(20) {
            Self::Discover(DiscoverReply::read(f)?)
        } else if f.has(13) || (!f.has(15) && SPEC_KEYS.iter().any(|k| f.has(*k))) {
            Self::Spec(SpecResponse::read(f)?)
        } else {
            Self::Buffered(BufferedResponse::read(f)?)
        })
    }

    fn write(&self, w: &mut MapWriter) {
        match self {
            Self::Buffered(r) => r.write(w),
            Self::Error(r) => r.write(w),
            Self::Spec(r) => r.write(w),
            Self::Discover(r) => r.write(w),
        }
    }
}

impl From<BufferedResponse> for Response {
    fn from(r: BufferedResponse) -> Self {
        Self::Buffered(r)
    }
}

impl From<BufferedError> for Response {
    fn from(r: BufferedError) -> Self {
        Self::Error(r)
    }
}

impl From<SpecResponse> for Response {
    fn from(r: SpecResponse) -> Self {
        Self::Spec(r)
    }
}

impl From<DiscoverReply> for Response {
    fn from(r: DiscoverReply) -> Self {
        Self::Discover(r)
    }
}
