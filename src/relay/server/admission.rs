//! Who may bind: the refusals a bind can meet (with their exact RELAY_ACK
//! reasons and HTTP answers), the bind request both transports build (from
//! a RELAY_BIND payload or a `POST /v1/relay/bind` body), and the
//! per-source bind rate.
//!
//! No I/O here: the fuzz crate (`fuzz/`) mounts this file to fuzz the two
//! bind decoders.

use crate::Secret;
use crate::server::api_error::ApiError;
use crate::transport::{MAX_BIND_TICKET, MAX_RELAY_MODELS, MAX_RELAY_TEXT, RelayBind};
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources tracked by the bind rate before expired windows are swept.
const RATE_SWEEP_AT: usize = 4096;
/// Sources tracked at most; a new source beyond it is refused until
/// windows expire.
const RATE_MAX_SOURCES: usize = 65_536;

/// A worker asking to bind (from RELAY_BIND or `POST /v1/relay/bind`).
#[derive(Debug, Clone)]
pub(crate) struct BindRequest {
    pub worker_id: String,
    pub intent: Option<String>,
    pub models: Vec<String>,
    pub ticket: Option<Secret>,
}

/// Why a bind was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    TicketInvalid,
    TicketRequired,
    TicketReplayed,
    AliveSession,
    RateLimited,
    Capacity,
    /// The bind itself is unreadable; the text says how.
    Malformed(String),
}

impl Refusal {
    /// The RELAY_ACK reason, exactly as the contract spells it.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::TicketInvalid => "relay bind ticket invalid".into(),
            Self::TicketRequired => "relay bind ticket required".into(),
            Self::TicketReplayed => "relay bind ticket replayed".into(),
            Self::AliveSession => "worker_id already bound to an alive session".into(),
            Self::RateLimited => "relay_bind_rate_limited".into(),
            Self::Capacity => "relay at session capacity".into(),
            Self::Malformed(why) => format!("malformed bind: {why}"),
        }
    }

    /// The answer of `POST /v1/relay/bind`.
    pub(crate) fn to_api_error(&self) -> ApiError {
        let reason = self.reason();
        match self {
            Self::TicketInvalid | Self::TicketRequired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "IICP-E040", reason)
            }
            Self::TicketReplayed => ApiError::new(StatusCode::CONFLICT, "IICP-E040", reason),
            Self::AliveSession => ApiError::new(StatusCode::CONFLICT, "IICP-E038", reason),
            Self::RateLimited => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "IICP-E039", reason).retry_after(60)
            }
            Self::Capacity => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "IICP-E039", reason).retry_after(60)
            }
            Self::Malformed(why) => ApiError::validation(format!("invalid body: {why}")),
        }
    }
}

/// Checks the worker id of a bind: present and shaped like a node id (it
/// becomes a path segment of the worker's endpoint).
pub(crate) fn check_worker_id(worker_id: Option<&str>) -> Result<String, Refusal> {
    let id = worker_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Refusal::Malformed("worker_id is required".into()))?;
    if !crate::wire::register::is_valid_node_id(id) {
        return Err(Refusal::Malformed(
            "worker_id must be a node id (up to 36 characters of [A-Za-z0-9._:-])".into(),
        ));
    }
    Ok(id.to_owned())
}

/// A string field of a bind body: absent or null is `None`.
fn text<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, Refusal> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_RELAY_TEXT.max(MAX_BIND_TICKET) => Ok(Some(s)),
        Some(Value::String(_)) => Err(Refusal::Malformed(format!("{field} is too long"))),
        Some(_) => Err(Refusal::Malformed(format!("{field} must be a string"))),
    }
}

impl BindRequest {
    /// The bind a TCP worker asks for: a RELAY_BIND payload, decoded, and
    /// its worker id checked. A refusal comes with the worker id to name in
    /// the RELAY_ACK, when the bind carried one of at most 64 bytes.
    pub(crate) fn from_relay_bind(payload: &[u8]) -> Result<Self, (Option<String>, Refusal)> {
        let bind =
            RelayBind::decode(payload).map_err(|e| (None, Refusal::Malformed(e.to_string())))?;
        let worker_id = check_worker_id(bind.worker_id.as_deref())
            .map_err(|r| (bind.worker_id.clone().filter(|id| id.len() <= 64), r))?;
        Ok(Self {
            worker_id,
            intent: bind.intent,
            models: bind.models,
            ticket: bind.bind_ticket,
        })
    }

