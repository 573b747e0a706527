//! What to do after each attempt on a node (PROTOCOL.md §5.2, the
//! recommendation): 503, 504 and timeouts are retried on the same node with
//! 200 ms × 2ⁿ ± 20 % backoff, honouring `Retry-After`; 429 and 502 move to
//! the next node at once; other 4xx fail fast; connection errors move on.

use std::time::Duration;

/// The verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try this node again after a pause.
    RetrySameNode,
    /// Give up on this node, try the next.
    NextNode,
    /// Stop: no other node will answer differently.
    Fail,
}

/// The verdict for a non-2xx answer with its error code (if any).
pub(crate) fn verdict_for(status: u16, code: Option<&str>) -> Verdict {
    match (status, code) {
        // This node already has the task (our own retry after a timeout):
        // another node can still run it.
        (409, Some("IICP-E010")) => Verdict::NextNode,
        _ => verdict_for_status(status),
    }
}

/// The verdict for an HTTP status (non-2xx).
pub(crate) fn verdict_for_status(status: u16) -> Verdict {
    match status {
        408 | 503 | 504 => Verdict::RetrySameNode,
        429 | 500..=599 => Verdict::NextNode,
        404 | 405 => Verdict::NextNode, // no IICP task route at that endpoint
        _ => Verdict::Fail,
    }
}

/// The pause before retry number `retry` (0-based): `base × 2^retry`, ±20 %
/// jitter from `unit` in `[0, 1)`, and never shorter than the peer's
/// `Retry-After`.
pub(crate) fn backoff(
    base: Duration,
    retry: u32,
    unit: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.min(16));
    let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
    let jittered = exp.mul_f64(factor);
    retry_after.map_or(jittered, |ra| ra.max(jittered))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by IICP peers).
pub(crate) fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict_for_status(503), Verdict::RetrySameNode);
        assert_eq!(verdict_for_status(504), Verdict::RetrySameNode);
        assert_eq!(verdict_for_status(429), Verdict::NextNode);
        assert_eq!(verdict_for_status(502), Verdict::NextNode);
        assert_eq!(verdict_for_status(500), Verdict::NextNode);
        for s in [400, 401, 403, 409, 413, 422] {
            assert_eq!(verdict_for_status(s), Verdict::Fail, "{s}");
        }
        assert_eq!(verdict_for(409, Some("IICP-E010")), Verdict::NextNode);
        assert_eq!(verdict_for(409, Some("IICP-E011")), Verdict::Fail);
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_millis(200);
        assert_eq!(backoff(base, 0, 0.5, None), Duration::from_millis(200));
        assert_eq!(backoff(base, 1, 0.5, None), Duration::from_millis(400));
        assert_eq!(backoff(base, 0, 0.0, None), Duration::from_millis(160));
        assert_eq!(backoff(base, 0, 1.0, None), Duration::from_millis(240));
        assert_eq!(
            backoff(base, 0, 0.5, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff(base, 40, 0.5, None),
            base * 65536,
            "shift is bounded"
        );
    }
}
