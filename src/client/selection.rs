//! Candidate order (PROTOCOL.md §5.1 step 5). The directory's score is
//! never rewritten: strategies only reorder what it returned.

use crate::wire::NodeInfo;
use std::borrow::Borrow;
use std::str::FromStr;

/// How candidates are ordered before they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SelectionStrategy {
    /// The directory's order (the spec's default).
    #[default]
    DirectoryOrder,
    /// Opt-in inverse-load spreading (`weighted_v1`, pre-normative): among
    /// the first `top_k` nodes, the first is drawn with weight
    /// `max(score, 0.01) / (1 + clamp(load, 0, 1))`; the rest follow by
    /// weight, then directory order.
    WeightedV1 {
        /// Size of the pool drawn from (3 in the reference vectors).
        top_k: usize,
    },
}

impl SelectionStrategy {
    /// `weighted_v1` with the reference pool of 3.
    pub fn weighted_v1() -> Self {
        Self::WeightedV1 { top_k: 3 }
    }
}

impl FromStr for SelectionStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "directory" | "deterministic" | "directory_order" => Ok(Self::DirectoryOrder),
            "weighted_v1" | "weighted" => Ok(Self::weighted_v1()),
            other => Err(format!("unknown selection strategy `{other}`")),
        }
    }
}

/// The `weighted_v1` weight of a node.
pub fn weight(score: f64, load: f64) -> f64 {
    score.max(0.01) / (1.0 + load.clamp(0.0, 1.0))
}

/// Orders `nodes` by `strategy`; `random` in `[0, 1)` drives the weighted
/// draw (pass a uniform random number; tests pass fixed values). The nodes
/// may come with more (the client's candidates carry their task URL).
pub fn order<T: Borrow<NodeInfo>>(
    strategy: SelectionStrategy,
    mut nodes: Vec<T>,
    random: f64,
) -> Vec<T> {
    let SelectionStrategy::WeightedV1 { top_k } = strategy else {
        return nodes;
    };
    let pool_len = top_k.max(1).min(nodes.len());
    if pool_len <= 1 {
        return nodes;
    }
    let rest = nodes.split_off(pool_len);
    let weights: Vec<f64> = nodes
        .iter()
        .map(|n| {
            let n = n.borrow();
            weight(n.score, n.load.unwrap_or(0.0))
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let target = random.clamp(0.0, 1.0) * total;
    let mut acc = 0.0;
    let first = weights
        .iter()
        .position(|w| {
            acc += w;
            target < acc
        })
        .unwrap_or(pool_len - 1);
    let mut others: Vec<(f64, T)> = weights.into_iter().zip(nodes).collect();
    let (_, chosen) = others.remove(first);
    // Stable sort: equal weights keep the directory's order.
    others.sort_by(|a, b| b.0.total_cmp(&a.0));
    std::iter::once(chosen)
        .chain(others.into_iter().map(|(_, n)| n))
        .chain(rest)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node(id: &str, score: f64, load: f64) -> NodeInfo {
        serde_json::from_value(json!({
            "node_id": id, "endpoint": "https://n.example.net", "score": score,
            "available": true, "load": load
        }))
        .unwrap()
    }

    fn vectors() -> Value {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/selection-v1.json"
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn nodes_of(v: &Value) -> Vec<NodeInfo> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| {
                node(
                    n["node_id"].as_str().unwrap(),
                    n["score"].as_f64().unwrap(),
                    n["load"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn order_vectors() {
        let v = vectors();
        let top_k = v["top_k"].as_u64().unwrap() as usize;
        for case in v["vectors"].as_array().unwrap() {
            let ordered = order(
                SelectionStrategy::WeightedV1 { top_k },
                nodes_of(&case["nodes"]),
                case["random"].as_f64().unwrap(),
            );
            let ids: Vec<&str> = ordered.iter().map(|n| n.node_id.as_str()).collect();
            let want: Vec<&str> = case["expected_order"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(ids, want, "{}", case["name"]);
        }
    }

    #[test]
    fn distribution_vectors() {
        // Evenly spaced draws (i + 0.5) / n reproduce the expected counts exactly.
        for case in vectors()["distribution_vectors"].as_array().unwrap() {
            let n = case["sample_count"].as_u64().unwrap();
            let top_k = case["top_k"].as_u64().unwrap() as usize;
            let nodes = nodes_of(&case["nodes"]);
            let mut counts = std::collections::BTreeMap::<String, u64>::new();
            for i in 0..n {
                let r = (i as f64 + 0.5) / n as f64;
                let first = order(SelectionStrategy::WeightedV1 { top_k }, nodes.clone(), r);
                *counts.entry(first[0].node_id.clone()).or_default() += 1;
            }
            for (id, want) in case["expected_first_counts"].as_object().unwrap() {
                assert_eq!(
                    counts.get(id).copied().unwrap_or(0),
                    want.as_u64().unwrap(),
                    "{} {id}",
                    case["name"]
                );
            }
        }
    }

    #[test]
    fn directory_order_is_untouched_and_scores_are_never_rewritten() {
        let nodes = vec![node("a", 0.2, 0.9), node("b", 0.9, 0.0)];
        let out = order(SelectionStrategy::DirectoryOrder, nodes.clone(), 0.99);
        assert_eq!(out, nodes);
        let out = order(SelectionStrategy::weighted_v1(), nodes, 0.99);
        assert_eq!(out[0].node_id, "b");
        assert_eq!(out[0].score, 0.9);
    }
}
