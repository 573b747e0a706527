//! Signed directory tokens (PROTOCOL.md §1.7), the consumer token in
//! particular: a directory signs, with its Ed25519 key, a short claim that
//! node `sub` may send tasks of `intent` to node `aud` until `exp`; a node in
//! `token` mode verifies it against the key the directory publishes at
//! `GET /v1/directory-key` (§2.4).
//!
//! Format: `B64URL_NOPAD(claims JSON) + "." + HEX(signature)`, where the
//! signature (128 hex characters) covers the domain string
//! `"iicp:consumer-token:v1\n"` followed by the base64 text. The Ed25519
//! work is ed25519-dalek's; nothing here is hand-rolled.
//!
//! The relay bind ticket (§1.7, §7.2) has the same format under the domain
//! `"iicp:relay-bind-ticket:v1\n"`: the directory lets worker `sub` bind at
//! relay `aud` (or any relay, `*`) once (`jti`) until `exp`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// Domain string signed before the claims of a consumer token.
pub const CONSUMER_TOKEN_DOMAIN: &str = "iicp:consumer-token:v1\n";
/// Domain string signed before the claims of a relay bind ticket.
pub const RELAY_TICKET_DOMAIN: &str = "iicp:relay-bind-ticket:v1\n";
/// `typ` of a relay bind ticket.
pub const RELAY_TICKET_TYPE: &str = "relay-bind-ticket";
/// Lifetime of a relay bind ticket (`exp = iat + 120`).
pub const RELAY_TICKET_TTL_SECS: u64 = 120;
/// Lifetime of a consumer token (`exp = iat + 300`).
pub const CONSUMER_TOKEN_TTL_SECS: u64 = 300;
/// Clock skew tolerated after `exp` when a node checks a token.
pub const EXPIRY_GRACE_SECS: u64 = 10;
/// The issuer the public directory writes (`iss`).
pub const DEFAULT_ISSUER: &str = "https://iicp.network";
/// `algorithm` of `GET /v1/directory-key`.
pub const ALGORITHM: &str = "ed25519";

/// Why a token was not accepted. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `base64.hex`, or the claims are not the expected JSON.
    #[error("the token is malformed ({0})")]
    Malformed(&'static str),
    /// The signature does not verify against the directory's key.
    #[error("the token's signature does not verify against the directory key")]
    BadSignature,
    /// `aud` names another node.
    #[error("the token is for another node")]
    WrongAudience,
    /// `intent` is neither the task's intent nor `*`.
    #[error("the token does not cover this intent")]
    WrongIntent,
    /// `exp` (plus the grace) has passed.
    #[error("the token has expired")]
    Expired,
    /// A relay bind ticket for another worker (`sub`).
    #[error("the ticket is for another worker")]
    WrongWorker,
    /// A relay bind ticket whose `typ` or `jti` is not the expected one.
    #[error("the ticket is not a relay bind ticket with a 32-hex-digit jti")]
    NotARelayTicket,
    /// A directory key that is not 32 bytes of hex.
    #[error("the directory key is not a 64-character hex Ed25519 public key")]
    BadKey,
}

