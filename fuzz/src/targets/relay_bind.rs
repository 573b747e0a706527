//! `relay_bind`: what a relay reads from a worker that binds, and what a
//! worker reads back.
//!
//! The first input byte picks what the rest is:
//!
//! - 0: a RELAY_BIND payload (TCP workers, after INIT):
//!   `BindRequest::from_relay_bind` (CBOR decode, worker id check), then
//!   the bind ticket as the relay checks it (`verify_relay_ticket` with the
//!   directory's key, `RelayTicketClaims::check`), and the refusal as sent
//!   (`Refusal::reason`, `to_api_error`);
//! - 1: a `POST /v1/relay/bind` body (long-poll workers): `decode_json`,
//!   the object check of `forward.rs`, `BindRequest::from_json`, the same
//!   ticket check;
//! - 2: a RELAY_ACK payload as the worker reads it (`RelayAck::decode`).
//!
//! Oracles: a decoded RELAY_BIND or RELAY_ACK re-encodes to a payload that
//! decodes to the same message; a long-poll bind, sent as a RELAY_BIND
//! instead, is the same bind (both transports accept the same binds).

use super::DIRECTORY_KEY;
use crate::relay::server::admission::{BindRequest, Refusal};
use crate::server::request::decode_json;
use crate::token::unix_now;
use crate::transport::{RelayAck, RelayBind};
use serde_json::Value;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(bind) = RelayBind::decode(rest) {
                let again = RelayBind::decode(&bind.encode()).expect("a re-encoded RELAY_BIND");
                assert_eq!(again, bind);
            }
            match BindRequest::from_relay_bind(rest) {
                Ok(request) => ticket(&request),
                Err((worker_id, refusal)) => {
                    assert!(worker_id.is_none_or(|id| id.len() <= 64));
                    refused(&refusal);
                }
            }
        }
        1 => {
            let Ok(body) = decode_json::<Value>(rest) else {
                return;
            };
            if !body.is_object() {
                return;
            }
            match BindRequest::from_json(&body) {
                Ok(request) => {
                    ticket(&request);
                    same_over_tcp(&request);
                }
                Err(refusal) => refused(&refusal),
            }
        }
        _ => {
            if let Ok(ack) = RelayAck::decode(rest) {
                let again = RelayAck::decode(&ack.encode()).expect("a re-encoded RELAY_ACK");
                assert_eq!(again, ack);
                let _ = ack.is_ok();
            }
        }
    }
}

fn refused(refusal: &Refusal) {
    assert!(!refusal.reason().is_empty());
    let e = refusal.to_api_error();
    assert!((400..600).contains(&e.status().as_u16()));
}

/// `Tickets::check` with the key known (`relay/server/tickets.rs`).
fn ticket(request: &BindRequest) {
    let Some(ticket) = &request.ticket else {
        return;
    };
    if let Ok(claims) = DIRECTORY_KEY
        .public_key()
        .verify_relay_ticket(ticket.expose())
    {
        let _ = claims.check(&request.worker_id, "relay-1", unix_now());
    }
}

/// The long-poll bind as a RELAY_BIND: the TCP decoder reads the same bind.
fn same_over_tcp(request: &BindRequest) {
    let bind = RelayBind {
        worker_id: Some(request.worker_id.clone()),
        intent: request.intent.clone(),
        models: request.models.clone(),
        bind_ticket: request.ticket.clone(),
    };
    let over_tcp = BindRequest::from_relay_bind(&bind.encode()).unwrap_or_else(|(_, r)| {
        panic!("a bind the long-poll route takes, refused over TCP: {r:?}")
    });
    assert_eq!(over_tcp.worker_id, request.worker_id);
    assert_eq!(over_tcp.intent, request.intent);
    assert_eq!(over_tcp.models, request.models);
    assert_eq!(over_tcp.ticket, request.ticket);
}
