//! `directory_lifecycle`: REGISTER, HEARTBEAT and DEREGISTER bodies at the
//! directory, applied to a real registry, and the discover answers it then
//! gives.
//!
//! Input: parts separated by `0xFF` (a byte no JSON text holds), each a tag
//! byte and a body:
//!
//! - `R` / `L`: `POST /v1/register`: `decode_json`, `check_register`, the
//!   size and room checks, `parse_endpoint`, then `commit_registration`
//!   (`R`: liveness not probed, as with `--skip-liveness-check`; `L`: a
//!   local node that did not answer the probe yet);
//! - `P`: the same body as a re-registration of the last node with its
//!   token as proof (`node_id` and `current_node_token` set);
//! - `H`: `POST /v1/heartbeat` with the token of the node the body names
//!   (else the last one): `decode_json`, `check_heartbeat`, `heartbeat`;
//! - `A`: the same, `challenge_response` answering the node's last
//!   challenge as an honest node would;
//! - `D`: `DELETE /v1/register` with that token;
//! - `Q`: a discover query (the query string's fields as JSON), validated
//!   as `routes/discovery.rs` does;
//! - `T`: the clock moves on by the next two bytes' seconds (every other
//!   part moves it by one).
//!
//! Oracles: after every part that changed the registry or the clock, and
//! for every query, the discover index answers as the full-scan reference
//! does (`Registry::discover_reference`, compiled under `cfg(fuzzing)`);
//! every stored record (what `--db` stores as JSON and reads back after a
//! restart), ack and pong, and every node of the last discover
//! answer, read back from their JSON as they were (what the directory
//! sends, clients read); refusals carry a 4xx or 5xx status.

use super::{CHAT, Picks, assert_round_trip};
use crate::Secret;
use crate::directory::ranking::EligibilityQuery;
use crate::directory::record::NodeRecord;
use crate::directory::registry::{Bounds, DiscoverFilter, Registry};
use crate::directory::validate::{check_heartbeat, check_register};
use crate::server::api_error::ApiError;
use crate::server::request::decode_json;
use crate::wire::discover::clamp_limit;
use crate::wire::endpoint::parse_endpoint;
use crate::wire::heartbeat::challenge_response;
use crate::wire::{
    DeregisterRequest, DiscoverQuery, HeartbeatRequest, IntentUrn, NodeInfo, Qos, RegisterRequest,
    check_intent_policy,
};
use std::sync::LazyLock;

/// The separator of parts.
const SEPARATOR: u8 = 0xFF;
/// Parts read from one input (the rest is ignored): enough for a node's
/// whole life, few enough that one input stays fast.
const MAX_PARTS: usize = 16;
/// Where the clock starts (2023-11-14).
const START_MS: u64 = 1_700_000_000_000;

/// Two nodes every run starts with, so that discover has something to rank.
const BACKGROUND: [&str; 2] = [
    r#"{"node_id":"bg-1","endpoint":"https://bg1.example.net","region":"eu-west",
        "capabilities":[{"intent":"urn:iicp:intent:llm:chat:v1","models":["llama3","phi3"]}],
        "limits":{"max_concurrent":4,"tokens_per_min":1000},"sdk_version":"0.7.70"}"#,
    r#"{"node_id":"bg-2","endpoint":"https://bg2.example.net","region":"us-east",
        "capabilities":[{"intent":"urn:iicp:intent:llm:chat:v1","models":["phi3"]},
                        {"intent":"urn:iicp:intent:llm:embedding:v1","models":["nomic-embed"]}],
        "pricing":{"credit_cost_multiplier":1.5}}"#,
];

/// What the harness knows of a node it registered: its credentials and
/// its last challenge, as the node itself would.
struct Known {
    node_id: String,
    token: Secret,
    hmac_key: Secret,
    challenge: Option<String>,
}

struct Run {
    registry: Registry,
    now_ms: u64,
    known: Vec<Known>,
    picks: Picks,
}

/// Checks a refusal's form; false (nothing changed).
fn refused(e: &ApiError) -> bool {
    let status = e.status().as_u16();
    assert!(
        (400..600).contains(&status),
        "a refusal with status {status}"
    );
    assert!(!e.code().is_empty(), "a refusal without a code");
    false
}

const BOUNDS: Bounds = Bounds {
    ttl_ms: 90_000,
    evict_after_ms: 600_000,
    // Small, so that a full registry and eviction are reached.
    max_nodes: 6,
    max_node_bytes: 16 * 1024,
};

