//! Quality-of-service classes (`qos`, PROTOCOL.md §1.6, §2.3).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A QoS class. Unknown values are refused (the directory answers 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Qos {
    /// Needs a seasoned node: ≥ 1000 completed tasks and reputation ≥ 0.8.
    #[serde(rename = "realtime")]
    Realtime,
    /// Past probation: ≥ 100 completed tasks (when the directory enforces it).
    #[serde(rename = "interactive")]
    Interactive,
    /// Throughput over latency.
    #[serde(rename = "batch")]
    Batch,
    /// Anything goes.
    #[serde(rename = "best-effort")]
    BestEffort,
}

impl Qos {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Interactive => "interactive",
            Self::Batch => "batch",
            Self::BestEffort => "best-effort",
        }
    }

    /// True for the classes that may wait for an admission slot.
    pub fn waits_for_slot(self) -> bool {
        matches!(self, Self::Realtime | Self::Interactive)
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a QoS class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown qos `{0}` (expected realtime, interactive, batch or best-effort)")]
pub struct UnknownQos(pub String);

impl FromStr for Qos {
    type Err = UnknownQos;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "realtime" => Ok(Self::Realtime),
            "interactive" => Ok(Self::Interactive),
            "batch" => Ok(Self::Batch),
            "best-effort" => Ok(Self::BestEffort),
            other => Err(UnknownQos(other.to_owned())),
        }
    }
}
