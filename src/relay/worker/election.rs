//! Relay election (PROTOCOL.md §7.2 "Relay election"), as pure functions:
//! from the nodes a directory (or the gossip peer cache) offers, keep those
//! that are `relay_capable`, not this node, with `reputation_score` ≥ 0.1
//! (absent counts as fine), whose host passes the endpoint rules of
//! [`crate::wire::endpoint`], and choose the minimum of
//! (`floor(load·1e6)`, `sha256_hex("{worker_id}:{peer_id}")`). The host
//! comes from the peer's `endpoint`, the port is its `relay_accept_port`
//! (default 9485).
//!
//! A relay host is untrusted input (anyone can register as relay-capable):
//! loopback, private, link-local, carrier-grade NAT and local-only names
//! are allowed only when the directory itself is on this machine or LAN
//! (the same notion as `node::reach::directory_is_local`); unspecified,
//! multicast, documentation and other special-purpose addresses never are.

use crate::node::DEFAULT_RELAY_ACCEPT_PORT;
use crate::wire::endpoint::{EndpointHost, NonPublic, classify_ip, classify_name, parse_endpoint};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Relays below this reputation are skipped (S §7.6).
pub(crate) const MIN_REPUTATION: f64 = 0.1;
/// The most nodes of one discover answer looked at.
const MAX_CANDIDATES: usize = 100;

/// A node that may relay for us, as a directory's discover answer or the
/// gossip peer cache describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayCandidate {
    /// Its node id.
    pub node_id: String,
    /// Its HTTP endpoint; the relay host is taken from it.
    pub endpoint: String,
    /// Whether it says it relays.
    pub relay_capable: bool,
    /// Its native relay port; `None` means the default 9485.
    pub relay_accept_port: Option<u16>,
    /// Its load, 0..1 (absent counts as 0).
    pub load: Option<f64>,
    /// Its reputation, 0..1 (absent counts as fine).
    pub reputation_score: Option<f64>,
}

/// Where the gossip peer cache hands candidates to the election when the
/// directory cannot be reached or offers none.
pub(crate) type CandidateSource = Arc<dyn Fn() -> Vec<RelayCandidate> + Send + Sync>;

/// A relay to dial: its native accept address, and what else is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// Host (name or address, IPv6 without brackets).
    pub host: String,
    /// Its native relay port.
    pub port: u16,
    /// The relay's node id, when it was elected (names the ticket's
    /// audience); `None` for a relay the operator named.
    pub node_id: Option<String>,
    /// The port of the relay's HTTP endpoint, when known from the directory
    /// (the provisional endpoint before a bind answers with the real one).
    pub http_port: Option<u16>,
    /// True when the operator named it (trusted as given, not judged).
    pub named: bool,
}

impl RelayTarget {
    /// `host:port` (IPv6 in brackets): how it is logged, excluded and
    /// reported by `RunningNode::relay`.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The relay the operator named: `host:port`, `[v6]:port`, or a bare
    /// host (port 9485).
    pub fn parse_named(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let bad = || {
            format!("relay worker endpoint `{spec}` is not host:port (e.g. relay.example.net:9485)")
        };
        let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match spec.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(bad()), // bare IPv6 needs brackets
                Some((h, p)) => (h, Some(p)),
                None => (spec, None),
            }
        };
        let port = match port {
            None => DEFAULT_RELAY_ACCEPT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !host_ok {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            node_id: None,
            http_port: None,
            named: true,
        })
    }
}

