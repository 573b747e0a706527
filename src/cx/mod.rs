//! IICP-CX confidentiality (PROTOCOL.md §2.5): the cryptography only, with no
//! I/O. A client seals a task payload to a node's X25519 key; the node opens
//! it and, when asked, seals its answer with a key derived from the same
//! shared secret.
//!
//! Request: ephemeral X25519 → `ss`; `k = HKDF-SHA256(salt = nonce, ikm = ss,
//! info = "IICP-CX-v1" ‖ task_id ‖ intent)`; AES-256-GCM over the payload JSON
//! with `aad = task_id | intent`. Response: `k2 = HKDF-SHA256(salt = n2, ikm =
//! ss, info = "IICP-CX-RESP-v1" ‖ task_id)`, `aad = task_id | "resp"`. All
//! binary fields are base64url without padding. The crates are x25519-dalek,
//! hkdf, aes-gcm and sha2; nothing here is hand-rolled.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

/// `info` prefix of the request key.
const REQUEST_INFO: &[u8] = b"IICP-CX-v1";
/// `info` prefix of the response key.
const RESPONSE_INFO: &[u8] = b"IICP-CX-RESP-v1";
/// The only envelope version.
pub const CX_VERSION: u32 = 1;

/// Why sealing or opening failed. Messages never contain plaintext or keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CxError {
    /// The envelope names another key than this node's.
    #[error("iicp_conf is sealed to key {0}, not to this node's key")]
    UnknownKeyId(String),
    /// A version other than 1.
    #[error("iicp_conf version {0} is not supported (only 1)")]
    Version(u32),
    /// A field is missing or not valid base64url / of the right length.
    #[error("iicp_conf field `{0}` is missing or malformed")]
    Field(&'static str),
    /// The authenticated data does not match the task.
    #[error("iicp_conf authenticated data does not match this task")]
    AadMismatch,
    /// Authentication failed: wrong key, tampered ciphertext, nonce or data.
    #[error("decryption failed (wrong key or tampered data)")]
    Decrypt,
}

impl CxError {
    /// The wire error code (PROTOCOL.md §2.3 step 7 uses `IICP-CX-02` for
    /// decryption failures).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownKeyId(_) => "IICP-E060",
            Self::Version(_) => "IICP-E061",
            _ => "IICP-CX-02",
        }
    }
}

/// The `iicp_conf` object of an encrypted task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IicpConf {
    /// 1.
    pub version: u32,
    /// The node key this was sealed to.
    pub recipient_key_id: String,
    /// The ephemeral public key, base64url.
    pub kem_ciphertext: String,
    /// Ciphertext with the GCM tag appended, base64url.
    pub encrypted_body: String,
    /// 12-byte nonce, base64url.
    pub nonce: String,
    /// `task_id|intent`, base64url.
    pub aad: String,
    /// Length of the plaintext in bytes.
    pub plaintext_size: usize,
}

/// The `iicp_conf_resp` object of an encrypted answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IicpConfResp {
    /// 1.
    pub version: u32,
    /// 12-byte nonce, base64url.
    pub nonce: String,
    /// Ciphertext with the GCM tag appended, base64url.
    pub encrypted_body: String,
}

/// The X25519 shared secret of one task, kept to open or seal its answer.
#[derive(Clone)]
pub struct SharedSecret([u8; 32]);

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(***)")
    }
}

/// `cx-` and the first 16 hex characters of SHA-256 of the public key.
pub fn key_id(public: &[u8; 32]) -> String {
    format!("cx-{}", &hex::encode(Sha256::digest(public))[..16])
}

/// A node's CX key pair.
#[derive(Clone)]
pub struct CxKeyPair {
    secret: StaticSecret,
    public: [u8; 32],
}

impl std::fmt::Debug for CxKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CxKeyPair({})", self.key_id())
    }
}

impl CxKeyPair {
    /// A key pair from 32 secret bytes.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    /// A fresh random key pair.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self::from_secret_bytes(bytes)
    }

    /// The secret bytes, for storing the key (keep them private: 0600).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The public key.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public
    }

    /// Its key id.
    pub fn key_id(&self) -> String {
        key_id(&self.public)
    }

    /// The `cx_public_key` object to advertise at registration.
    pub fn advertised(&self) -> crate::wire::CxPublicKey {
        crate::wire::CxPublicKey {
            algorithm: "X25519".into(),
            encoding: "base64url".into(),
            key: B64.encode(self.public),
            key_id: self.key_id(),
            features: vec!["response_encryption_v1".into()],
            extra: Default::default(),
        }
    }

    /// Opens a sealed request for `task_id`/`intent`; returns the payload
    /// JSON bytes and the shared secret for the answer.
    pub fn open_request(
        &self,
        conf: &IicpConf,
        task_id: &str,
        intent: &str,
    ) -> Result<(Vec<u8>, SharedSecret), CxError> {
        if conf.version != CX_VERSION {
            return Err(CxError::Version(conf.version));
        }
        if conf.recipient_key_id != self.key_id() {
            return Err(CxError::UnknownKeyId(conf.recipient_key_id.clone()));
        }
        let eph: [u8; 32] = decode_fixed(&conf.kem_ciphertext, "kem_ciphertext")?;
        let nonce: [u8; 12] = decode_fixed(&conf.nonce, "nonce")?;
        let aad = B64.decode(&conf.aad).map_err(|_| CxError::Field("aad"))?;
        if aad != request_aad(task_id, intent) {
            return Err(CxError::AadMismatch);
        }
        let ct = B64
            .decode(&conf.encrypted_body)
            .map_err(|_| CxError::Field("encrypted_body"))?;
        let ss = SharedSecret(self.secret.diffie_hellman(&PublicKey::from(eph)).to_bytes());
        let key = derive(
            &nonce,
            &ss.0,
            &[REQUEST_INFO, task_id.as_bytes(), intent.as_bytes()],
        );
        let plain = decrypt(&key, &nonce, &ct, &aad)?;
        Ok((plain, ss))
    }
}

