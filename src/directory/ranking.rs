//! Discover eligibility and scoring (PROTOCOL.md §1.6), as pure functions.
//!
//! Checked against `behavior-contract-v1.json` (eligibility and ranking
//! cases). The directory computes the score; clients never rewrite it.

use crate::wire::Qos;

/// SDK versions below this are "downlevel" and demoted by 8 %.
pub const SDK_BASELINE: (u64, u64, u64) = (0, 7, 68);
/// Reputation a node needs to be listed at all.
pub const MIN_STORED_REPUTATION: f64 = 0.1;
/// Completed tasks that end probation (`interactive`).
pub const PROBATION_TASKS: u64 = 100;
/// Completed tasks `realtime` needs.
pub const REALTIME_TASKS: u64 = 1000;
/// Reputation `realtime` needs.
pub const REALTIME_REPUTATION: f64 = 0.8;

/// What eligibility looks at in a node.
#[derive(Debug, Clone, Copy)]
pub struct EligibilityInput<'a> {
    /// Heartbeat says available, and seen within the liveness window.
    pub live: bool,
    /// Stored reputation.
    pub reputation: f64,
    /// Tasks completed so far.
    pub completed_tasks: u64,
    /// Models the last heartbeat reported, if it reported any.
    pub health_models: Option<&'a [String]>,
    /// Models from the registration's capabilities.
    pub models: &'a [String],
    /// Backend state (`draining`, `unavailable`, …) when known.
    pub backend_state: Option<&'a str>,
}

/// The query side of eligibility.
#[derive(Debug, Clone, Copy, Default)]
pub struct EligibilityQuery<'a> {
    /// Only nodes serving this model.
    pub model: Option<&'a str>,
    /// Reputation floor.
    pub min_reputation: f64,
    /// QoS class asked for.
    pub qos: Option<Qos>,
    /// Whether the QoS gates (probation, realtime) apply.
    pub enforce_qos_gates: bool,
}

/// Whether a node may be returned for a query.
pub fn is_eligible(node: &EligibilityInput<'_>, q: &EligibilityQuery<'_>) -> bool {
    if !node.live || node.reputation < MIN_STORED_REPUTATION || node.reputation < q.min_reputation {
        return false;
    }
    if matches!(node.health_models, Some([])) {
        return false; // an empty health list hides the node (§1.4)
    }
    if matches!(node.backend_state, Some("draining" | "unavailable")) {
        return false;
    }
    if let Some(model) = q.model {
        let served = node.health_models.unwrap_or(node.models);
        if !served.iter().any(|m| m == model) {
            return false;
        }
    }
    if q.enforce_qos_gates {
        let (tasks, reputation) = match q.qos {
            Some(Qos::Realtime) => (REALTIME_TASKS, REALTIME_REPUTATION),
            Some(Qos::Interactive) => (PROBATION_TASKS, 0.0),
            _ => (0, 0.0),
        };
        if node.completed_tasks < tasks || node.reputation < reputation {
            return false;
        }
    }
    true
}

/// What the score looks at in a node.
#[derive(Debug, Clone, Copy)]
pub struct RankInput<'a> {
    /// Whether the node is available.
    pub available: bool,
    /// Load 0..1.
    pub load: f64,
    /// Tasks running.
    pub active_jobs: u32,
    /// Concurrency limit (0 when unknown).
    pub max_concurrent: u32,
    /// Declared region.
    pub region: &'a str,
    /// Models served.
    pub models: &'a [String],
    /// Reputation, when known (0.5 otherwise).
    pub reputation: Option<f64>,
    /// Credit cost multiplier, when declared.
    pub price: Option<f64>,
    /// Whether the node advertises a CX key.
    pub has_cx_key: bool,
    /// Whether its SDK is at or above the baseline.
    pub sdk_current: bool,
}

/// The composite score of §1.6, in 0..1.
pub fn score(node: &RankInput<'_>, model: Option<&str>, region: Option<&str>) -> f64 {
    let avail = if node.available { 1.0 } else { 0.0 };
    let load = node.load.clamp(0.0, 1.0);
    let cap = if node.max_concurrent == 0 {
        0.0
    } else {
        (1.0 - f64::from(node.active_jobs) / f64::from(node.max_concurrent)).max(0.0)
    };
    let region_term = match region {
        None => 0.5,
        Some(r) if r == node.region => 1.0,
        Some(_) => 0.0,
    };
    let rep = node.reputation.unwrap_or(0.5);
    let base = match model {
        None => 0.35 * avail + 0.28 * (1.0 - load) + 0.18 * cap + 0.09 * region_term + 0.10 * rep,
        Some(m) => {
            let price = node.price.map_or(0.5, |p| (1.0 - p / 10.0).max(0.0));
            let model_match = if node.models.iter().any(|x| x == m) {
                1.0
            } else {
                0.0
            };
            0.25 * avail
                + 0.20 * (1.0 - load)
                + 0.15 * cap
                + 0.10 * region_term
                + 0.10 * rep
                + 0.10 * price
                + 0.10 * model_match
        }
    };
    let demotion = 0.08 * f64::from(u8::from(!node.sdk_current))
        + 0.07 * f64::from(u8::from(!node.has_cx_key));
    (base * (1.0 - demotion).max(0.75)).clamp(0.0, 1.0)
}

/// Whether an SDK version is at or above [`SDK_BASELINE`]; `None` when the
/// version is absent or not dotted numbers.
pub fn sdk_is_current(version: Option<&str>) -> Option<bool> {
    let mut parts = version?
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().ok());
    let v = (
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    );
    Some(v >= SDK_BASELINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_versions() {
        assert_eq!(sdk_is_current(Some("0.7.68")), Some(true));
        assert_eq!(sdk_is_current(Some("0.7.109")), Some(true));
        assert_eq!(sdk_is_current(Some("0.7.9")), Some(false));
        assert_eq!(sdk_is_current(Some("1.0")), Some(true));
        assert_eq!(sdk_is_current(Some("dev")), None);
        assert_eq!(sdk_is_current(None), None);
    }

    #[test]
    fn qos_gates_only_when_enforced() {
        let models = vec!["m".to_owned()];
        let fresh = EligibilityInput {
            live: true,
            reputation: 0.5,
            completed_tasks: 0,
            health_models: None,
            models: &models,
            backend_state: None,
        };
        let mut q = EligibilityQuery {
            qos: Some(Qos::Interactive),
            ..Default::default()
        };
        assert!(is_eligible(&fresh, &q));
        q.enforce_qos_gates = true;
        assert!(!is_eligible(&fresh, &q));
        assert!(is_eligible(
            &EligibilityInput {
                completed_tasks: 100,
                ..fresh
            },
            &q
        ));
        assert!(!is_eligible(
            &EligibilityInput {
                live: false,
                ..fresh
            },
            &EligibilityQuery::default()
        ));
    }
}
