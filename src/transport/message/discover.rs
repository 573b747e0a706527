//! DISCOVER (PROTOCOL.md §7.1) in its two layouts: the reference code's
//! `{2 session_id, 3 intent}` and the spec's
//! `{1 intent, 2 limit, 3 region, 4 exclude, 5 min_score}`.
//!
//! The layouts reuse keys 2 and 3 with different meanings, so the decoder
//! picks the spec layout when key 1, 4 or 5 is present or key 2 holds an
//! integer, and the code layout otherwise. The answer is a RESPONSE
//! ([`super::DiscoverReply`]).

use ciborium::Value;

use crate::transport::cbor::{Fields, MapWriter};
use crate::transport::kind;

use super::{MessageError, map_message};

/// DISCOVER (0x03): which nodes serve an intent.
#[derive(Debug, Clone, PartialEq)]
pub enum Discover {
    /// The reference code's layout.
    Session {
        /// Key 2.
        session_id: Option<String>,
        /// Key 3.
        intent: Option<String>,
    },
    /// The spec's layout.
    Query(DiscoverQuery),
}

/// The spec layout of DISCOVER.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiscoverQuery {
    /// Key 1.
    pub intent: Option<String>,
    /// Key 2: most nodes wanted.
    pub limit: Option<u64>,
    /// Key 3.
    pub region: Option<String>,
    /// Key 4: node ids to leave out.
    pub exclude: Option<Vec<String>>,
    /// Key 5: lowest acceptable score.
    pub min_score: Option<f64>,
}

map_message!(Discover, kind::DISCOVER);

impl Discover {
    /// The intent asked for, whichever the layout.
    pub fn intent(&self) -> Option<&str> {
        match self {
            Self::Session { intent, .. } => intent.as_deref(),
            Self::Query(q) => q.intent.as_deref(),
        }
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        let spec = f.has(1) || f.has(4) || f.has(5) || matches!(f.peek(2), Some(Value::Integer(_)));
        if !spec {
            return Ok(Self::Session {
                session_id: f.id(2, "session_id")?,
                intent: f.text(3, "intent")?,
            });
        }
        Ok(Self::Query(DiscoverQuery {
            intent: f.text(1, "intent")?,
            limit: f.uint(2, "limit")?,
            region: f.text(3, "region")?,
            exclude: f.text_list(4, "exclude")?,
            min_score: f.number(5, "min_score")?,
        }))
    }

    fn write(&self, w: &mut MapWriter) {
        match self {
            Self::Session { session_id, intent } => {
                w.opt(2, session_id.clone()).opt(3, intent.clone());
            }
            Self::Query(q) => {
                w.opt(1, q.intent.clone())
                    .opt(2, q.limit)
                    .opt(3, q.region.clone())
                    .opt(
                        4,
                        q.exclude.as_ref().map(|ids| {
                            Value::Array(ids.iter().map(|s| s.as_str().into()).collect())
                        }),
                    )
                    .opt(5, q.min_score);
            }
        }
    }
}