/// The claims of a consumer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerClaims {
    /// Format version, 1.
    pub v: u32,
    /// The issuing directory.
    pub iss: String,
    /// The calling node (the token's holder).
    pub sub: String,
    /// The node the token is for.
    pub aud: String,
    /// The intent it covers, or `*`.
    pub intent: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Claims this version does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ConsumerClaims {
    /// Claims for `caller` → `target`, issued at `iat`, valid for 300 s.
    pub fn new(issuer: &str, caller: &str, target: &str, intent: &str, iat: u64) -> Self {
        Self {
            v: 1,
            iss: issuer.to_owned(),
            sub: caller.to_owned(),
            aud: target.to_owned(),
            intent: intent.to_owned(),
            iat,
            exp: iat + CONSUMER_TOKEN_TTL_SECS,
            extra: Map::new(),
        }
    }

    /// Whether the token lets a task of `intent` reach node `node_id` at
    /// `now` (Unix seconds), allowing [`EXPIRY_GRACE_SECS`] of skew.
    pub fn check(&self, node_id: &str, intent: &str, now: u64) -> Result<(), TokenError> {
        if self.aud != node_id {
            return Err(TokenError::WrongAudience);
        }
        if self.intent != "*" && self.intent != intent {
            return Err(TokenError::WrongIntent);
        }
        if now > self.exp.saturating_add(EXPIRY_GRACE_SECS) {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// The claims of a relay bind ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayTicketClaims {
    /// Format version, 1.
    pub v: u32,
    /// `"relay-bind-ticket"`.
    pub typ: String,
    /// Single-use id: 32 lower-case hex digits.
    pub jti: String,
    /// The issuing directory.
    pub iss: String,
    /// The worker allowed to bind.
    pub sub: String,
    /// The relay it may bind at, or `*` for any.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Claims this version does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RelayTicketClaims {
    /// Claims letting `worker` bind at `relay` (`*` for any), issued at
    /// `iat`, valid for 120 s, with a fresh random `jti`.
    pub fn new(issuer: &str, worker: &str, relay: &str, iat: u64) -> Self {
        let mut jti = [0u8; 16];
        rand::fill(&mut jti);
        Self {
            v: 1,
            typ: RELAY_TICKET_TYPE.into(),
            jti: hex::encode(jti),
            iss: issuer.to_owned(),
            sub: worker.to_owned(),
            aud: relay.to_owned(),
            iat,
            exp: iat + RELAY_TICKET_TTL_SECS,
            extra: Map::new(),
        }
    }

    /// Whether the ticket lets `worker_id` bind at relay `relay_id` at `now`
    /// (Unix seconds). Expiry is strict (`exp` must be in the future, as the
    /// reference relay checks). Single use is the relay's to enforce.
    pub fn check(&self, worker_id: &str, relay_id: &str, now: u64) -> Result<(), TokenError> {
        let jti_ok = self.jti.len() == 32
            && self
                .jti
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if self.typ != RELAY_TICKET_TYPE || !jti_ok {
            return Err(TokenError::NotARelayTicket);
        }
        if self.sub != worker_id {
            return Err(TokenError::WrongWorker);
        }
        if self.aud != "*" && self.aud != relay_id {
            return Err(TokenError::WrongAudience);
        }
        if self.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// A directory's Ed25519 signing key.
#[derive(Clone)]
pub struct DirectorySigningKey(SigningKey);

impl std::fmt::Debug for DirectorySigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DirectorySigningKey(public {})",
            self.public_key().to_hex()
        )
    }
}

impl DirectorySigningKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed (the secret itself: never log it). The directory
    /// stores it in a shared PostgreSQL database, where every replica reads
    /// it.
    pub(crate) fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        Self::from_seed(seed)
    }

    /// The key in `path` (64 hex characters), created there with 0600
    /// permissions when the file does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        crate::key_file::load_or_create(path, "Ed25519 signing key").map(Self::from_seed)
    }

    /// The public half, as served at `GET /v1/directory-key`.
    pub fn public_key(&self) -> DirectoryPublicKey {
        DirectoryPublicKey(self.0.verifying_key())
    }

    /// Signs `claims` into a consumer token.
    pub fn sign_consumer_token(&self, claims: &ConsumerClaims) -> String {
        self.sign(CONSUMER_TOKEN_DOMAIN, claims)
    }

    /// Signs `claims` into a relay bind ticket.
    pub fn sign_relay_ticket(&self, claims: &RelayTicketClaims) -> String {
        self.sign(RELAY_TICKET_DOMAIN, claims)
    }

    fn sign(&self, domain: &str, claims: &impl Serialize) -> String {
        let json = serde_json::to_vec(claims).expect("claims serialise");
        let body = B64.encode(json);
        let signature = self.0.sign(&signed_message(domain, &body));
        format!("{body}.{}", hex::encode(signature.to_bytes()))
    }
}

