//! Relay bind tickets (PROTOCOL.md §1.7): a node holding a node token asks
//! its directory for a single-use ticket naming the relay it is about to
//! bind at (`POST {dir}/v1/relay/ticket`, `Authorization: Bearer
//! <node_token>`, `X-Node-Id`, body `{"relay_node_id"}`) and sends it in
//! RELAY_BIND key 4. 201 carries the ticket; 404/405/501/503 mean the
//! directory issues none, and the worker binds without one (so does any
//! other failure, logged). Neither the ticket nor the token is ever logged.

use crate::Secret;
use crate::outbound::exchange;
use crate::transport::MAX_BIND_TICKET;
use serde_json::{Value, json};
use std::time::Duration;

/// Time limit of the ticket request.
const TICKET_TIMEOUT: Duration = Duration::from_secs(10);

/// What the directory's answer means for the bind.
#[derive(Debug, PartialEq)]
pub(crate) enum TicketAnswer {
    /// 201 with a usable ticket.
    Issued(Secret),
    /// The directory issues no tickets (404, 405, 501, 503).
    NotIssued,
    /// Anything else: why, without the body's secrets (status and shape only).
    Failed(String),
}

/// Reads the directory's answer to `POST /v1/relay/ticket`.
pub(crate) fn read_answer(status: u16, body: &[u8]) -> TicketAnswer {
    match status {
        201 | 200 => {
            let ticket = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("ticket").and_then(Value::as_str).map(str::to_owned));
            match ticket {
                Some(t) if !t.is_empty() && t.len() <= MAX_BIND_TICKET && t.is_ascii() => {
                    TicketAnswer::Issued(Secret::new(t))
                }
                Some(_) => {
                    TicketAnswer::Failed("the ticket is empty, too long or not ASCII".into())
                }
                None => TicketAnswer::Failed("the answer carries no ticket".into()),
            }
        }
        404 | 405 | 501 | 503 => TicketAnswer::NotIssued,
        other => TicketAnswer::Failed(format!("HTTP {other}")),
    }
}

/// Asks the directory for a ticket to bind `worker_id` at `relay_node_id`
/// (any relay when `None`).
pub(crate) async fn fetch(
    http: &reqwest::Client,
    directory_url: &str,
    node_token: &Secret,
    worker_id: &str,
    relay_node_id: Option<&str>,
) -> TicketAnswer {
    let url = format!("{}/v1/relay/ticket", directory_url.trim_end_matches('/'));
    let body = match relay_node_id {
        Some(id) => json!({"relay_node_id": id}),
        None => json!({}),
    };
    let request = http
        .post(url)
        .bearer_auth(node_token.expose())
        .header("X-Node-Id", worker_id)
        .json(&body);
    match exchange(request, "the directory", TICKET_TIMEOUT).await {
        Ok(reply) => read_answer(reply.status, &reply.body),
        Err(e) => TicketAnswer::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_status_then_body() {
        let issued = read_answer(201, br#"{"ticket":"abc.def","expires_at":1}"#);
        assert_eq!(issued, TicketAnswer::Issued(Secret::new("abc.def")));
        for status in [404, 405, 501, 503] {
            assert_eq!(
                read_answer(status, b"{}"),
                TicketAnswer::NotIssued,
                "{status}"
            );
        }
        let long = format!(r#"{{"ticket":"{}"}}"#, "t".repeat(MAX_BIND_TICKET + 1));
        for (status, body) in [
            (401, &br#"{"error":{"code":"unauthorized"}}"#[..]),
            (500, b"oops"),
            (201, b"not json"),
            (201, br#"{"ticket": 5}"#),
            (201, br#"{"ticket": ""}"#),
            (201, long.as_bytes()),
            (201, "{\"ticket\":\"t\u{e9}\"}".as_bytes()),
        ] {
            assert!(
                matches!(read_answer(status, body), TicketAnswer::Failed(_)),
                "{status} {:?}",
                String::from_utf8_lossy(body)
            );
        }
        // A failure never quotes the ticket.
        let TicketAnswer::Failed(why) = read_answer(201, br#"{"ticket": ""}"#) else {
            panic!()
        };
        assert!(!why.contains("ticket\":"));
    }

    #[test]
    fn an_issued_ticket_stays_out_of_debug_output() {
        let answer = read_answer(201, br#"{"ticket":"secret-ticket.sig"}"#);
        assert!(!format!("{answer:?}").contains("secret-ticket"));
    }
}
