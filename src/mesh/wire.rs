//! The bodies of a peer exchange (PROTOCOL.md §8) and the judging of each
//! entry a peer sends. Entries are untrusted input: at most
//! [`MAX_ENTRIES_READ`] are read from one body (the rest are skipped
//! unread), every field is length- or range-checked, and an endpoint must
//! pass the client's endpoint rules (`wire::endpoint` through the SSRF
//! guard: http(s), no credentials, query or fragment, and a public host
//! unless the node's directory is local).

use super::Peer;
use super::time;
use crate::client::guard::EndpointGuard;
use crate::wire::register::is_valid_node_id;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use std::fmt;

/// The most entries read from one exchange body or reply; the rest of the
/// list is skipped without being kept.
pub(crate) const MAX_ENTRIES_READ: usize = 100;
/// The longest endpoint accepted (as the directory's registration check).
pub(crate) const MAX_ENDPOINT_LEN: usize = 2048;
/// The longest region kept; a longer or odd one is replaced by "".
pub(crate) const MAX_REGION_LEN: usize = 64;

/// The first [`MAX_ENTRIES_READ`] elements of a JSON list; `null` is empty.
#[derive(Debug, Default)]
pub(crate) struct FirstEntries {
    pub entries: Vec<Value>,
    /// Elements after the first `MAX_ENTRIES_READ`, skipped.
    pub skipped: usize,
}

