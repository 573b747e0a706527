#!/usr/bin/env python3
"""Writes the named seed files of the fuzz targets that decode network input.

    python3 fuzz/seeds.py [VECTORS_DIR]

VECTORS_DIR defaults to ../shared/vectors beside the repository. Seeds are
taken from the vectors (task samples and schema examples, the directory
lifecycle profile, nodelist examples, selection and endpoint-security vectors,
intent payloads, the dispatch ticket fixture) and written by hand where the
vectors have no such message (sealed envelopes, tokens, relay binds, gossip
bodies). Each goes to fuzz/corpus/<target>/seed-<name>; files of that name are
rewritten, nothing else in the corpus is touched. Standard library only.

The inputs follow each harness's format (fuzz/src/targets/<target>.rs): a mode
byte first where the harness has modes, parts separated by 0xFF for
directory_lifecycle.
"""

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
CORPUS = FUZZ / "corpus"
CHAT = "urn:iicp:intent:llm:chat:v1"
EMBED = "urn:iicp:intent:llm:embedding:v1"


def dumps(value):
    return json.dumps(value, separators=(",", ":")).encode()


# --- X25519 (RFC 7748), for the node's CX key of the harnesses ----------------

P = 2**255 - 19


def x25519(scalar, u):
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b, c, d = x2 + z2, x2 - z2, x3 + z3, x3 - z3
        aa, bb, da, cb = a * a, b * b, d * a, c * b
        e = aa - bb
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + 121665 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# The harnesses' node key: CxKeyPair::from_secret_bytes([0x11; 32]).
NODE_PUBLIC = x25519(bytes([0x11] * 32), (9).to_bytes(32, "little"))
NODE_KEY_ID = "cx-" + hashlib.sha256(NODE_PUBLIC).hexdigest()[:16]
NODE_CX_KEY = {
    "algorithm": "X25519",
    "encoding": "base64url",
    "key": b64url(NODE_PUBLIC),
    "key_id": NODE_KEY_ID,
    "features": ["response_encryption_v1"],
}

# --- CBOR (definite lengths, as the native transport writes) ------------------


def cbor(value):
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | extra]) + struct.pack(fmt, n)
        raise ValueError(n)

    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        data = value.encode()
        return head(3, len(data)) + data
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


# --- the seeds -----------------------------------------------------------------