fn decode_fixed<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], CxError> {
    B64.decode(text)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(CxError::Field(field))
}

fn request_aad(task_id: &str, intent: &str) -> Vec<u8> {
    format!("{task_id}|{intent}").into_bytes()
}

fn response_aad(task_id: &str) -> Vec<u8> {
    format!("{task_id}|resp").into_bytes()
}

fn derive(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let info: Vec<u8> = info.concat();
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(&info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

fn encrypt(key: &[u8; 32], nonce: &[u8; 12], plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    cipher
        .encrypt(nonce.into(), Payload { msg: plain, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail")
}

fn decrypt(key: &[u8; 32], nonce: &[u8; 12], ct: &[u8], aad: &[u8]) -> Result<Vec<u8>, CxError> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    cipher
        .decrypt(nonce.into(), Payload { msg: ct, aad })
        .map_err(|_| CxError::Decrypt)
}

/// Seals a payload to a node's public key with the given ephemeral secret
/// and nonce (fixed values make known-answer tests possible).
pub fn seal_request_with(
    node_public: &[u8; 32],
    task_id: &str,
    intent: &str,
    payload_json: &[u8],
    ephemeral_secret: [u8; 32],
    nonce: [u8; 12],
) -> (IicpConf, SharedSecret) {
    let eph = StaticSecret::from(ephemeral_secret);
    let eph_public = PublicKey::from(&eph).to_bytes();
    let ss = SharedSecret(
        eph.diffie_hellman(&PublicKey::from(*node_public))
            .to_bytes(),
    );
    let key = derive(
        &nonce,
        &ss.0,
        &[REQUEST_INFO, task_id.as_bytes(), intent.as_bytes()],
    );
    let aad = request_aad(task_id, intent);
    let ct = encrypt(&key, &nonce, payload_json, &aad);
    let conf = IicpConf {
        version: CX_VERSION,
        recipient_key_id: key_id(node_public),
        kem_ciphertext: B64.encode(eph_public),
        encrypted_body: B64.encode(ct),
        nonce: B64.encode(nonce),
        aad: B64.encode(&aad),
        plaintext_size: payload_json.len(),
    };
    (conf, ss)
}

/// Seals a payload to a node's public key with fresh randomness.
pub fn seal_request(
    node_public: &[u8; 32],
    task_id: &str,
    intent: &str,
    payload_json: &[u8],
) -> (IicpConf, SharedSecret) {
    let mut eph = [0u8; 32];
    let mut nonce = [0u8; 12];
    rand::fill(&mut eph);
    rand::fill(&mut nonce);
    seal_request_with(node_public, task_id, intent, payload_json, eph, nonce)
}

/// Seals an answer with the task's shared secret and the given nonce.
pub fn seal_response_with(
    ss: &SharedSecret,
    task_id: &str,
    body_json: &[u8],
    nonce: [u8; 12],
) -> IicpConfResp {
    let key = derive(&nonce, &ss.0, &[RESPONSE_INFO, task_id.as_bytes()]);
    IicpConfResp {
        version: CX_VERSION,
        nonce: B64.encode(nonce),
        encrypted_body: B64.encode(encrypt(&key, &nonce, body_json, &response_aad(task_id))),
    }
}

/// Seals an answer with fresh randomness.
pub fn seal_response(ss: &SharedSecret, task_id: &str, body_json: &[u8]) -> IicpConfResp {
    let mut nonce = [0u8; 12];
    rand::fill(&mut nonce);
    seal_response_with(ss, task_id, body_json, nonce)
}

/// Opens an encrypted answer.
pub fn open_response(
    ss: &SharedSecret,
    task_id: &str,
    resp: &IicpConfResp,
) -> Result<Vec<u8>, CxError> {
    if resp.version != CX_VERSION {
        return Err(CxError::Version(resp.version));
    }
    let nonce: [u8; 12] = decode_fixed(&resp.nonce, "nonce")?;
    let ct = B64
        .decode(&resp.encrypted_body)
        .map_err(|_| CxError::Field("encrypted_body"))?;
    let key = derive(&nonce, &ss.0, &[RESPONSE_INFO, task_id.as_bytes()]);
    decrypt(&key, &nonce, &ct, &response_aad(task_id))
}

/// The public key bytes of an advertised key (base64url of 32 bytes).
pub fn public_key_bytes(advertised: &crate::wire::CxPublicKey) -> Result<[u8; 32], CxError> {
    decode_fixed(&advertised.key, "key")
}