/// The records of [`BACKGROUND`], registered once through the same path;
/// each run starts from them as a directory restarted with `--db` would
/// (`Registry::new` with stored records).
static BACKGROUND_RECORDS: LazyLock<Vec<NodeRecord>> = LazyLock::new(|| {
    let mut run = Run::new(Registry::new(Vec::new(), None, BOUNDS), &[]);
    for body in BACKGROUND {
        run.register(body.as_bytes(), None, false);
    }
    let records = run.registry.find_prefix("bg-");
    assert_eq!(
        records.len(),
        BACKGROUND.len(),
        "the background nodes register"
    );
    records
});

pub fn run(data: &[u8]) {
    let registry = Registry::new(BACKGROUND_RECORDS.clone(), None, BOUNDS);
    let mut run = Run::new(registry, data);
    for part in data.split(|b| *b == SEPARATOR).take(MAX_PARTS) {
        let Some((&tag, body)) = part.split_first() else {
            continue;
        };
        run.now_ms += 1000;
        let changed = match tag {
            b'R' => run.register(body, None, false),
            b'L' => run.register(body, Some(false), false),
            b'P' => run.register(body, None, true),
            b'H' => run.heartbeat(body, false),
            b'A' => run.heartbeat(body, true),
            b'D' => run.deregister(body),
            b'Q' => {
                run.query(body);
                false
            }
            b'T' => {
                let secs = u64::from(body.first().copied().unwrap_or(0))
                    | u64::from(body.get(1).copied().unwrap_or(0)) << 8;
                run.now_ms += secs * 1000;
                true
            }
            _ => false,
        };
        // The index is checked whenever the registry or the clock moved.
        if changed {
            run.check_index(false);
        }
    }
    run.check_index(true);
}

impl Run {
    fn new(registry: Registry, data: &[u8]) -> Self {
        Self {
            registry,
            now_ms: START_MS,
            known: Vec::new(),
            picks: Picks::new(data),
        }
    }

    /// `routes/lifecycle.rs` `register`, without the rate limit and the probe.
    /// True when a node was registered.
    fn register(&mut self, body: &[u8], reachable: Option<bool>, with_proof: bool) -> bool {
        let mut req: RegisterRequest = match decode_json(body) {
            Ok(req) => req,
            Err(r) => {
                assert!(r.status == 400 || r.status == 422);
                return false;
            }
        };
        if with_proof {
            let Some(last) = self.known.last() else {
                return false;
            };
            req.node_id = Some(last.node_id.clone());
            req.current_node_token = Some(last.token.clone());
        }
        if let Err(e) = check_register(&req) {
            return refused(&e);
        }
        if let Err(e) = self.registry.check_registration_size(&req) {
            return refused(&e);
        }
        if let Err(e) = self.registry.ensure_room(&req, self.now_ms) {
            return refused(&e);
        }
        parse_endpoint(&req.endpoint).expect("check_register accepted the endpoint");
        let ack = match self.registry.commit_registration(
            req,
            "203.0.113.7".into(),
            reachable,
            self.now_ms,
        ) {
            Ok(ack) => ack,
            Err(e) => return refused(&e),
        };
        let record = self
            .registry
            .get(&ack.node_id)
            .expect("a committed node is held");
        // `--db` stores the record as JSON and reads it back after a restart.
        assert_round_trip::<NodeRecord>(&record, "a stored record");
        assert_round_trip(&ack, "a registration ack");
        self.known.retain(|k| k.node_id != ack.node_id);
        self.known.push(Known {
            node_id: ack.node_id,
            token: ack.node_token.expect("a node token"),
            hmac_key: ack.node_hmac_key.expect("an HMAC key"),
            challenge: None,
        });
        true
    }

    /// The credentials of the node `node_id`, else of the last one.
    fn credentials(&mut self, node_id: &str) -> Option<&mut Known> {
        let at = self
            .known
            .iter()
            .position(|k| k.node_id == node_id)
            .or_else(|| self.known.len().checked_sub(1))?;
        self.known.get_mut(at)
    }

    /// `routes/lifecycle.rs` `heartbeat`.
    /// True when the heartbeat was applied.
    fn heartbeat(&mut self, body: &[u8], answer: bool) -> bool {
        let mut hb: HeartbeatRequest = match decode_json(body) {
            Ok(hb) => hb,
            Err(r) => {
                assert!(r.status == 400 || r.status == 422);
                return false;
            }
        };
        let now = self.now_ms;
        let Some(known) = self.credentials(&hb.node_id) else {
            return false;
        };
        if answer {
            if let Some(challenge) = &known.challenge {
                hb.challenge_response = Some(challenge_response(&known.hmac_key, challenge));
            }
        }
        let token = known.token.clone();
        if let Err(e) = check_heartbeat(&hb) {
            return refused(&e);
        }
        let node_id = hb.node_id.clone();
        match self.registry.heartbeat(&token, hb, now, 30_000) {
            Ok(pong) => {
                assert_round_trip(&pong, "a pong");
                if let Some(k) = self.known.iter_mut().find(|k| k.node_id == node_id) {
                    k.challenge = pong.challenge;
                }
                let record = self.registry.get(&node_id).expect("a node that beat");
                assert!((0.0..=1.0).contains(&record.reputation));
                assert!((0.0..=1.0).contains(&record.load));
                assert_round_trip::<NodeRecord>(&record, "a stored record");
                true
            }
            Err(e) => refused(&e),
        }
    }

