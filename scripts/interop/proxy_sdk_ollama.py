"""The official `ollama` Python package (scripts/interop/proxy-sdk-requirements.txt)
against `iicp-node proxy`, used by tests/proxy_sdk_ollama.rs.

The package is used unchanged: only the host differs (`ollama.Client(host=BASE)`).
The mesh behind the proxy has the echo node (model `echo`, answers `echo: <last user
message>`).

Prints one JSON object on stdout with what each call returned:
  chat, chat_stream (the pieces reassembled, their count, the last piece's fields),
  generate, generate_stream, models (the names list() returned), missing (the
  ResponseError of a model no node serves: status and message), missing_stream.
Exits non-zero with the reason on stderr when a call fails unexpectedly.
"""

from __future__ import annotations

import argparse
import json
import sys

import ollama


def last_fields(part) -> dict:
    return {
        "done": part.done,
        "done_reason": part.done_reason,
        "eval_count": part.eval_count,
        "prompt_eval_count": part.prompt_eval_count,
        "total_duration": part.total_duration,
        "created_at": part.created_at,
        "model": part.model,
    }


def error_of(call) -> dict:
    try:
        result = call()
        # A stream raises when it is read.
        if not isinstance(result, ollama.ChatResponse):
            for _ in result:
                pass
    except ollama.ResponseError as e:
        return {"status": e.status_code, "error": e.error, "type": type(e).__name__}
    return {"status": None, "error": "no error raised"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    client = ollama.Client(host=args.base_url)
    messages = [{"role": "user", "content": "hello from the ollama package"}]
    out: dict = {}

    reply = client.chat(model="echo", messages=messages)
    out["chat"] = {"content": reply.message.content, "role": reply.message.role,
                   **last_fields(reply)}

    pieces = list(client.chat(model="echo", messages=messages, stream=True))
    out["chat_stream"] = {
        "content": "".join(p.message.content or "" for p in pieces),
        "pieces": len(pieces),
        "done_flags": [p.done for p in pieces],
        **last_fields(pieces[-1]),
    }

    gen = client.generate(model="echo", prompt="why is the sky blue", system="be brief")
    out["generate"] = {"response": gen.response, **last_fields(gen)}

    pieces = list(client.generate(model="echo", prompt="stream this", stream=True))
    out["generate_stream"] = {
        "response": "".join(p.response or "" for p in pieces),
        "pieces": len(pieces),
        **last_fields(pieces[-1]),
    }

    out["models"] = [m.model for m in client.list().models]

    out["missing"] = error_of(
        lambda: client.chat(model="no-node-serves-this", messages=messages))
    out["missing_stream"] = error_of(
        lambda: client.chat(model="no-node-serves-this", messages=messages, stream=True))

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # the reason, for the Rust side's assertion message
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
