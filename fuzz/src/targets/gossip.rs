//! `gossip`: peer-exchange bodies (PROTOCOL.md §8) as a node reads them.
//!
//! The first input byte picks what the rest is:
//!
//! - 0: a `POST /v1/peers` body, signed with the node's gossip key (the
//!   route's order: `sign::verify`, `decode_json::<ExchangeBody>`, at most
//!   100 entries read);
//! - 1: the answer to our own exchange (`ExchangeReply`, read as
//!   `exchange.rs` reads it);
//! - 2: an `X-IICP-Signature` header line, then the body it claims to sign.
//!
//! Every entry is judged (`wire::judge`: id, endpoint through the endpoint
//! guard, region, `last_seen` in its three forms, relay fields) with the
//! public guard and with a local directory's, and the judged peers merge
//! into a peer cache that already holds two entries from the directory.
//!
//! Oracles: the right signature verifies and a changed one does not; an
//! entry the public guard takes, the local one takes the same way; a judged
//! peer written as we send peers (`to_wire`) is judged back to the same
//! peer; the cache stays within its bounds, never holds this node, and the
//! answer we would send reads back as the peers it lists.

use super::Picks;
use crate::Secret;
use crate::client::guard::EndpointGuard;
use crate::mesh::Peer;
use crate::mesh::cache::{MAX_NEW_PER_EXCHANGE, MAX_PEERS, MAX_REPLY, PeerCache, Source};
use crate::mesh::sign;
use crate::mesh::wire::{ExchangeBody, ExchangeReply, judge, to_wire};
use crate::server::request::decode_json;
use serde_json::Value;

/// The clock of every run.
const NOW_MS: u64 = 1_700_000_000_000;
const SELF_ID: &str = "node-self";
const SELF_ENDPOINT: &str = "https://self.example.net";

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = Secret::new("gossip-key");
    let entries = match mode % 3 {
        0 => {
            let signature = sign::sign(&key, rest);
            assert!(sign::verify(&key, rest, Some(&signature)));
            assert!(sign::verify(
                &key,
                rest,
                Some(&signature.to_ascii_uppercase())
            ));
            let mut wrong = signature.into_bytes();
            wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
            let wrong = String::from_utf8(wrong).expect("hex");
            assert!(!sign::verify(&key, rest, Some(&wrong)));
            match decode_json::<ExchangeBody>(rest) {
                Ok(body) => body.known_peers.entries,
                Err(r) => {
                    assert!(r.status == 400 || r.status == 422);
                    return;
                }
            }
        }
        1 => match serde_json::from_slice::<ExchangeReply>(rest) {
            Ok(reply) => reply.peers.entries,
            Err(_) => return,
        },
        _ => {
            let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let (line, body) = rest.split_at(split);
            if let Ok(line) = std::str::from_utf8(line) {
                let _ = sign::verify(&key, body, Some(line));
            }
            return;
        }
    };
    assert!(entries.len() <= 100, "{} entries read", entries.len());
    take_in(&entries, &mut Picks::new(data));
}

/// `Mesh::take_in`: every entry judged, the good ones merged.
fn take_in(entries: &[Value], picks: &mut Picks) {
    let public = EndpointGuard::new(false);
    let local = EndpointGuard::new(true);
    let mut peers = Vec::new();
    for entry in entries {
        let judged = judge(entry, &local, NOW_MS);
        if let Ok(strict) = judge(entry, &public, NOW_MS) {
            assert_eq!(
                judged.as_ref().ok(),
                Some(&strict),
                "the local guard judges differently"
            );
        }
        let Ok(peer) = judged else {
            continue;
        };
        assert!(peer.last_seen_ms <= NOW_MS, "an entry dated in the future");
        let again = judge(&to_wire(&peer), &local, NOW_MS);
        assert_eq!(again.as_ref(), Ok(&peer), "a peer changed on the wire");
        peers.push(peer);
    }
    let cache = PeerCache::default();
    cache.set_self(Some(SELF_ID), SELF_ENDPOINT);
    let directory = |id: &str, endpoint: &str| Peer {
        node_id: id.into(),
        endpoint: endpoint.into(),
        region: "eu".into(),
        last_seen_ms: NOW_MS - 5_000,
        relay_capable: false,
        relay_accept_port: None,
        relay_load: None,
    };
    cache.merge(
        vec![
            directory("n-1", "https://n1.example.net"),
            directory("n-2", "https://n2.example.net"),
        ],
        Source::Directory,
        NOW_MS,
        usize::MAX,
    );
    let taken = peers.len();
    let now = NOW_MS + picks.next() % 120_000;
    let added = cache.merge(peers, Source::Gossip, now, MAX_NEW_PER_EXCHANGE);
    assert!(added <= MAX_NEW_PER_EXCHANGE.min(taken));
    assert!(cache.len() <= MAX_PEERS);
    let fresh = cache.fresh_peers(now, MAX_REPLY);
    assert!(fresh.len() <= MAX_REPLY);
    for p in &fresh {
        assert!(
            p.node_id != SELF_ID && p.endpoint != SELF_ENDPOINT,
            "the cache holds us"
        );
    }
    if let Some(p) = fresh.iter().find(|p| p.node_id == "n-1") {
        assert_eq!(
            p.endpoint, "https://n1.example.net",
            "a peer moved a directory entry"
        );
    }
    let _ = cache.relay_candidates(SELF_ID);
    let _ = cache.next_target(now);
    // Our answer, `{"peers": […]}`, as a peer reads it.
    let answer = serde_json::json!({ "peers": fresh.iter().map(to_wire).collect::<Vec<_>>() });
    let text = serde_json::to_vec(&answer).expect("serialises");
    let reply: ExchangeReply = serde_json::from_slice(&text).expect("our answer reads back");
    let read: Vec<Peer> = reply
        .peers
        .entries
        .iter()
        .map(|v| judge(v, &local, now).expect("a peer we send is one we take"))
        .collect();
    // Loads went through JSON text: equal within a few ULPs.
    let same = |a: &Peer, b: &Peer| {
        let load = |p: &Peer| Peer {
            relay_load: None,
            ..p.clone()
        };
        load(a) == load(b)
            && match (a.relay_load, b.relay_load) {
                (Some(x), Some(y)) => super::close(x, y),
                (x, y) => x == y,
            }
    };
    assert!(
        read.len() == fresh.len() && read.iter().zip(&fresh).all(|(a, b)| same(a, b)),
        "our answer reads back differently:\n{read:?}\n{fresh:?}"
    );
    cache.prune(now + 100_000);
}
