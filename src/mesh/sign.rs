//! `X-IICP-Signature` (PROTOCOL.md §8 step 3): hex HMAC-SHA256 of the raw
//! body with the gossip key, as the Python SDK's `sign_body` makes it.
//! Checked in constant time; the key never reaches a log line.

use crate::secret::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header the signature travels in.
pub(crate) const HEADER: &str = "x-iicp-signature";

fn mac(key: &Secret, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

/// The lowercase hex signature of `body`.
pub(crate) fn sign(key: &Secret, body: &[u8]) -> String {
    hex::encode(mac(key, body).finalize().into_bytes())
}

/// Whether `signature` (hex, either case) is the HMAC of `body`; compared in
/// constant time. A missing or malformed signature is false.
pub(crate) fn verify(key: &Secret, body: &[u8], signature: Option<&str>) -> bool {
    let Some(signature) = signature else {
        return false;
    };
    let Ok(bytes) = hex::decode(signature.trim()) else {
        return false;
    };
    bytes.len() == 32 && mac(key, body).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_sign_body_and_refuses_everything_else() {
        // python3 -c "import hmac,hashlib;
        //   print(hmac.new(b'shared', b'{\"known_peers\":[]}', hashlib.sha256).hexdigest())"
        let key = Secret::new("shared");
        let body = br#"{"known_peers":[]}"#;
        let sig = sign(&key, body);
        assert_eq!(
            sig,
            "b0cd4bee9da8320fe8b462715f2127ce6eb461cf39bd2766c541e0a05900d187"
        );
        assert!(verify(&key, body, Some(&sig)));
        assert!(verify(&key, body, Some(&sig.to_uppercase())));
        assert!(!verify(&key, b"{}", Some(&sig)));
        assert!(!verify(&Secret::new("other"), body, Some(&sig)));
        assert!(!verify(&key, body, None));
        assert!(!verify(&key, body, Some("zz")));
        assert!(!verify(&key, body, Some(&sig[..62])));
    }
}