def task_envelope(v):
    seeds = {}
    for name in ("task-valid", "task-invalid-intent"):
        seeds[name] = (v / f"{name}.json").read_bytes()
    for i, example in enumerate(json.loads((v / "task.json").read_text())["examples"]):
        seeds[f"task-schema-example-{i}"] = dumps(example)
    for case in json.loads((v / "intent-payloads-v1.json").read_text())["cases"]:
        seeds[f"intent-payloads-{case['id']}"] = dumps(
            {"intent": case["intent"], "payload": case["payload"]}
        )
    for case in json.loads((v / "sdk-request-projection-v0.json").read_text())["cases"]:
        task = dict(case["task"])
        task.setdefault("intent", CHAT)
        seeds[f"sdk-request-projection-{case['name']}"] = dumps(task)
    for intent in json.loads((v / "intents.json").read_text())["intents"]:
        seeds["intents-" + intent["urn"].split(":", 3)[3].replace(":", "-").replace("/", "-")] = dumps(
            {"intent": intent["urn"], "payload": {}}
        )
    conf = {
        "version": 1,
        "recipient_key_id": NODE_KEY_ID,
        "kem_ciphertext": b64url(bytes(range(32))),
        "encrypted_body": b64url(bytes(48)),
        "nonce": b64url(bytes(12)),
        "aad": b64url(f"t-1|{CHAT}".encode()),
        "plaintext_size": 32,
    }
    seeds["hand-sealed"] = dumps(
        {"task_id": "t-1", "intent": CHAT, "iicp_conf": conf, "cx_response_encryption": "required"}
    )
    seeds["hand-every-field"] = dumps(
        {
            "task_id": "550e8400-e29b-41d4-a716-446655440000",
            "intent": CHAT,
            "payload": {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.7},
            "constraints": {"timeout_ms": 300000, "max_tokens": 64, "model": "llama3",
                            "qos_class": "batch", "priority": 3},
            "auth": {"token": "own-token", "scope": "x"},
            "source_node_id": "node-a",
            "nonce": "ycrLzM3Oz9DR0tPU+/==",
            "trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        }
    )
    seeds["hand-policy-refused"] = dumps({"intent": "urn:iicp:intent:social-scoring:rank:v1"})
    seeds["hand-bad-ids"] = dumps({"intent": CHAT, "task_id": "a b", "nonce": "\r"})
    seeds["hand-malformed"] = b'{"intent": "urn:iicp:intent:llm:chat:v1", "payload": [1, 2'
    return seeds


def directory_lifecycle(v):
    def parts(*items):
        return b"\xff".join(tag.encode() + body for tag, body in items)

    seeds = {}
    tests = json.loads((v / "directory-lifecycle-v1.json").read_text())["tests"]
    register = dict(tests[0]["body"], node_id="fixture-node-1")
    beat = {"node_id": "fixture-node-1"}
    seeds["directory-lifecycle-v1"] = parts(
        ("R", dumps(register)),
        ("H", dumps(beat)),
        ("P", dumps(register)),
        ("A", dumps(beat)),
        ("H", dumps(beat)),
        ("D", dumps(beat)),
        ("Q", dumps({"intent": CHAT})),
    )
    for case in json.loads((v / "directory-implementation-metadata-v1.json").read_text())["cases"]:
        seeds[f"implementation-metadata-{case['name']}"] = parts(
            ("R", dumps(dict(register, **case["input"]))), ("Q", dumps({"intent": CHAT}))
        )
    for test in json.loads((v / "directory-public-v1.json").read_text())["tests"]:
        path = test["path"]
        if "/discover?" in path:
            query = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
            if "min_reputation" in query:
                query["min_reputation"] = float(query["min_reputation"])
            seeds[f"directory-public-{test['id']}"] = parts(("Q", dumps(query)))
    contract = json.loads((v / "behavior-contract-v1.json").read_text())
    for case in contract["eligibility_cases"]:
        items = []
        for c in case["candidates"]:
            node_id = c["id"][:36]
            reg = {
                "node_id": node_id,
                "endpoint": f"https://{node_id}.example.net",
                "capabilities": [{"intent": CHAT, "models": c["models"]}],
            }
            if c.get("backend"):
                reg["backend"] = c["backend"]
            items.append(("R", dumps(reg)))
            hb = {"node_id": node_id, "metrics": {"tasks_success": min(c["tasks"], 1000),
                                                   "tasks_failed": 0},
                  "metrics_batch_id": "b-1"}
            if c.get("health_models") is not None:
                hb["health_models"] = c["health_models"]
            if c.get("backend_state"):
                hb["backend_state"] = c["backend_state"]
            items.append(("A", dumps(hb)))
        query = {"intent": CHAT, "min_reputation": case["min_reputation"]}
        if case.get("model"):
            query["model"] = case["model"]
        if case.get("qos"):
            query["qos"] = case["qos"]
        items.append(("Q", dumps(query)))
        seeds[f"behavior-contract-eligibility-{case['name']}"] = parts(*items)
    for case in contract["ranking_cases"]:
        node = case["node"]
        reg = {
            "node_id": "ranked-1",
            "endpoint": "https://ranked.example.net",
            "region": node["region"],
            "capabilities": [{"intent": CHAT, "models": node["models"]}],
            "limits": {"max_concurrent": node["max_concurrent"], "tokens_per_min": 1000},
        }
        if node.get("cx_key"):
            reg["cx_public_key"] = NODE_CX_KEY
        if node.get("pricing") is not None:
            reg["pricing"] = {"credit_cost_multiplier": node["pricing"]}
        if node.get("sdk_current"):
            reg["sdk_version"] = "0.7.101"
        hb = {"node_id": "ranked-1", "load": node["load"], "active_jobs": node["active_jobs"]}
        query = {"intent": CHAT}
        if case.get("requested_model"):
            query["model"] = case["requested_model"]
        if case.get("requested_region"):
            query["region"] = case["requested_region"]
        seeds[f"behavior-contract-ranking-{case['name']}"] = parts(
            ("R", dumps(reg)), ("H", dumps(hb)), ("Q", dumps(query))
        )
    seeds["hand-embedding-and-time"] = parts(
        ("L", dumps({"node_id": "emb-1", "endpoint": "http://127.0.0.1:9484", "capabilities": [
            {"intent": EMBED, "models": ["nomic-embed"], "input_modalities": ["text"]},
            {"intent": CHAT, "models": ["llava"], "input_modalities": ["text", "image"],
             "variant_id": "vision"}]})),
        ("H", dumps({"node_id": "emb-1", "available": True, "load": 0.5, "health_models": ["llava"],
                     "metrics": {"tasks_success": 40, "tasks_failed": 2, "tasks_timeout": 1},
                     "metrics_batch_id": "batch-1"})),
        ("T", b"\x10\x0e"),
        ("A", dumps({"node_id": "emb-1", "backend_stability": {"state": "draining"}})),
        ("Q", dumps({"intent": EMBED, "model": "nomic-embed", "qos": "batch", "limit": 3})),
    )
    return seeds


def discover_answer(v):
    seeds = {}
    for i, example in enumerate(json.loads((v / "nodelist.json").read_text())["examples"]):
        seeds[f"nodelist-example-{i}"] = dumps(example)
    selection = json.loads((v / "selection-v1.json").read_text())
    for vector in selection["vectors"]:
        nodes = [dict(n, endpoint=f"https://{n['node_id']}.example.net", available=True)
                 for n in vector["nodes"]]
        seeds[f"selection-{vector['name']}"] = dumps({"nodes": nodes, "count": len(nodes)})
    security = json.loads((v / "endpoint-security-v1.json").read_text())
    nodes = []
    for vector in security["address_vectors"]:
        for address in vector["addresses"]:
            host = f"[{address}]" if ":" in address else address
            nodes.append({"node_id": vector["id"], "endpoint": f"http://{host}:9484",
                          "score": 0.5, "available": True})
    seeds["endpoint-security-addresses"] = dumps({"nodes": nodes[:10], "count": 10})
    nodes = [{"node_id": h["id"], "endpoint": f"https://{h['host']}", "score": 0.5,
              "available": True} for h in security["hostname_vectors"]]
    seeds["endpoint-security-hostnames"] = dumps({"nodes": nodes, "count": len(nodes)})
    seeds["hand-keyed-and-lenient"] = dumps({
        "nodes": [
            {"node_id": "n-1", "endpoint": "https://n1.example.net", "score": 0.9, "available": True,
             "region": None, "load": 0.3, "cx_public_key": NODE_CX_KEY,
             "capabilities": [{"intent": "not a urn"}, {"intent": CHAT, "models": ["m"]}],
             "transport": ["https", "iicp-native"], "transport_endpoint": "iicp://n1.example.net:9485",
             "pricing": {"credit_cost_multiplier": 1.2, "pricing_model": "per_token"}},
            {"node_id": "n-2", "endpoint": "https://n2.example.net/", "score": 0.7, "available": True,
             "cx_public_key": None, "public_key": dict(NODE_CX_KEY, key_id="")},
            {"node_id": "n-3", "endpoint": "https://n3.example.net", "score": 0.6, "available": False},
            {"node_id": "n-4", "score": 0.1},
        ],
        "count": 4, "relay_available": False, "query_ms": 2, "view": "dispatch",
        "data_class": "route_dispatch", "route_fields_present": True,
    })
    seeds["hand-error-nested"] = dumps({"error": {"code": "IICP-E021", "message": "capacity",
                                                  "retry_after_ms": 2000}})
    seeds["hand-error-flat"] = dumps({"error": "IICP-E034", "message": "slow down", "retry_after": 60})
    seeds["hand-error-top-level"] = dumps({"code": "not_found", "message": "no"})
    return seeds


def cx_envelope(v):
    seeds = {}
    conf = {
        "version": 1,
        "recipient_key_id": NODE_KEY_ID,
        "kem_ciphertext": b64url(NODE_PUBLIC),
        "encrypted_body": b64url(bytes(40)),
        "nonce": b64url(bytes(12)),
        "aad": b64url(f"3b0c7a52-9d4e-4f1a-8c2b-6e5d4f3a2b1c|{CHAT}".encode()),
        "plaintext_size": 24,
    }
    seeds["node-conf"] = b"\x00" + dumps(conf)
    seeds["node-conf-v2"] = b"\x00" + dumps(dict(conf, version=2, recipient_key_id="cx-other"))
    for case in json.loads((v / "intent-payloads-v1.json").read_text())["cases"]:
        seeds[f"seal-intent-payloads-{case['id']}"] = b"\x01" + dumps(case["payload"])
    seeds["seal-not-json"] = b"\x01\x00\x01binary"
    resp = {"version": 1, "nonce": b64url(bytes(12)), "encrypted_body": b64url(bytes(30))}
    seeds["client-sealed-answer"] = b"\x02" + dumps(
        {"task_id": "3b0c7a52-9d4e-4f1a-8c2b-6e5d4f3a2b1c", "status": "encrypted",
         "iicp_conf_resp": resp})
    seeds["client-plaintext-answer"] = b"\x02" + dumps(
        {"task_id": "t", "status": "success", "result": {"choices": []}})
    seeds["client-error-answer"] = b"\x02" + dumps(
        {"task_id": "t", "status": "error", "error": "boom"})
    output = json.loads((v / "llm-chat-v1-output.json").read_text())
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                  "model": "llama3"}
    assert set(completion) >= set(output["required"])
    seeds["open-success"] = b"\x03" + dumps(
        {"task_id": "t", "status": "success", "result": completion,
         "metrics": {"latency_ms": 5, "tokens_used": 4, "node_id": "n"}, "model_used": "llama3",
         "generated_by_ai": True})
    seeds["open-timeout"] = b"\x03" + dumps({"task_id": "t", "status": "timeout"})
    seeds["open-error-object"] = b"\x03" + dumps(
        {"task_id": "t", "status": "error", "error": {"code": "backend_error", "message": "x"}})
    seeds["open-backend-error-in-result"] = b"\x03" + dumps(
        {"task_id": "t", "status": "completed", "result": {"error_code": 502, "error_message": "down"}})
    return seeds