/// A directory's Ed25519 public key, as nodes verify tokens with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryPublicKey(VerifyingKey);

impl DirectoryPublicKey {
    /// Parses the 64 hex characters of `GET /v1/directory-key`.
    pub fn from_hex(text: &str) -> Result<Self, TokenError> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(TokenError::BadKey)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| TokenError::BadKey)
    }

    /// Lower-case hex of the 32 key bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Checks the signature of a consumer token and returns its claims. The
    /// claims still have to be [checked](ConsumerClaims::check) against the
    /// node, the intent and the time.
    pub fn verify_consumer_token(&self, token: &str) -> Result<ConsumerClaims, TokenError> {
        let claims: ConsumerClaims = self.verify(CONSUMER_TOKEN_DOMAIN, token)?;
        if claims.v != 1 {
            return Err(TokenError::Malformed("unsupported version"));
        }
        Ok(claims)
    }

    /// Checks the signature of a relay bind ticket and returns its claims,
    /// still to be [checked](RelayTicketClaims::check).
    pub fn verify_relay_ticket(&self, ticket: &str) -> Result<RelayTicketClaims, TokenError> {
        self.verify(RELAY_TICKET_DOMAIN, ticket)
    }

    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        domain: &str,
        token: &str,
    ) -> Result<T, TokenError> {
        let (body, signature) = token
            .trim()
            .split_once('.')
            .ok_or(TokenError::Malformed("no '.' separator"))?;
        if signature.len() != 128 {
            return Err(TokenError::Malformed(
                "the signature is not 128 hex characters",
            ));
        }
        let signature: [u8; 64] = hex::decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(TokenError::Malformed("the signature is not hex"))?;
        // verify_strict also refuses weak keys and malleable signatures.
        self.0
            .verify_strict(
                &signed_message(domain, body),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| TokenError::BadSignature)?;
        let json = B64
            .decode(body)
            .map_err(|_| TokenError::Malformed("the claims are not base64url"))?;
        serde_json::from_slice(&json)
            .map_err(|_| TokenError::Malformed("the claims are not the expected JSON"))
    }
}