impl<'de> Deserialize<'de> for FirstEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of peers")
            }
            fn visit_unit<E>(self) -> Result<FirstEntries, E> {
                Ok(FirstEntries::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstEntries, A::Error> {
                let mut out = FirstEntries::default();
                while out.entries.len() < MAX_ENTRIES_READ {
                    match seq.next_element::<Value>()? {
                        Some(v) => out.entries.push(v),
                        None => return Ok(out),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    out.skipped += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// `POST /v1/peers` body: the running SDKs' `{"known_peers":[{…}]}`, or
/// S's `{sender_id, known_peers:[ids], timestamp_ms, ttl_s}` (the ids carry
/// no endpoint, so there is nothing to cache from them; `sender_id` and the
/// times are accepted and not used, since nothing authenticates them).
#[derive(Debug, Deserialize)]
pub(crate) struct ExchangeBody {
    #[serde(default)]
    pub known_peers: FirstEntries,
}

/// The answer to an exchange: `{"peers":[{…}]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ExchangeReply {
    #[serde(default)]
    pub peers: FirstEntries,
}

/// Why an entry was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// A bare id (S's form) or not an object.
    NotAnEntry,
    /// No node id, or not `[A-Za-z0-9._:-]{1,36}`.
    BadId,
    /// No endpoint, too long, or refused by the endpoint rules.
    BadEndpoint,
}

/// Judges one entry. `now_ms` bounds a claimed `last_seen` (a peer cannot
/// date an entry in the future); without one the entry counts as seen now.
pub(crate) fn judge(value: &Value, guard: &EndpointGuard, now_ms: u64) -> Result<Peer, Dropped> {
    let Value::Object(obj) = value else {
        return Err(Dropped::NotAnEntry);
    };
    let node_id = match obj.get("node_id") {
        Some(Value::String(id)) if is_valid_node_id(id) => id.clone(),
        _ => return Err(Dropped::BadId),
    };
    let endpoint = match obj.get("endpoint") {
        Some(Value::String(e)) if !e.is_empty() && e.len() <= MAX_ENDPOINT_LEN => {
            e.trim_end_matches('/').to_owned()
        }
        _ => return Err(Dropped::BadEndpoint),
    };
    if guard.check_endpoint(&endpoint).is_err() {
        return Err(Dropped::BadEndpoint);
    }
    let region = match obj.get("region") {
        Some(Value::String(r))
            if r.len() <= MAX_REGION_LEN && r.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
        {
            r.clone()
        }
        _ => String::new(),
    };
    let last_seen_ms = obj
        .get("last_seen_ms")
        .or_else(|| obj.get("last_seen"))
        .and_then(time::last_seen_ms)
        .map_or(now_ms, |claimed| claimed.min(now_ms));
    Ok(Peer {
        node_id,
        endpoint,
        region,
        last_seen_ms,
        relay_capable: obj.get("relay_capable") == Some(&Value::Bool(true)),
        relay_accept_port: obj
            .get("relay_accept_port")
            .and_then(Value::as_u64)
            .filter(|p| (1..=65535).contains(p))
            .map(|p| p as u16),
        relay_load: obj
            .get("relay_load")
            .and_then(Value::as_f64)
            .filter(|l| l.is_finite() && *l >= 0.0)
            .map(|l| l.min(1.0)),
    })
}

/// A peer as it goes on the wire. Absent relay fields are left out rather
/// than sent as null: the Python SDK reads them with `int(...)`/`float(...)`
/// and a default, which a null would break.
pub(crate) fn to_wire(peer: &Peer) -> Value {
    let mut obj = Map::new();
    obj.insert("node_id".into(), json!(peer.node_id));
    obj.insert("endpoint".into(), json!(peer.endpoint));
    obj.insert("region".into(), json!(peer.region));
    obj.insert(
        "last_seen".into(),
        json!(time::format_rfc3339(peer.last_seen_ms)),
    );
    obj.insert("relay_capable".into(), json!(peer.relay_capable));
    if let Some(port) = peer.relay_accept_port {
        obj.insert("relay_accept_port".into(), json!(port));
    }
    if let Some(load) = peer.relay_load {
        obj.insert("relay_load".into(), json!(load));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_most_the_first_hundred_entries() {
        let ids: Vec<Value> = (0..250).map(|i| json!(format!("n{i}"))).collect();
        let body: ExchangeBody =
            serde_json::from_value(json!({"known_peers": ids, "sender_id": "s"})).unwrap();
        assert_eq!(body.known_peers.entries.len(), MAX_ENTRIES_READ);
        assert_eq!(body.known_peers.skipped, 150);
        let body: ExchangeBody = serde_json::from_str(r#"{"known_peers":null}"#).unwrap();
        assert!(body.known_peers.entries.is_empty());
        let body: ExchangeBody = serde_json::from_str("{}").unwrap();
        assert!(body.known_peers.entries.is_empty());
        assert!(serde_json::from_str::<ExchangeBody>(r#"{"known_peers":5}"#).is_err());
    }

    #[test]
    fn judges_each_field() {
        let public = EndpointGuard::new(false);
        let local = EndpointGuard::new(true);
        let now = 1_700_000_000_000;
        let ok = json!({"node_id":"n-1","endpoint":"https://node.example.com/","region":"eu",
            "last_seen":"2023-11-14T22:13:00Z","relay_capable":true,"relay_accept_port":9485,
            "relay_load":0.25,"last_contact":123.4});
        let p = judge(&ok, &public, now).unwrap();
        assert_eq!(p.endpoint, "https://node.example.com");
        assert_eq!(p.last_seen_ms, now - 20_000);
        assert_eq!(
            (p.relay_capable, p.relay_accept_port, p.relay_load),
            (true, Some(9485), Some(0.25))
        );
        let future = json!({"node_id":"n","endpoint":"https://a.example.com","last_seen":"2999-01-01T00:00:00Z",
            "relay_capable":"yes","relay_accept_port":70000,"relay_load":-1,"region":"x".repeat(65)});
        let p = judge(&future, &public, now).unwrap();
        assert_eq!(p.last_seen_ms, now);
        assert_eq!(
            (p.relay_capable, p.relay_accept_port, p.relay_load),
            (false, None, None)
        );
        assert_eq!(p.region, "");
        for (entry, why) in [
            (json!("n-1"), Dropped::NotAnEntry),
            (json!({"endpoint":"https://a.example.com"}), Dropped::BadId),
            (
                json!({"node_id":"has space","endpoint":"https://a.example.com"}),
                Dropped::BadId,
            ),
            (
                json!({"node_id":"x".repeat(37),"endpoint":"https://a.example.com"}),
                Dropped::BadId,
            ),
            (json!({"node_id":"n"}), Dropped::BadEndpoint),
            (
                json!({"node_id":"n","endpoint":"ftp://a.example.com"}),
                Dropped::BadEndpoint,
            ),
            (
                json!({"node_id":"n","endpoint":"http://u:p@a.example.com"}),
                Dropped::BadEndpoint,
            ),
            (
                json!({"node_id":"n","endpoint":"http://a.example.com/?q"}),
                Dropped::BadEndpoint,
            ),
            (
                json!({"node_id":"n","endpoint":format!("https://a.example.com/{}", "p".repeat(2100))}),
                Dropped::BadEndpoint,
            ),
        ] {
            assert_eq!(judge(&entry, &local, now).unwrap_err(), why, "{entry}");
        }
        for private in [
            "http://127.0.0.1:9484",
            "http://10.0.0.5:9484",
            "http://169.254.169.254",
            "http://localhost:1",
            "http://ollama:11434",
        ] {
            let e = json!({"node_id":"n","endpoint":private});
            assert_eq!(
                judge(&e, &public, now).unwrap_err(),
                Dropped::BadEndpoint,
                "{private}"
            );
            assert!(
                judge(&e, &local, now).is_ok(),
                "{private} with a local directory"
            );
        }
    }

    #[test]
    fn wire_form_leaves_absent_relay_fields_out() {
        let p = Peer {
            node_id: "n".into(),
            endpoint: "https://a.example.com".into(),
            region: String::new(),
            last_seen_ms: 1_700_000_000_123,
            relay_capable: false,
            relay_accept_port: None,
            relay_load: None,
        };
        assert_eq!(
            to_wire(&p),
            json!({"node_id":"n","endpoint":"https://a.example.com","region":"",
                   "last_seen":"2023-11-14T22:13:20.123Z","relay_capable":false})
        );
    }
}