    /// `routes/lifecycle.rs` `deregister`.
    /// True when the node was removed.
    fn deregister(&mut self, body: &[u8]) -> bool {
        let Ok(req) = decode_json::<DeregisterRequest>(body) else {
            return false;
        };
        let Some(known) = self.credentials(&req.node_id) else {
            return false;
        };
        let token = known.token.clone();
        match self.registry.deregister(&token, &req.node_id) {
            Ok(()) => {
                assert!(self.registry.get(&req.node_id).is_none());
                true
            }
            Err(e) => refused(&e),
        }
    }

    /// `routes/discovery.rs` `discover`, the query's fields given as JSON.
    fn query(&mut self, body: &[u8]) {
        let Ok(q) = serde_json::from_slice::<DiscoverQuery>(body) else {
            return;
        };
        let Some(intent) = q.intent.as_deref() else {
            return;
        };
        if check_intent_policy(intent).is_err() || IntentUrn::parse(intent).is_err() {
            return;
        }
        let min_reputation = q.min_reputation.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&min_reputation) {
            return;
        }
        let enforce = self.picks.next() & 1 == 0;
        let filter = DiscoverFilter {
            intent,
            region: q.region.as_deref().filter(|r| !r.is_empty()),
            eligibility: EligibilityQuery {
                model: q.model.as_deref().filter(|m| !m.is_empty()),
                min_reputation,
                qos: q.qos,
                enforce_qos_gates: enforce,
            },
            limit: clamp_limit(q.limit) as usize,
        };
        self.compare(&filter, false);
    }

    /// One query the harness makes up from what is registered, checked
    /// (`round_trip`: and every node of the answer read back from JSON).
    fn check_index(&mut self, round_trip: bool) {
        let records = self.registry.find_prefix("");
        let n = records.len().max(1);
        let record = records.get(self.picks.next() as usize % n);
        let capability = record.and_then(|r| {
            let caps = &r.registration.capabilities;
            caps.get(self.picks.next() as usize % caps.len().max(1))
        });
        let intent = capability.map_or(CHAT.to_owned(), |c| c.intent.as_str().to_owned());
        let model = capability
            .and_then(|c| {
                c.models
                    .get(self.picks.next() as usize % c.models.len().max(1))
            })
            .filter(|_| self.picks.next() % 3 == 0)
            .cloned();
        let region = record
            .and_then(|r| r.registration.region.clone())
            .filter(|_| self.picks.next() % 2 == 0);
        let qos = match self.picks.next() % 5 {
            0 => Some(Qos::Realtime),
            1 => Some(Qos::Interactive),
            2 => Some(Qos::Batch),
            3 => Some(Qos::BestEffort),
            _ => None,
        };
        let min_reputation = [0.0, 0.1, 0.5, 0.9][self.picks.next() as usize % 4];
        let limit = 1 + (self.picks.next() % 12) as usize;
        let enforce = self.picks.next() & 1 == 0;
        let filter = DiscoverFilter {
            intent: &intent,
            region: region.as_deref().filter(|r| !r.is_empty()),
            eligibility: EligibilityQuery {
                model: model.as_deref(),
                min_reputation,
                qos,
                enforce_qos_gates: enforce,
            },
            limit,
        };
        self.compare(&filter, round_trip);
    }

    /// The index and the full scan give the same answer (and, with
    /// `round_trip`, every listed node reads back from its JSON).
    fn compare(&self, filter: &DiscoverFilter<'_>, round_trip: bool) {
        let indexed = self.registry.discover(filter, self.now_ms);
        let scanned = self.registry.discover_reference(filter, self.now_ms);
        assert_eq!(
            indexed, scanned,
            "the discover index and the full scan disagree on {filter:?}"
        );
        assert!(indexed.len() <= filter.limit);
        for node in indexed.iter().filter(|_| round_trip) {
            assert_round_trip::<NodeInfo>(node, "a discovered node");
        }
    }
}
