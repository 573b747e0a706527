"""The official OpenAI Python SDK (openai==3.57.0, unchanged) against `iicp-node proxy`.

Used by tests/proxy_sdk_openai.rs, which starts a local mesh and the proxy. The client is
`OpenAI(base_url=<proxy>/v1, api_key="unused")`: nothing else differs from code written for
OpenAI's own API.

  --mode echo   the node runs the echo demo backend (chat only, model `echo`): models list,
                chat plain and streamed (with usage), a model no node serves.
  --mode llama  nodes in front of the real llama.cpp server (--model names its model): chat
                plain and streamed, a text completion, embeddings as base64 (the SDK's default)
                and as floats.

Prints one JSON object on stdout with what it saw; the Rust test asserts on it. Any
exception the SDK raises where a call should succeed ends the script with status 1 and
the reason on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
from typing import Any

import openai
from openai import OpenAI


def f32(x: float) -> float:
    """x rounded to a 32-bit float, as the proxy holds vectors."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def chat_plain(client: OpenAI, model: str, text: str, **kw: Any) -> dict[str, Any]:
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )
    return {
        "text": r.choices[0].message.content,
        "finish_reason": r.choices[0].finish_reason,
        "model": r.model,
        "id": r.id,
        "usage": r.usage.model_dump() if r.usage else None,
    }


def chat_streamed(client: OpenAI, model: str, text: str, **kw: Any) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
        **kw,
    )
    pieces: list[str] = []
    finish_reasons: list[str] = []
    ids: set[str] = set()
    usage = None
    chunks = 0
    for chunk in stream:
        chunks += 1
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    return {
        "text": "".join(pieces),
        "content_chunks": len(pieces),
        "chunks": chunks,
        "finish_reasons": finish_reasons,
        "ids": len(ids),
        "usage": usage,
    }


def error_of(call: Any) -> dict[str, Any]:
    """The SDK exception a call raises: its class, status and OpenAI error code."""
    try:
        call()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {
            "class": type(e).__name__,
            "status": e.status_code,
            "code": body.get("code"),
            "not_found": isinstance(e, openai.NotFoundError),
        }
    return {"class": None}


def embeddings(client: OpenAI, model: str) -> dict[str, Any]:
    inputs = ["a cat", "a dog", "a bird"]
    # Default encoding: the SDK asks for base64 and decodes it itself.
    raw = client.embeddings.with_raw_response.create(model=model, input=inputs)
    asked = json.loads(raw.http_request.content)
    wire = raw.http_response.json()
    default = raw.parse()
    default_vectors = [d.embedding for d in default.data]
    # What came over the wire, decoded here as little-endian f32.
    wire_vectors = []
    for d in wire["data"]:
        blob = base64.b64decode(d["embedding"])
        wire_vectors.append(list(struct.unpack(f"<{len(blob) // 4}f", blob)))
    floats = client.embeddings.create(model=model, input=inputs, encoding_format="float")
    float_vectors = [d.embedding for d in floats.data]
    one = client.embeddings.create(model=model, input="a cat")
    return {
        "asked_encoding": asked.get("encoding_format"),
        "wire_is_base64": all(isinstance(d["embedding"], str) for d in wire["data"]),
        "default_count": len(default_vectors),
        "default_widths": [len(v) for v in default_vectors],
        "default_indexes": [d.index for d in default.data],
        "default_equals_wire": default_vectors == wire_vectors,
        "float_count": len(float_vectors),
        "float_widths": [len(v) for v in float_vectors],
        "float_equals_base64": [[f32(x) for x in v] for v in float_vectors] == default_vectors,
        "distinct": len({tuple(v) for v in default_vectors}),
        "single_count": len(one.data),
        "single_width": len(one.data[0].embedding),
        # llama.cpp computes a batch of one a little differently from a batch of three.
        "single_vs_first_max_diff": max(
            abs(x - y) for x, y in zip(one.data[0].embedding, default_vectors[0])
        ),
        "model": default.model,
        "usage": default.usage.model_dump() if default.usage else None,
    }


def run_echo(client: OpenAI) -> dict[str, Any]:
    plain = chat_plain(client, "echo", "hello from the openai sdk")
    streamed = chat_streamed(client, "echo", "hello from the openai sdk")
    return {
        "models": [m.id for m in client.models.list()],
        "retrieved": client.models.retrieve("echo").id,
        "retrieve_unknown": error_of(lambda: client.models.retrieve("gpt-9-nobody-serves-it")),
        "plain": plain,
        "streamed": streamed,
        "unknown_model": error_of(
            lambda: client.chat.completions.create(
                model="gpt-9-nobody-serves-it", messages=[{"role": "user", "content": "hi"}]
            )
        ),
        "unknown_model_streamed": error_of(
            lambda: client.chat.completions.create(
                model="gpt-9-nobody-serves-it",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
        ),
        "bad_request": error_of(
            lambda: client.chat.completions.create(model="echo", messages=[])
        ),
    }


def run_llama(client: OpenAI, model: str) -> dict[str, Any]:
    # Greedy decoding with a fixed seed: the same tokens whether streamed or not. The node
    # groups text arriving within 25 ms into one chunk; 200 tokens take long enough to
    # come as several (24 come as one on an idle machine).
    same = {"max_tokens": 200, "temperature": 0, "seed": 7}
    plain = chat_plain(client, model, "tell me a story", **same)
    streamed = chat_streamed(client, model, "tell me a story", **same)
    text = client.completions.create(model=model, prompt="Once upon", max_tokens=5, temperature=0)
    return {
        "models": [m.id for m in client.models.list()],
        "plain": plain,
        "streamed": streamed,
        "completion": {
            "text": text.choices[0].text,
            "finish_reason": text.choices[0].finish_reason,
            "object": text.object,
            "usage": text.usage.model_dump() if text.usage else None,
        },
        "embeddings": embeddings(client, model),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True, help="the proxy's OpenAI base URL (…/v1)")
    ap.add_argument("--mode", choices=["echo", "llama"], required=True)
    ap.add_argument("--model", default="tiny-random-llama")
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="unused")
    try:
        out = run_echo(client) if args.mode == "echo" else run_llama(client, args.model)
    except Exception as e:  # noqa: BLE001 - the reason goes to the Rust test
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    out["sdk_version"] = openai.__version__
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
