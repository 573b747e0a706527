//! Consumer tokens on the client side (PROTOCOL.md §1.7, §2.4): with a
//! `node_token` configured, the client asks the directory for a short-lived
//! token that lets it reach one node with one intent, and sends that
//! (`X-IICP-Consumer-Token`). Its own token is a directory credential and
//! goes to the directory only: without a consumer token the task is sent
//! without a credential. Tokens are cached until 30 s before they expire; a
//! directory that refuses is asked again only after a minute, one that
//! cannot be reached on the next task.

use super::ttl_cache::TtlCache;
use crate::outbound::exchange_limited;
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Longest wait for the directory's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30);
/// How long "the directory issued no token" is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Largest consumer-token answer read (a token is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most cached (node, intent) pairs.
const CAPACITY: usize = 1024;

#[derive(Deserialize)]
struct Issued {
    token: Secret,
    expires_at: u64,
}

/// Tokens per (node id, intent): a token, or `None` for a refusal, each
/// until it is renewed or asked again.
#[derive(Debug)]
pub(crate) struct ConsumerTokens {
    cache: TtlCache<(String, String), Option<Secret>>,
}

impl Default for ConsumerTokens {
    fn default() -> Self {
        Self {
            cache: TtlCache::new(CAPACITY),
        }
    }
}

impl ConsumerTokens {
    /// A token for `target`/`intent`, from the cache or the directory;
    /// `None` when the directory issues none (old directory, unknown node,
    /// token refused, no answer). Never fails the task.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        directory_url: &str,
        node_token: &Secret,
        target: &str,
        intent: &str,
        left: Duration,
    ) -> Option<Secret> {
        let key = (target.to_owned(), intent.to_owned());
        if let Some(token) = self.cache.get(&key) {
            return token;
        }
        let fetched = fetch(http, directory_url, node_token, target, intent, left).await;
        let (token, ttl) = match fetched {
            // Asked again on the next task: a passing fault must not lock
            // token-mode nodes out for a minute.
            Fetched::NoAnswer => return None,
            Fetched::Issued(issued) => {
                let lifetime = issued
                    .expires_at
                    .saturating_sub(crate::token::unix_now())
                    .saturating_sub(RENEW_BEFORE.as_secs());
                (Some(issued.token), Duration::from_secs(lifetime))
            }
            Fetched::Refused => (None, NEGATIVE_TTL),
        };
        self.cache.put(key, token.clone(), ttl);
        token
    }
}

/// What the directory said.
enum Fetched {
    Issued(Issued),
    /// It answered, with no usable token.
    Refused,
    /// It could not be reached, or did not answer in time.
    NoAnswer,
}

async fn fetch(
    http: &reqwest::Client,
    directory_url: &str,
    node_token: &Secret,
    target: &str,
    intent: &str,
    left: Duration,
) -> Fetched {
    let url = format!("{}/v1/consumer-token", directory_url.trim_end_matches('/'));
    let request = http
        .post(url)
        .bearer_auth(node_token.expose())
        .json(&json!({"target_node_id": target, "intent": intent}));
    let reply = exchange_limited(
        request,
        "the directory",
        left.min(CALL_TIMEOUT),
        MAX_ANSWER_BYTES,
    )
    .await;
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            tracing::debug!(error = %e, "no consumer token: the directory did not answer");
            return Fetched::NoAnswer;
        }
    };
    if reply.status != 201 {
        tracing::debug!(
            status = reply.status,
            "no consumer token: the directory refused"
        );
        return Fetched::Refused;
    }
    match reply.json::<Issued>("the consumer token") {
        Ok(issued) if !issued.token.is_empty() => Fetched::Issued(issued),
        Ok(_) => Fetched::Refused,
        Err(e) => {
            tracing::debug!(error = %e, "no consumer token: unreadable answer");
            Fetched::Refused
        }
    }
}
