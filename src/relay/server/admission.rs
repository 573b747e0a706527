//! Who may bind: the refusals a bind can meet (with their exact RELAY_ACK
//! reasons and HTTP answers), the bind request both transports build, and
//! the per-source bind rate.

use crate::Secret;
use crate::server::api_error::ApiError;
use axum::http::StatusCode;
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
}