def consumer_token(v):
    seeds = {}
    ticket = json.loads((v / "dispatch-route-ticket-v1.json").read_text())
    seeds["arrives-dispatch-ticket"] = b"\x00" + ticket["valid"]["token"].encode()
    seeds["arrives-malformed"] = b"\x00not-a-ticket"
    seeds["arrives-shaped"] = b"\x00" + b64url(b'{"v":1}').encode() + b"." + b"ab" * 64
    claims = {"v": 1, "iss": "https://iicp.network", "sub": "caller-1", "aud": "node-fuzz-1",
              "intent": CHAT, "iat": 1700000000, "exp": 4102444800}
    seeds["consumer-claims"] = b"\x01" + dumps(claims)
    seeds["consumer-claims-wildcard"] = b"\x01" + dumps(dict(claims, intent="*", extra={"x": [1.5]}))
    seeds["consumer-claims-expired"] = b"\x01" + dumps(dict(claims, exp=1700000300))
    seeds["consumer-claims-other-node"] = b"\x01" + dumps(dict(claims, aud="node-2", v=2))
    seeds["consumer-claims-dispatch"] = b"\x01" + dumps(ticket["valid"]["claims"])
    relay = {"v": 1, "typ": "relay-bind-ticket", "jti": "0123456789abcdef0123456789abcdef",
             "iss": "https://iicp.network", "sub": "worker-1", "aud": "*", "iat": 1700000000,
             "exp": 4102444800}
    seeds["relay-claims"] = b"\x02" + dumps(relay)
    seeds["relay-claims-aimed"] = b"\x02" + dumps(dict(relay, aud="relay-1", jti="ABCDEF"))
    seeds["directory-key"] = b"\x03" + ticket["public_key_hex"].encode()
    seeds["directory-key-upper"] = b"\x03 " + ticket["public_key_hex"].upper().encode() + b"\n"
    return seeds


