//! The node's Prometheus metrics, served at `GET /metrics` in the text
//! format 0.0.4. One [`NodeMetrics`] per running node (in its
//! [`Pipeline`](super::pipeline::Pipeline)), no process-global registry, so
//! several nodes in one process keep their own counts.
//!
//! Labels come from closed vocabularies only: the intent as the node serves
//! it (its own list, fixed at start; anything else counts as `other`), the
//! [`TaskOutcome`], a status class and the CX error code. Never a payload,
//! token, task id, node id or message. Every per-task counter and histogram
//! is resolved at start, so a task costs atomic increments and one
//! histogram observation, with no allocation and no label look-up.

use crate::wire::IntentUrn;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::server::metrics::CONTENT_TYPE;

/// Latency buckets in seconds: from a fixed-answer handler (ms) to the
/// longest task budget (300 s).
pub(crate) const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How a task ended, as the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TaskOutcome {
    /// The handler answered.
    Success,
    /// The handler failed (its status gives the class).
    Error,
    /// The handler ran out of budget (504).
    Timeout,
    /// Refused before the handler ran (validation, unknown intent, auth,
    /// capacity, replay, CX, draining).
    Refused,
    /// The consumer went away while the handler ran; the handler was
    /// aborted and no answer was sent.
    Cancelled,
}

impl TaskOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The status class of the answer, as the `status_class` label (`none`
/// for a cancelled task, which gets no answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StatusClass {
    Ok2xx,
    Client4xx,
    Server5xx,
    None,
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status {
            200..=299 => Self::Ok2xx,
            400..=499 => Self::Client4xx,
            _ => Self::Server5xx,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok2xx => "2xx",
            Self::Client4xx => "4xx",
            Self::Server5xx => "5xx",
            Self::None => "none",
        }
    }
}

/// The (outcome, class) pairs a task can end with, in table order.
const COMBOS: [(TaskOutcome, StatusClass); 7] = [
    (TaskOutcome::Success, StatusClass::Ok2xx),
    (TaskOutcome::Error, StatusClass::Client4xx),
    (TaskOutcome::Error, StatusClass::Server5xx),
    (TaskOutcome::Timeout, StatusClass::Server5xx),
    (TaskOutcome::Refused, StatusClass::Client4xx),
    (TaskOutcome::Refused, StatusClass::Server5xx),
    (TaskOutcome::Cancelled, StatusClass::None),
];

fn combo_index(outcome: TaskOutcome, class: StatusClass) -> usize {
    COMBOS
        .iter()
        .position(|&c| c == (outcome, class))
        // Not a pair a task ends with (a success that is not 2xx cannot
        // happen): count it with the closest one rather than panic.
        .unwrap_or(match outcome {
            TaskOutcome::Success => 0,
            TaskOutcome::Error => 2,
            TaskOutcome::Timeout => 3,
            TaskOutcome::Refused => 5,
            TaskOutcome::Cancelled => 6,
        })
}

use crate::server::metrics::label_value;
label_value!(TaskOutcome);
label_value!(StatusClass);

/// Labels of `iicp_node_tasks_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TaskLabels {
    intent: Arc<str>,
    outcome: TaskOutcome,
    status_class: StatusClass,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct IntentLabels {
    intent: Arc<str>,
}

/// Labels of `iicp_node_cx_failures_total`: the CX error code (a fixed set
/// of `&'static str` codes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

/// The counters of one served intent (or of `other`).
#[derive(Debug)]
struct IntentSlot {
    /// None for `other`.
    intent: Option<IntentUrn>,
    tasks: [Counter; COMBOS.len()],
    /// None for `other`: its handler never runs.
    latency: Option<Histogram>,
}

