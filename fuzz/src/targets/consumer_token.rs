//! `consumer_token`: directory-signed tokens as a node checks them, and the
//! directory key a node fetches to check them with.
//!
//! The first input byte picks what the rest is:
//!
//! - 0: a token as it arrives (`X-IICP-Consumer-Token`, or a native CALL's
//!   key 11): `looks_like_consumer_token` (how the native transport routes
//!   it), `verify_consumer_token` with the directory's key, the claims
//!   `check`, and the node's `Authorizer` in `token` mode; the same text as
//!   a relay bind ticket (`verify_relay_ticket`);
//! - 1: the claims JSON of a token the directory really signed (the bytes,
//!   base64url, signed under the consumer-token domain, as
//!   `DirectorySigningKey` signs): verified, checked, and accepted by the
//!   `Authorizer` exactly when `check` accepts them;
//! - 2: the same under the relay-bind-ticket domain (`verify_relay_ticket`,
//!   `RelayTicketClaims::check`);
//! - 3: the `public_key` of `GET /v1/directory-key`
//!   (`DirectoryPublicKey::from_hex`).
//!
//! Oracles: the `Authorizer` accepts a signed token exactly when its claims
//! pass `check`; verified claims, serialised as the directory signs them,
//! read back the same; a key read from hex is written back as the same
//! (lower-case) hex. (That a token verifies under its own domain only, and
//! that the directory's own tokens verify, are unit tests of `token.rs`;
//! checking them here too would double the signature work per input.)

use super::{CHAT, DIRECTORY_KEY, assert_round_trip};
use crate::node::task_auth::{Authorizer, Credentials, TaskAuthMode, looks_like_consumer_token};
use crate::token::{CONSUMER_TOKEN_DOMAIN, DirectoryPublicKey, RELAY_TICKET_DOMAIN, unix_now};
use crate::wire::{IntentUrn, TaskRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey};

/// The node checking tokens.
const NODE_ID: &str = "node-fuzz-1";

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = arrives(token);
            }
        }
        1 => signed_consumer_token(rest),
        2 => signed_relay_ticket(rest),
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(key) = DirectoryPublicKey::from_hex(text) {
                    assert_eq!(key.to_hex(), text.trim().to_ascii_lowercase());
                    assert_eq!(DirectoryPublicKey::from_hex(&key.to_hex()), Ok(key));
                }
            }
        }
    }
}

/// A token signed as the directory signs: `B64URL(claims).HEX(signature)`,
/// the signature over `domain ‖ B64URL(claims)`.
fn sign(domain: &str, claims: &[u8]) -> String {
    let key = SigningKey::from_bytes(&[0x22; 32]);
    let body = B64.encode(claims);
    let mut message = domain.as_bytes().to_vec();
    message.extend_from_slice(body.as_bytes());
    format!("{body}.{}", hex::encode(key.sign(&message).to_bytes()))
}

fn task(intent: &str) -> TaskRequest {
    TaskRequest::new(
        IntentUrn::parse(intent).unwrap_or(IntentUrn::LLM_CHAT_V1),
        serde_json::Value::Null,
    )
}

/// What the node does with a token it was handed.
fn arrives(token: &str) -> Result<(), String> {
    let _ = looks_like_consumer_token(token);
    let key = DIRECTORY_KEY.public_key();
    if let Ok(claims) = key.verify_consumer_token(token) {
        let _ = claims.check(NODE_ID, CHAT, unix_now());
    }
    if let Ok(claims) = key.verify_relay_ticket(token) {
        let _ = claims.check("worker-1", "relay-1", unix_now());
    }
    authorizer_check(token)
}

/// The node's `Authorizer` in `token` mode, with only `token` presented.
fn authorizer_check(token: &str) -> Result<(), String> {
    let auth = Authorizer::new(TaskAuthMode::Token, None);
    auth.set_directory_key(Some(DIRECTORY_KEY.public_key()));
    let credentials = Credentials {
        consumer_token: Some(token.to_owned()),
        bearer: None,
    };
    auth.check(&task(CHAT), &credentials, Some(NODE_ID))
        .map_err(|e| e.error.message)
}

fn signed_consumer_token(claims: &[u8]) {
    let token = sign(CONSUMER_TOKEN_DOMAIN, claims);
    // Every signed token has the shape the native transport routes by
    // (claims the directory writes are never empty).
    assert!(
        claims.is_empty() || looks_like_consumer_token(&token),
        "a signed token's shape"
    );
    let key = DIRECTORY_KEY.public_key();
    let verified = key.verify_consumer_token(&token);
    let before = verified
        .as_ref()
        .map(|c| c.check(NODE_ID, CHAT, unix_now()).is_ok())
        .map_err(drop);
    let accepted = authorizer_check(&token);
    let Ok(claims) = verified else {
        assert!(
            accepted.is_err(),
            "the node took a token that does not verify"
        );
        return;
    };
    // The node checks the claims against itself, the task's intent and now
    // (compared only when the second did not turn during the check).
    let after = claims.check(NODE_ID, CHAT, unix_now()).is_ok();
    if before == Ok(after) {
        assert_eq!(
            after,
            accepted.is_ok(),
            "the Authorizer and ConsumerClaims::check disagree: {accepted:?}"
        );
    }
    let _ = claims.check(&claims.aud, &claims.intent, claims.exp);
    // The claims as the directory would sign them again read back the same.
    assert_round_trip(&claims, "consumer token claims");
}

fn signed_relay_ticket(claims: &[u8]) {
    let token = sign(RELAY_TICKET_DOMAIN, claims);
    let key = DIRECTORY_KEY.public_key();
    let Ok(claims) = key.verify_relay_ticket(&token) else {
        return;
    };
    let _ = claims.check("worker-1", "relay-1", unix_now());
    let _ = claims.check(&claims.sub, &claims.aud, claims.exp.saturating_sub(1));
    assert_round_trip(&claims, "relay ticket claims");
}
