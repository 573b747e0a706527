//! Who may submit a task (PROTOCOL.md §2.4). In `open` mode, as the live
//! mesh runs, anyone may. In `token` mode a task needs either the node's own
//! token (`auth.node_token`, `auth.token` or `Authorization: Bearer`),
//! compared in constant time, or an `X-IICP-Consumer-Token` that verifies
//! against the directory's Ed25519 key and names this node (`aud`), the
//! task's intent (or `*`) and has not expired (10 s grace). A valid
//! consumer token is accepted in both modes.

use crate::secret::Secret;
use crate::token::{DirectoryPublicKey, TokenError, unix_now};
use crate::wire::{ErrorBody, TaskRequest};
use sha2::{Digest, Sha256};
use std::sync::RwLock;
use subtle::ConstantTimeEq;

/// How a node decides who may submit tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TaskAuthMode {
    /// Anyone may submit (the live mesh today).
    #[default]
    Open,
    /// A task needs the node's own token or a directory-signed consumer token.
    Token,
}

impl TaskAuthMode {
    /// `open` or `token`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Token => "token",
        }
    }
}

impl std::str::FromStr for TaskAuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "token" => Ok(Self::Token),
            other => Err(format!("task auth mode `{other}` is not open or token")),
        }
    }
}

/// The credentials a transport found outside the task body, in a
/// transport-neutral form. The body's own `auth.node_token` (or
/// `auth.token`) is not here: it is read from the task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    /// A consumer token signed by the directory (HTTP:
    /// `X-IICP-Consumer-Token`).
    pub consumer_token: Option<String>,
    /// The node's own token presented beside the task (HTTP:
    /// `Authorization: Bearer`; the native transport's connection or call
    /// token goes here too).
    pub bearer: Option<Secret>,
}