/// A node's metrics and the registry they are encoded from.
pub(crate) struct NodeMetrics {
    registry: Registry,
    /// One slot per served intent, then the `other` slot last.
    slots: Vec<IntentSlot>,
    admission_waits: Counter,
    admission_refusals: Counter,
    backend_errors: Counter,
    cx_failures: Family<CodeLabels, Counter>,
    relay_forwarded: Counter,
    active: Gauge,
    max_concurrent: Gauge,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl NodeMetrics {
    /// Metrics for a node serving `intents` (deduplicated; the label is the
    /// intent's canonical text).
    pub fn new(intents: &[IntentUrn]) -> Self {
        let mut registry = Registry::with_prefix("iicp_node");
        let tasks = Family::<TaskLabels, Counter>::default();
        let latency = Family::<IntentLabels, Histogram, _>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        let mut slots = Vec::with_capacity(intents.len() + 1);
        let mut add = |intent: Option<IntentUrn>, label: Arc<str>| {
            let served = intent.is_some();
            slots.push(IntentSlot {
                tasks: std::array::from_fn(|i| {
                    let (outcome, status_class) = COMBOS[i];
                    tasks.get_or_create_owned(&TaskLabels {
                        intent: label.clone(),
                        outcome,
                        status_class,
                    })
                }),
                latency: served.then(|| {
                    latency.get_or_create_owned(&IntentLabels {
                        intent: label.clone(),
                    })
                }),
                intent,
            })
        };
        let mut seen: Vec<&IntentUrn> = Vec::new();
        for intent in intents {
            if !seen.contains(&intent) {
                seen.push(intent);
                add(Some(intent.clone()), Arc::from(intent.as_str()));
            }
        }
        add(None, Arc::from("other"));
        registry.register(
            "tasks",
            "Tasks by intent (served intents; anything else is other), outcome and status class",
            tasks,
        );
        registry.register(
            "task_duration_seconds",
            "Time the handler ran, per served intent (success, error or timeout)",
            latency,
        );
        let admission_waits = Counter::default();
        registry.register(
            "admission_waits",
            "Tasks that found every slot taken and waited for one (realtime, interactive)",
            admission_waits.clone(),
        );
        let admission_refusals = Counter::default();
        registry.register(
            "admission_refusals",
            "Tasks refused with 429 because the node was full",
            admission_refusals.clone(),
        );
        let backend_errors = Counter::default();
        registry.register(
            "backend_errors",
            "Handler failures reported as backend_error (the model server failed)",
            backend_errors.clone(),
        );
        let cx_failures = Family::<CodeLabels, Counter>::default();
        registry.register(
            "cx_failures",
            "Encrypted (CX) tasks refused, by IICP error code",
            cx_failures.clone(),
        );
        let relay_forwarded = Counter::default();
        registry.register(
            "relay_forwarded",
            "Tasks this relay-capable node forwarded to a bound worker",
            relay_forwarded.clone(),
        );
        let active = Gauge::default();
        registry.register("tasks_active", "Tasks running now", active.clone());
        let max_concurrent = Gauge::default();
        registry.register(
            "max_concurrent",
            "Most tasks the node runs at once",
            max_concurrent.clone(),
        );
        Self {
            registry,
            slots,
            admission_waits,
            admission_refusals,
            backend_errors,
            cx_failures,
            relay_forwarded,
            active,
            max_concurrent,
        }
    }

    /// The slot of `intent` when the node serves it, else the `other` slot.
    pub fn slot_of(&self, intent: &IntentUrn) -> usize {
        let served = self.slots.len() - 1;
        self.slots[..served]
            .iter()
            .position(|s| s.intent.as_ref() == Some(intent))
            .unwrap_or(served)
    }

    /// The `other` slot (a task whose intent is not known yet).
    pub fn other_slot(&self) -> usize {
        self.slots.len() - 1
    }

    /// Counts a task of this slot that ended this way.
    pub fn task(&self, slot: usize, outcome: TaskOutcome, class: StatusClass) {
        let slot = &self.slots[slot.min(self.slots.len() - 1)];
        slot.tasks[combo_index(outcome, class)].inc();
    }

    /// Records how long the handler of a task of this slot ran.
    pub fn latency(&self, slot: usize, elapsed: Duration) {
        let slot = &self.slots[slot.min(self.slots.len() - 1)];
        if let Some(latency) = &slot.latency {
            latency.observe(elapsed.as_secs_f64());
        }
    }

    pub fn admission_wait(&self) {
        self.admission_waits.inc();
    }

    pub fn admission_refused(&self) {
        self.admission_refusals.inc();
    }

    pub fn backend_error(&self) {
        self.backend_errors.inc();
    }

    /// A CX refusal with this (static, closed) code.
    pub fn cx_failure(&self, code: &'static str) {
        self.cx_failures.get_or_create(&CodeLabels { code }).inc();
    }

    /// The counter of tasks forwarded by this node's relay server (it
    /// increments its clone; both share one atomic).
    #[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))]
    pub fn relay_forwarded(&self) -> Counter {
        self.relay_forwarded.clone()
    }

    /// The text exposition, with the gauges read now.
    pub fn encode(&self, active: u32, max: u32) -> String {
        self.active.set(i64::from(active));
        self.max_concurrent.set(i64::from(max));
        crate::server::metrics::encode(&self.registry, 8 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_intents_count_as_other_and_served_ones_by_name() {
        let chat = IntentUrn::parse("urn:iicp:intent:llm:chat:v1").unwrap();
        let embed = IntentUrn::parse("urn:iicp:intent:llm:embed:v1").unwrap();
        let m = NodeMetrics::new(std::slice::from_ref(&chat));
        m.task(m.slot_of(&chat), TaskOutcome::Success, StatusClass::Ok2xx);
        m.task(
            m.slot_of(&embed),
            TaskOutcome::Refused,
            StatusClass::Client4xx,
        );
        m.task(m.other_slot(), TaskOutcome::Refused, StatusClass::Client4xx);
        let text = m.encode(0, 4);
        assert!(text.contains(
            "iicp_node_tasks_total{intent=\"urn:iicp:intent:llm:chat:v1\",outcome=\"success\",status_class=\"2xx\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "iicp_node_tasks_total{intent=\"other\",outcome=\"refused\",status_class=\"4xx\"} 2"
            ),
            "{text}"
        );
        assert!(!text.contains("embed"), "{text}");
        assert!(text.contains("iicp_node_max_concurrent 4"), "{text}");
    }
}