def relay_bind(v):
    seeds = {}
    seeds["tcp-bind"] = b"\x00" + cbor({1: "worker-1", 2: CHAT, 3: ["llama3", "phi3"],
                                        4: "claims.sig"})
    seeds["tcp-bind-python"] = b"\x00" + cbor({1: "w-2", 2: CHAT, 3: [], 4: ""})
    seeds["tcp-bind-integer-id"] = b"\x00" + cbor({1: 42, 3: "one-model"})
    seeds["tcp-bind-bad-id"] = b"\x00" + cbor({1: "../x", 2: CHAT})
    seeds["http-bind"] = b"\x01" + dumps({"worker_id": "worker-1", "intent": CHAT,
                                          "models": ["llama3"], "bind_ticket": "claims.sig"})
    seeds["http-bind-minimal"] = b"\x01" + dumps({"worker_id": "w"})
    seeds["http-bind-bad-models"] = b"\x01" + dumps({"worker_id": "w", "models": [1]})
    seeds["ack-ok"] = b"\x02" + cbor({1: "ok", 2: "worker-1", 4: 9485})
    seeds["ack-error"] = b"\x02" + cbor({1: "error", 2: "worker-1", 3: "relay at session capacity"})
    return seeds


def gossip(v):
    seeds = {}
    security = json.loads((v / "endpoint-security-v1.json").read_text())
    peers = [{"node_id": h["id"], "endpoint": f"https://{h['host']}/", "region": "eu",
              "last_seen": "2023-11-14T22:13:00Z", "relay_capable": True,
              "relay_accept_port": 9485, "relay_load": 0.25} for h in security["hostname_vectors"]]
    seeds["peers-endpoint-security"] = b"\x00" + dumps({"known_peers": peers})
    seeds["peers-sender-ids"] = b"\x00" + dumps(
        {"sender_id": "s", "known_peers": ["n-1", "n-2"], "timestamp_ms": 1700000000000, "ttl_s": 60})
    seeds["peers-times"] = b"\x00" + dumps({"known_peers": [
        {"node_id": "t-1", "endpoint": "https://t1.example.net", "last_seen_ms": 1699999990000},
        {"node_id": "t-2", "endpoint": "https://t2.example.net", "last_seen": 1699999990},
        {"node_id": "t-3", "endpoint": "https://t3.example.net", "last_seen": "2023-11-14 22:13:10.5+01:00"},
        {"node_id": "n-1", "endpoint": "https://elsewhere.example.net", "relay_capable": True},
        {"node_id": "node-self", "endpoint": "https://self.example.net/"},
    ]})
    seeds["reply"] = b"\x01" + dumps({"peers": peers[:1]})
    seeds["signature"] = b"\x02" + b"00" * 32 + b"\n" + dumps({"known_peers": []})
    return seeds