    /// The bind a long-poll worker asks for, from its JSON object.
    pub(crate) fn from_json(body: &Value) -> Result<Self, Refusal> {
        let worker_id = check_worker_id(text(body, "worker_id")?)?;
        let intent = text(body, "intent")?;
        if intent.is_some_and(|i| i.len() > MAX_RELAY_TEXT) {
            return Err(Refusal::Malformed("intent is too long".into()));
        }
        let models = match body.get("models") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_RELAY_MODELS => items
                .iter()
                .map(|m| match m {
                    Value::String(s) if s.len() <= MAX_RELAY_TEXT => Ok(s.clone()),
                    _ => Err(Refusal::Malformed(format!(
                        "models must be strings of at most {MAX_RELAY_TEXT} bytes"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Refusal::Malformed(format!(
                    "models must be a list of at most {MAX_RELAY_MODELS} strings"
                )));
            }
        };
        let ticket = text(body, "bind_ticket")?
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        Ok(Self {
            worker_id,
            intent: intent.map(str::to_owned),
            models,
            ticket,
        })
    }
}

/// New binds per source address in fixed windows.
#[derive(Debug, Default)]
pub(crate) struct BindRate {
    windows: HashMap<IpAddr, (Instant, u32)>,
}

impl BindRate {
    /// Counts one new bind from `source`; false when it is over `limit`
    /// in the current `window` (limit 0: unlimited).
    pub(crate) fn allow(&mut self, source: IpAddr, limit: u32, window: Duration) -> bool {
        if limit == 0 {
            return true;
        }
        let now = Instant::now();
        if self.windows.len() >= RATE_SWEEP_AT && !self.windows.contains_key(&source) {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.windows.len() >= RATE_MAX_SOURCES {
                return false;
            }
        }
        let entry = self.windows.entry(source).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_per_source_and_window() {
        let mut rate = BindRate::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let w = Duration::from_secs(60);
        assert!((0..3).all(|_| rate.allow(a, 3, w)));
        assert!(!rate.allow(a, 3, w));
        assert!(rate.allow(b, 3, w));
        assert!(rate.allow(a, 0, w), "0 is unlimited");
        let short = Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(rate.allow(a, 3, short), "a new window");
    }

    #[test]
    fn worker_ids_are_node_ids() {
        assert!(check_worker_id(Some("w-1")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("../x"),
            Some("a/b"),
            Some(&*"x".repeat(40)),
        ] {
            assert!(
                matches!(check_worker_id(bad), Err(Refusal::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn both_transports_read_the_same_bind() {
        let body = serde_json::json!({
            "worker_id": "w-1",
            "intent": "urn:iicp:intent:llm:chat:v1",
            "models": ["m1", "m2"],
            "bind_ticket": "claims.sig",
        });
        let http = BindRequest::from_json(&body).unwrap();
        let tcp = BindRequest::from_relay_bind(
            &RelayBind {
                worker_id: Some("w-1".into()),
                intent: Some("urn:iicp:intent:llm:chat:v1".into()),
                models: vec!["m1".into(), "m2".into()],
                bind_ticket: Some(Secret::new("claims.sig")),
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(
            (&http.worker_id, &http.intent, &http.models, &http.ticket),
            (&tcp.worker_id, &tcp.intent, &tcp.models, &tcp.ticket)
        );
        // An empty ticket is no ticket, on both.
        let http =
            BindRequest::from_json(&serde_json::json!({"worker_id": "w", "bind_ticket": ""}));
        assert!(http.unwrap().ticket.is_none());
    }

    #[test]
    fn a_refused_tcp_bind_names_a_short_worker_id_only() {
        let bind = |id: &str| {
            RelayBind {
                worker_id: Some(id.into()),
                ..Default::default()
            }
            .encode()
        };
        let (named, refusal) = BindRequest::from_relay_bind(&bind("bad id")).unwrap_err();
        assert_eq!(named.as_deref(), Some("bad id"));
        assert!(matches!(refusal, Refusal::Malformed(_)));
        let long = "x".repeat(65);
        let (named, _) = BindRequest::from_relay_bind(&bind(&long)).unwrap_err();
        assert_eq!(named, None);
        let (named, _) = BindRequest::from_relay_bind(b"\xff").unwrap_err();
        assert_eq!(named, None);
        for body in [
            serde_json::json!({}),
            serde_json::json!({"worker_id": 7}),
            serde_json::json!({"worker_id": "w", "models": "m"}),
            serde_json::json!({"worker_id": "w", "intent": "i".repeat(MAX_RELAY_TEXT + 1)}),
        ] {
            assert!(matches!(
                BindRequest::from_json(&body),
                Err(Refusal::Malformed(_))
            ));
        }
    }
}