/// Reads the candidates of a discover answer leniently: a node missing
/// `node_id` or `endpoint` is skipped, a field of the wrong type reads as
/// absent, at most 100 nodes are looked at.
pub(crate) fn candidates_from_discover(answer: &Value) -> Vec<RelayCandidate> {
    let Some(nodes) = answer.get("nodes").and_then(Value::as_array) else {
        return Vec::new();
    };
    nodes
        .iter()
        .take(MAX_CANDIDATES)
        .filter_map(|n| {
            Some(RelayCandidate {
                node_id: n.get("node_id")?.as_str()?.to_owned(),
                endpoint: n.get("endpoint")?.as_str()?.to_owned(),
                relay_capable: n.get("relay_capable").and_then(Value::as_bool) == Some(true),
                relay_accept_port: n
                    .get("relay_accept_port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok()),
                load: n.get("load").and_then(Value::as_f64),
                reputation_score: n.get("reputation_score").and_then(Value::as_f64),
            })
        })
        .collect()
}

/// Whether a relay host of this kind may be dialled: public always; a
/// local or private one only for a local directory.
pub(crate) fn host_allowed(verdict: Option<NonPublic>, local_directory: bool) -> bool {
    match verdict {
        None => true,
        Some(
            NonPublic::Loopback
            | NonPublic::Private
            | NonPublic::LinkLocal
            | NonPublic::Cgnat
            | NonPublic::LocalName
            | NonPublic::BareHostname,
        ) => local_directory,
        Some(NonPublic::Unspecified | NonPublic::Documentation | NonPublic::SpecialPurpose) => {
            false
        }
    }
}

/// The relay host and HTTP port of a candidate's endpoint, if its form is
/// acceptable.
fn relay_host(endpoint: &str, local_directory: bool) -> Option<(String, u16)> {
    let parsed = parse_endpoint(endpoint).ok()?;
    let (host, verdict) = match &parsed.host {
        EndpointHost::Ip(ip) => (ip.to_string(), classify_ip(*ip)),
        EndpointHost::Name(name) => (name.clone(), classify_name(name)),
    };
    host_allowed(verdict, local_directory).then_some((host, parsed.port))
}

/// The tie-breaking hash: lowercase hex SHA-256 of `{worker_id}:{peer_id}`.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The election key of a candidate: `floor(load·1e6)` (absent, negative
/// or not a number counts as 0), then the hash.
fn key(worker_id: &str, c: &RelayCandidate) -> (u64, String) {
    let load = c.load.filter(|l| l.is_finite() && *l > 0.0).unwrap_or(0.0);
    (
        (load * 1e6).floor() as u64,
        sha256_hex(&format!("{worker_id}:{}", c.node_id)),
    )
}

/// Elects the relay for `worker_id` among `candidates`, skipping the
/// relays whose `host:port` is in `excluded` (they failed us). `None` when
/// no candidate qualifies.
pub(crate) fn elect(
    candidates: &[RelayCandidate],
    worker_id: &str,
    excluded: &[String],
    local_directory: bool,
) -> Option<RelayTarget> {
    candidates
        .iter()
        .filter(|c| c.relay_capable && c.node_id != worker_id)
        .filter(|c| {
            c.reputation_score
                .is_none_or(|r| r.is_finite() && r >= MIN_REPUTATION)
        })
        .filter_map(|c| {
            let (host, http_port) = relay_host(&c.endpoint, local_directory)?;
            let port = match c.relay_accept_port {
                None => DEFAULT_RELAY_ACCEPT_PORT,
                Some(0) => return None,
                Some(p) => p,
            };
            let target = RelayTarget {
                host,
                port,
                node_id: Some(c.node_id.clone()),
                http_port: Some(http_port),
                named: false,
            };
            (!excluded.contains(&target.addr())).then(|| (key(worker_id, c), target))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, target)| target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cand(id: &str, endpoint: &str, load: Option<f64>) -> RelayCandidate {
        RelayCandidate {
            node_id: id.into(),
            endpoint: endpoint.into(),
            relay_capable: true,
            relay_accept_port: Some(9485),
            load,
            reputation_score: None,
        }
    }

    /// The id among `ids` whose hash with `worker` is smallest.
    fn hash_winner(worker: &str, ids: &[&str]) -> String {
        ids.iter()
            .min_by_key(|id| sha256_hex(&format!("{worker}:{id}")))
            .unwrap()
            .to_string()
    }

    #[test]
    fn election_table() {
        let w = "worker-1";
        let tie = hash_winner(w, &["a", "b"]);
        type Case = (
            &'static str,
            Vec<RelayCandidate>,
            bool,
            Option<(&'static str, u16)>,
        );
        let mut low_rep = cand("low", "http://8.8.8.8:9484", Some(0.0));
        low_rep.reputation_score = Some(0.05);
        let mut ok_rep = cand("ok", "http://8.8.4.4:9484", Some(0.5));
        ok_rep.reputation_score = Some(0.1);
        let mut nan_rep = cand("nan", "http://8.8.8.8:9484", Some(0.0));
        nan_rep.reputation_score = Some(f64::NAN);
        let mut not_relay = cand("plain", "http://8.8.8.8:9484", Some(0.0));
        not_relay.relay_capable = false;
        let mut no_port = cand("np", "http://9.9.9.9:8080", None);
        no_port.relay_accept_port = None;
        let mut zero_port = cand("zp", "http://9.9.9.9:8080", None);
        zero_port.relay_accept_port = Some(0);
        let cases: Vec<Case> = vec![
            ("nothing offered", vec![], false, None),
            (
                "lowest load wins",
                vec![
                    cand("a", "http://8.8.8.8:1", Some(0.5)),
                    cand("b", "http://1.1.1.1:1", Some(0.25)),
                ],
                false,
                Some(("1.1.1.1", 9485)),
            ),
            (
                "load below 1e-6 ties; the hash decides",
                vec![
                    cand("a", "http://8.8.8.8:1", Some(0.0000001)),
                    cand("b", "http://1.1.1.1:1", Some(0.0)),
                ],
                false,
                Some((if tie == "a" { "8.8.8.8" } else { "1.1.1.1" }, 9485)),
            ),
            (
                "absent load counts as 0",
                vec![
                    cand("a", "http://8.8.8.8:1", Some(0.1)),
                    cand("b", "http://1.1.1.1:1", None),
                ],
                false,
                Some(("1.1.1.1", 9485)),
            ),
            (
                "low reputation skipped",
                vec![low_rep, ok_rep.clone()],
                false,
                Some(("8.8.4.4", 9485)),
            ),
            (
                "reputation 0.1 is enough",
                vec![ok_rep],
                false,
                Some(("8.8.4.4", 9485)),
            ),
            ("NaN reputation skipped", vec![nan_rep], false, None),
            ("not relay capable", vec![not_relay], false, None),
            (
                "self is skipped",
                vec![cand(w, "http://8.8.8.8:1", Some(0.0))],
                false,
                None,
            ),
            (
                "missing port: 9485",
                vec![no_port],
                false,
                Some(("9.9.9.9", 9485)),
            ),
            ("port 0 is no port", vec![zero_port], false, None),
            (
                "loopback refused for a public directory",
                vec![cand("l", "http://127.0.0.1:1", None)],
                false,
                None,
            ),
            (
                "loopback allowed for a local directory",
                vec![cand("l", "http://127.0.0.1:1", None)],
                true,
                Some(("127.0.0.1", 9485)),
            ),
            (
                "private refused",
                vec![cand("p", "http://192.168.1.4:1", None)],
                false,
                None,
            ),
            (
                "private allowed locally",
                vec![cand("p", "http://10.0.0.4:1", None)],
                true,
                Some(("10.0.0.4", 9485)),
            ),
            (
                "link-local refused",
                vec![cand("m", "http://169.254.169.254", None)],
                false,
                None,
            ),
            (
                "cgnat refused",
                vec![cand("c", "http://100.64.1.1:1", None)],
                false,
                None,
            ),
            (
                "unspecified never",
                vec![cand("u", "http://0.0.0.0:1", None)],
                true,
                None,
            ),
            (
                "multicast never",
                vec![cand("mc", "http://224.0.0.1:1", None)],
                true,
                None,
            ),
            (
                "documentation never",
                vec![cand("d", "http://203.0.113.5:1", None)],
                true,
                None,
            ),
            (
                "v6 loopback refused",
                vec![cand("v", "http://[::1]:1", None)],
                false,
                None,
            ),
            (
                "v4-mapped loopback refused",
                vec![cand("v", "http://[::ffff:127.0.0.1]:1", None)],
                false,
                None,
            ),
            (
                "localhost name refused",
                vec![cand("n", "http://localhost:1", None)],
                false,
                None,
            ),
            (
                "bare name refused",
                vec![cand("n", "http://ollama:1", None)],
                false,
                None,
            ),
            (
                "public name kept",
                vec![cand("n", "https://relay.iicp.network", None)],
                false,
                Some(("relay.iicp.network", 9485)),
            ),
            (
                "credentials refused",
                vec![cand("n", "http://u:p@8.8.8.8:1", None)],
                false,
                None,
            ),
            (
                "not a URL",
                vec![
                    cand("n", "ftp://8.8.8.8", None),
                    cand("n2", "garbage", None),
                ],
                false,
                None,
            ),
            (
                "a hostile one does not hide a good one",
                vec![
                    cand("h", "http://127.0.0.1:1", Some(0.0)),
                    cand("g", "http://8.8.8.8:1", Some(0.9)),
                ],
                false,
                Some(("8.8.8.8", 9485)),
            ),
        ];
        for (name, candidates, local, want) in cases {
            let got = elect(&candidates, w, &[], local);
            assert_eq!(
                got.as_ref().map(|t| (t.host.as_str(), t.port)),
                want,
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn the_tie_break_is_the_stable_hash_and_exclusion_moves_on() {
        let c = vec![
            cand("r1", "http://8.8.8.8:9484", Some(0.2)),
            cand("r2", "http://1.1.1.1:9484", Some(0.2)),
            cand("r3", "http://9.9.9.9:9484", Some(0.2)),
        ];
        for worker in ["w-a", "w-b", "w-c", "w-d"] {
            let first = elect(&c, worker, &[], false).unwrap();
            let want = hash_winner(worker, &["r1", "r2", "r3"]);
            assert_eq!(first.node_id.as_deref(), Some(want.as_str()), "{worker}");
            // Same input, same answer, in any order.
            let mut reversed = c.clone();
            reversed.reverse();
            assert_eq!(elect(&reversed, worker, &[], false), Some(first.clone()));
            let second = elect(&c, worker, &[first.addr()], false).unwrap();
            assert_ne!(second.node_id, first.node_id);
            assert_eq!(
                elect(
                    &c,
                    worker,
                    &[
                        first.addr(),
                        second.addr(),
                        "9.9.9.9:9485".into(),
                        "8.8.8.8:9485".into(),
                        "1.1.1.1:9485".into()
                    ],
                    false
                ),
                None
            );
        }
        assert_eq!(sha256_hex("w:p").len(), 64);
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn discover_answers_read_leniently() {
        let answer = json!({"nodes": [
            {"node_id": "a", "endpoint": "http://8.8.8.8:9484", "relay_capable": true,
             "relay_accept_port": 7000, "load": 0.5, "reputation_score": 0.9},
            {"node_id": "b", "endpoint": "http://1.1.1.1:9484", "relay_capable": "yes",
             "relay_accept_port": 70000, "load": "high"},
            {"endpoint": "http://x.example"},
            {"node_id": 5, "endpoint": "http://y"},
            "not an object"
        ]});
        let c = candidates_from_discover(&answer);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].relay_accept_port, Some(7000));
        assert!(!c[1].relay_capable);
        assert_eq!((c[1].relay_accept_port, c[1].load), (None, None));
        assert!(candidates_from_discover(&json!({"nodes": 3})).is_empty());
        assert!(candidates_from_discover(&json!([])).is_empty());
        let many = json!({"nodes": (0..500).map(|i| json!({"node_id": format!("n{i}"), "endpoint": "http://8.8.8.8"})).collect::<Vec<_>>()});
        assert_eq!(candidates_from_discover(&many).len(), MAX_CANDIDATES);
    }

    #[test]
    fn named_relays_parse() {
        for (spec, want) in [
            ("relay.example.net:9485", Some(("relay.example.net", 9485))),
            ("10.0.0.1:7000", Some(("10.0.0.1", 7000))),
            ("relay.example.net", Some(("relay.example.net", 9485))),
            ("[2001:db8::1]:9000", Some(("2001:db8::1", 9000))),
            ("[::1]", Some(("::1", 9485))),
            ("2001:db8::1:9000", None),
            ("host:0", None),
            ("host:99999", None),
            (":9485", None),
            ("http://relay:9485", None),
            ("relay host:1", None),
            ("", None),
        ] {
            let got = RelayTarget::parse_named(spec).ok();
            assert_eq!(
                got.as_ref().map(|t| (t.host.as_str(), t.port)),
                want,
                "{spec}"
            );
        }
        assert_eq!(
            RelayTarget::parse_named("[::1]:5").unwrap().addr(),
            "[::1]:5"
        );
    }
}
