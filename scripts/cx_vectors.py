"""Writes the IICP-CX known-answer vectors in tests/vectors/ with an independent
implementation (the `cryptography` package), so the Rust code is checked against
values it did not produce. Fixed keys and nonces; PROTOCOL.md §2.5.

Run: <python with cryptography> scripts/cx_vectors.py
"""
import base64
import hashlib
import json
import pathlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def hkdf(salt: bytes, ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


node_secret = bytes(range(1, 33))
eph_secret = bytes(range(101, 133))
nonce = bytes(range(201, 213))
resp_nonce = bytes(range(151, 163))
task_id = "7d0f4a2e-3c1b-4f5a-9e8d-2b6c1a0f9e11"
intent = "urn:iicp:intent:llm:chat:v1"
payload = json.dumps({"messages": [{"role": "user", "content": "Hello, sealed world"}], "max_tokens": 16},
                     separators=(",", ":")).encode()
response_body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "sealed reply"},
                                         "finish_reason": "stop"}]}, separators=(",", ":")).encode()

node = X25519PrivateKey.from_private_bytes(node_secret)
eph = X25519PrivateKey.from_private_bytes(eph_secret)
node_public = raw_public(node)
ss = eph.exchange(X25519PublicKey.from_public_bytes(node_public))
assert ss == node.exchange(eph.public_key())
key = hkdf(nonce, ss, b"IICP-CX-v1" + task_id.encode() + intent.encode())
aad = f"{task_id}|{intent}".encode()
ct = AESGCM(key).encrypt(nonce, payload, aad)
resp_key = hkdf(resp_nonce, ss, b"IICP-CX-RESP-v1" + task_id.encode())
resp_ct = AESGCM(resp_key).encrypt(resp_nonce, response_body, f"{task_id}|resp".encode())

vectors = {
    "profile": "iicp-cx-v1 known answers (PROTOCOL.md §2.5)",
    "generator": "scripts/cx_vectors.py with the Python `cryptography` package",
    "node_secret_hex": node_secret.hex(),
    "node_public_b64url": b64(node_public),
    "node_key_id": "cx-" + hashlib.sha256(node_public).hexdigest()[:16],
    "ephemeral_secret_hex": eph_secret.hex(),
    "task_id": task_id,
    "intent": intent,
    "payload_utf8": payload.decode(),
    "request": {
        "nonce_hex": nonce.hex(),
        "shared_secret_hex": ss.hex(),
        "key_hex": key.hex(),
        "iicp_conf": {
            "version": 1,
            "recipient_key_id": "cx-" + hashlib.sha256(node_public).hexdigest()[:16],
            "kem_ciphertext": b64(raw_public(eph)),
            "encrypted_body": b64(ct),
            "nonce": b64(nonce),
            "aad": b64(aad),
            "plaintext_size": len(payload),
        },
    },
    "response": {
        "nonce_hex": resp_nonce.hex(),
        "key_hex": resp_key.hex(),
        "body_utf8": response_body.decode(),
        "iicp_conf_resp": {"version": 1, "nonce": b64(resp_nonce), "encrypted_body": b64(resp_ct)},
    },
}
out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors" / "cx-v1.json"
out.write_text(json.dumps(vectors, indent=2) + "\n")
print(f"wrote {out}")