def chat_completion(v, content):
    """A chat completion holding every field the chat output schema requires."""
    output = json.loads((v / "llm-chat-v1-output.json").read_text())
    completion = {"id": "c-1", "object": "chat.completion", "created": 1,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                  "model": "llama3"}
    assert set(completion) >= set(output["required"])
    return completion


def task_answer(v):
    seeds = {}
    completion = chat_completion(v, "hi")
    metrics = {"latency_ms": 5, "tokens_used": 4, "node_id": "n"}
    seeds["chat-success"] = dumps(
        {"task_id": "t", "status": "success", "result": completion, "metrics": metrics,
         "model_used": "llama3", "generated_by_ai": True})
    seeds["chat-completed-wrapped"] = dumps(
        {"task_id": "t", "status": "completed", "result": {"result": completion}})
    seeds["text-completion"] = dumps(
        {"task_id": "t", "status": "success", "result": {
            "id": "x", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": "hi", "finish_reason": "length"}]}})
    seeds["embedding"] = dumps(
        {"task_id": "t", "status": "success", "metrics": metrics, "result": {
            "object": "list", "model": "m",
            "data": [{"object": "embedding", "index": 1, "embedding": [0.5, -1e-3]},
                     {"object": "embedding", "index": 0, "embedding": [1, 2]}]}})
    seeds["error-string"] = dumps({"task_id": "t", "status": "error", "error": "boom"})
    seeds["error-object"] = dumps(
        {"task_id": "t", "status": "error", "error": {"code": "backend_error", "message": "x",
                                                      "detail": [1]}})
    seeds["error-null"] = dumps({"status": "error", "error": None, "result": None})
    seeds["timeout"] = dumps({"task_id": "t", "status": "timeout"})
    seeds["backend-error-in-result"] = dumps(
        {"task_id": "t", "status": "completed", "result": {"error_code": 502,
                                                           "error_message": "down"}})
    seeds["encrypted"] = dumps(
        {"task_id": "t", "status": "encrypted",
         "iicp_conf_resp": {"version": 1, "nonce": b64url(bytes(12)),
                            "encrypted_body": b64url(bytes(30))}})
    seeds["extra-fields"] = dumps(
        {"status": "success", "node": {"a": [True, None, 1.5e300]}, "x": "\u00e9"})
    seeds["duplicate-status"] = b'{"status":"success","status":"error"}'
    seeds["duplicate-extra"] = b'{"status":"success","a":1,"a":2}'
    seeds["no-status"] = b'{"task_id":"t","result":{}}'
    return seeds


def engine_answer(v):
    seeds = {}
    completion = chat_completion(v, "hi \u00e9")
    seeds["chat"] = dumps(completion)
    seeds["chat-pretty"] = json.dumps(completion, indent=2, ensure_ascii=True).encode() + b"\n"
    seeds["embedding"] = dumps({"object": "list", "model": "m", "usage": {"total_tokens": 2},
                                "data": [{"object": "embedding", "index": 0,
                                          "embedding": [0.5, -1e-3, 1e300]}]})
    seeds["wrapped"] = dumps({"result": completion, "status": "success"})
    seeds["surrogates"] = b'{"model":"\\ud83d","c":"\\ud83d\\ude00","usage":{"total_tokens":-1}}'
    seeds["odd-fields"] = b'{"model":7,"usage":{"total_tokens":2.0},"model":"m","x":[[],{}]}'
    seeds["not-object"] = b'["a",1]'
    return seeds


TARGETS = {
    "task_envelope": task_envelope,
    "directory_lifecycle": directory_lifecycle,
    "discover_answer": discover_answer,
    "cx_envelope": cx_envelope,
    "consumer_token": consumer_token,
    "relay_bind": relay_bind,
    "gossip": gossip,
    "task_answer": task_answer,
    "engine_answer": engine_answer,
}


def main():
    vectors = Path(sys.argv[1]) if len(sys.argv) > 1 else FUZZ.parent.parent / "shared" / "vectors"
    if not vectors.is_dir():
        sys.exit(f"no vectors at {vectors}")
    for target, make in TARGETS.items():
        out = CORPUS / target
        out.mkdir(parents=True, exist_ok=True)
        seeds = make(vectors)
        for name, data in seeds.items():
            (out / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