fn signed_message(domain: &str, body: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(domain.len() + body.len());
    message.extend_from_slice(domain.as_bytes());
    message.extend_from_slice(body.as_bytes());
    message
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

    fn key() -> DirectorySigningKey {
        DirectorySigningKey::from_seed([7; 32])
    }

    fn token(claims: &ConsumerClaims) -> String {
        key().sign_consumer_token(claims)
    }

    #[test]
    fn a_signed_token_verifies_and_checks() {
        let claims = ConsumerClaims::new(DEFAULT_ISSUER, "caller", "target", CHAT, 1_000);
        let t = token(&claims);
        let (_, sig) = t.split_once('.').unwrap();
        assert_eq!(sig.len(), 128);
        let got = key().public_key().verify_consumer_token(&t).unwrap();
        assert_eq!(got, claims);
        assert_eq!(got.exp, 1_300);
        assert_eq!(got.check("target", CHAT, 1_300), Ok(()));
        assert_eq!(got.check("target", CHAT, 1_310), Ok(()), "10 s grace");
        assert_eq!(got.check("target", CHAT, 1_311), Err(TokenError::Expired));
        assert_eq!(
            got.check("other", CHAT, 1_100),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            got.check("target", "urn:iicp:intent:llm:embedding:v1", 1_100),
            Err(TokenError::WrongIntent)
        );
    }

    #[test]
    fn a_wildcard_intent_covers_every_intent() {
        let claims = ConsumerClaims::new(DEFAULT_ISSUER, "c", "t", "*", 0);
        assert_eq!(claims.check("t", "urn:iicp:intent:x.acme:y:v1", 10), Ok(()));
    }

    #[test]
    fn tampering_or_another_key_breaks_the_signature() {
        let claims = ConsumerClaims::new(DEFAULT_ISSUER, "c", "t", CHAT, 5);
        let t = token(&claims);
        let other = DirectorySigningKey::from_seed([8; 32]).public_key();
        assert_eq!(
            other.verify_consumer_token(&t),
            Err(TokenError::BadSignature)
        );
        // Claims rewritten to another audience, signature kept.
        let forged_claims = ConsumerClaims::new(DEFAULT_ISSUER, "c", "me", CHAT, 5);
        let forged_body = B64.encode(serde_json::to_vec(&forged_claims).unwrap());
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!("{forged_body}.{sig}");
        assert_eq!(
            key().public_key().verify_consumer_token(&forged),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "no-dot",
            "abc.def",
            &format!("{forged_body}.{}", "zz".repeat(64)),
        ] {
            assert!(matches!(
                key().public_key().verify_consumer_token(bad),
                Err(TokenError::Malformed(_))
            ));
        }
    }

    #[test]
    fn relay_tickets_verify_under_their_own_domain_only() {
        let claims = RelayTicketClaims::new(DEFAULT_ISSUER, "worker", "*", 1_000);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(claims.exp, 1_120);
        let ticket = key().sign_relay_ticket(&claims);
        let got = key().public_key().verify_relay_ticket(&ticket).unwrap();
        assert_eq!(got, claims);
        assert_eq!(got.check("worker", "relay-1", 1_119), Ok(()));
        assert_eq!(
            got.check("worker", "relay-1", 1_120),
            Err(TokenError::Expired)
        );
        assert_eq!(
            got.check("other", "relay-1", 1_001),
            Err(TokenError::WrongWorker)
        );
        // A consumer token is no ticket, and a ticket no consumer token.
        let consumer = token(&ConsumerClaims::new(DEFAULT_ISSUER, "c", "t", CHAT, 5));
        assert_eq!(
            key().public_key().verify_relay_ticket(&consumer),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key().public_key().verify_consumer_token(&ticket),
            Err(TokenError::BadSignature)
        );
        let mut aimed = RelayTicketClaims::new(DEFAULT_ISSUER, "w", "relay-1", 0);
        assert_eq!(
            aimed.check("w", "relay-2", 1),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(aimed.check("w", "relay-1", 1), Ok(()));
        aimed.jti = "ABCDEF".repeat(6)[..32].to_owned();
        assert_eq!(
            aimed.check("w", "relay-1", 1),
            Err(TokenError::NotARelayTicket)
        );
        let mut typ = RelayTicketClaims::new(DEFAULT_ISSUER, "w", "*", 0);
        typ.typ = "consumer".into();
        assert_eq!(typ.check("w", "r", 1), Err(TokenError::NotARelayTicket));
    }

    #[test]
    fn the_public_key_round_trips_through_hex() {
        let public = key().public_key();
        let hex = public.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(DirectoryPublicKey::from_hex(&hex), Ok(public));
        assert_eq!(
            DirectoryPublicKey::from_hex("abcd"),
            Err(TokenError::BadKey)
        );
    }

    #[test]
    fn the_signed_message_is_the_domain_then_the_base64_text() {
        let claims = ConsumerClaims::new(DEFAULT_ISSUER, "c", "t", CHAT, 5);
        let t = token(&claims);
        let (body, sig) = t.split_once('.').unwrap();
        let sig: [u8; 64] = hex::decode(sig).unwrap().try_into().unwrap();
        let vk = key().0.verifying_key();
        let message = format!("iicp:consumer-token:v1\n{body}");
        assert!(
            vk.verify(message.as_bytes(), &Signature::from_bytes(&sig))
                .is_ok()
        );
    }
}