/// Whether `token` has the shape of a directory consumer token
/// (`<base64url claims>.<128 hex digits of signature>`), which no node token
/// has. A transport with one field for both (native CALL key 11) uses it to
/// route the token; the signature is checked later, as for any consumer
/// token.
#[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))]
pub(crate) fn looks_like_consumer_token(token: &str) -> bool {
    let Some((claims, signature)) = token.trim().split_once('.') else {
        return false;
    };
    !claims.is_empty()
        && claims
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && signature.len() == 128
        && signature.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The node's authorisation state: its mode, its current token (it changes
/// when the node registers again) and the directory's key.
#[derive(Debug)]
pub(crate) struct Authorizer {
    mode: TaskAuthMode,
    own_token: RwLock<Option<Secret>>,
    directory_key: RwLock<Option<DirectoryPublicKey>>,
}

impl Authorizer {
    pub fn new(mode: TaskAuthMode, own_token: Option<Secret>) -> Self {
        Self {
            mode,
            own_token: RwLock::new(own_token),
            directory_key: RwLock::new(None),
        }
    }

    /// The token the directory issued at the latest registration.
    pub fn set_own_token(&self, token: Secret) {
        *crate::sync::write(&self.own_token) = Some(token);
    }

    /// The current token, if any.
    pub fn own_token(&self) -> Option<Secret> {
        crate::sync::read(&self.own_token).clone()
    }

    /// The directory's key, fetched at registration (`None`: it has none).
    pub fn set_directory_key(&self, key: Option<DirectoryPublicKey>) {
        *crate::sync::write(&self.directory_key) = key;
    }

    /// Whether `task` may run here; the error is the 401 body to send. No
    /// message contains a token.
    pub fn check(
        &self,
        task: &TaskRequest,
        credentials: &Credentials,
        node_id: Option<&str>,
    ) -> Result<(), ErrorBody> {
        // Open mode takes every task, so a token there cannot change the
        // outcome: it is not verified at all.
        if self.mode == TaskAuthMode::Open {
            return Ok(());
        }
        let consumer = credentials
            .consumer_token
            .as_deref()
            .map(|token| self.check_consumer_token(token, task, node_id));
        if let Some(Ok(())) = consumer {
            return Ok(());
        }
        let presented = task
            .auth
            .as_ref()
            .and_then(|a| a.node_token.as_ref().or(a.token.as_ref()))
            .or(credentials.bearer.as_ref());
        if let (Some(presented), Some(own)) = (presented, self.own_token()) {
            if same_secret(presented, &own) {
                return Ok(());
            }
        }
        let why = match (consumer, presented) {
            (Some(Err(e)), _) => e,
            (_, Some(_)) => "the node token is not this node's".to_owned(),
            _ => "no credential was sent".to_owned(),
        };
        Err(ErrorBody::new(
            "unauthorized",
            format!(
                "this node accepts tasks only with its node token (auth.node_token) or an \
                 X-IICP-Consumer-Token from its directory: {why}"
            ),
        ))
    }

    fn check_consumer_token(
        &self,
        token: &str,
        task: &TaskRequest,
        node_id: Option<&str>,
    ) -> Result<(), String> {
        let Some(key) = *crate::sync::read(&self.directory_key) else {
            return Err("the directory's signing key is unknown to this node".into());
        };
        let Some(node_id) = node_id else {
            return Err("this node is not registered yet".into());
        };
        key.verify_consumer_token(token)
            .and_then(|claims| claims.check(node_id, task.intent.as_str(), unix_now()))
            .map_err(|e: TokenError| format!("consumer token refused: {e}"))
    }
}

/// Constant-time equality of two secrets (their SHA-256 digests, so the
/// time does not depend on where they differ or on their lengths).
fn same_secret(a: &Secret, b: &Secret) -> bool {
    let a = Sha256::digest(a.expose().as_bytes());
    let b = Sha256::digest(b.expose().as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{ConsumerClaims, DEFAULT_ISSUER, DirectorySigningKey};
    use crate::wire::TaskAuth;

    const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

    fn task(auth: Option<&str>) -> TaskRequest {
        let mut t = TaskRequest::new(CHAT.parse().unwrap(), serde_json::json!({}));
        t.auth = auth.map(|a| TaskAuth {
            node_token: Some(a.into()),
            ..Default::default()
        });
        t
    }

    fn authorizer(mode: TaskAuthMode) -> (Authorizer, DirectorySigningKey) {
        let key = DirectorySigningKey::from_seed([3; 32]);
        let auth = Authorizer::new(mode, Some("own-token".into()));
        auth.set_directory_key(Some(key.public_key()));
        (auth, key)
    }

    fn consumer(token: String) -> Credentials {
        Credentials {
            consumer_token: Some(token),
            bearer: None,
        }
    }

    #[test]
    fn token_mode_needs_a_credential() {
        let (auth, key) = authorizer(TaskAuthMode::Token);
        let none = Credentials::default();
        let err = auth.check(&task(None), &none, Some("me")).unwrap_err();
        assert_eq!(err.error.code, "unauthorized");
        assert!(err.error.message.contains("no credential"));
        assert!(
            auth.check(&task(Some("own-token")), &none, Some("me"))
                .is_ok()
        );
        let wrong = auth
            .check(&task(Some("other")), &none, Some("me"))
            .unwrap_err();
        assert!(!wrong.error.message.contains("other"), "no token echoed");
        let bearer = Credentials {
            bearer: Some("own-token".into()),
            ..Default::default()
        };
        assert!(auth.check(&task(None), &bearer, Some("me")).is_ok());
        let mut legacy = task(None);
        legacy.auth = Some(TaskAuth {
            token: Some("own-token".into()),
            ..Default::default()
        });
        assert!(auth.check(&legacy, &none, Some("me")).is_ok());

        let now = unix_now();
        let good =
            key.sign_consumer_token(&ConsumerClaims::new(DEFAULT_ISSUER, "c", "me", CHAT, now));
        assert!(auth.check(&task(None), &consumer(good), Some("me")).is_ok());
        let expired = key.sign_consumer_token(&ConsumerClaims::new(
            DEFAULT_ISSUER,
            "c",
            "me",
            CHAT,
            now - 400,
        ));
        let err = auth
            .check(&task(None), &consumer(expired), Some("me"))
            .unwrap_err();
        assert!(
            err.error.message.contains("expired"),
            "{}",
            err.error.message
        );
        let elsewhere =
            key.sign_consumer_token(&ConsumerClaims::new(DEFAULT_ISSUER, "c", "you", CHAT, now));
        assert!(
            auth.check(&task(None), &consumer(elsewhere), Some("me"))
                .is_err()
        );
    }

    #[test]
    fn open_mode_accepts_everything_and_valid_consumer_tokens() {
        let (auth, key) = authorizer(TaskAuthMode::Open);
        assert!(
            auth.check(&task(None), &Credentials::default(), None)
                .is_ok()
        );
        let bad = key.sign_consumer_token(&ConsumerClaims::new(DEFAULT_ISSUER, "c", "x", CHAT, 0));
        assert!(auth.check(&task(None), &consumer(bad), Some("me")).is_ok());
    }

    #[test]
    fn without_the_directory_key_only_the_node_token_counts() {
        let auth = Authorizer::new(TaskAuthMode::Token, Some("own-token".into()));
        let key = DirectorySigningKey::from_seed([3; 32]);
        let t = key.sign_consumer_token(&ConsumerClaims::new(
            DEFAULT_ISSUER,
            "c",
            "me",
            CHAT,
            unix_now(),
        ));
        let err = auth
            .check(&task(None), &consumer(t), Some("me"))
            .unwrap_err();
        assert!(err.error.message.contains("signing key is unknown"));
        assert!(
            auth.check(
                &task(Some("own-token")),
                &Credentials::default(),
                Some("me")
            )
            .is_ok()
        );
    }

    #[test]
    fn consumer_tokens_are_told_from_node_tokens_by_shape() {
        let key = DirectorySigningKey::from_seed([3; 32]);
        let signed =
            key.sign_consumer_token(&ConsumerClaims::new(DEFAULT_ISSUER, "c", "me", CHAT, 0));
        assert!(looks_like_consumer_token(&signed));
        for not_one in [
            "own-token",
            "",
            "a.b",
            &format!("claims.{}", "g".repeat(128)),
            &format!(".{}", "a".repeat(128)),
            &format!("cl=ims.{}", "a".repeat(128)),
            &uuid_like(),
        ] {
            assert!(!looks_like_consumer_token(not_one), "{not_one}");
        }
    }

    fn uuid_like() -> String {
        "3f2b8c1e-9a4d-4f6e-8b1a-2c3d4e5f6a7b".to_owned()
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret(&"abc".into(), &"abc".into()));
        assert!(!same_secret(&"abc".into(), &"abd".into()));
        assert!(!same_secret(&"abc".into(), &"abcd".into()));
    }
}
