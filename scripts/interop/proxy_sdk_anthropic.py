"""The official `anthropic` package, unchanged, against `iicp-node proxy`.

Used by tests/proxy_sdk_anthropic.rs. Only the base URL and a dummy API key
differ from code written for Anthropic's API. Runs:
  * `client.messages.create(...)` (a plain answer);
  * `client.messages.stream(...)` (the text reassembled from the events, and
    the final message);
  * one error: a model no node serves (expects `anthropic.NotFoundError`).

Prints one JSON line with the results, or exits non-zero with the reason on
stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

import anthropic


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--prompt", default="hello from the anthropic sdk")
    parser.add_argument("--missing-model", default="claude-no-such-model")
    args = parser.parse_args()

    client = anthropic.Anthropic(base_url=args.base_url, api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": args.prompt}]

    plain = client.messages.create(model="auto", max_tokens=64, messages=messages)

    event_types = []
    with client.messages.stream(model="auto", max_tokens=64, messages=messages) as stream:
        for event in stream:
            event_types.append(event.type)
        final = stream.get_final_message()
    with client.messages.stream(model="auto", max_tokens=64, messages=messages) as stream:
        texts = list(stream.text_stream)

    try:
        client.messages.create(model=args.missing_model, max_tokens=8, messages=messages)
        error = {"raised": None}
    except anthropic.NotFoundError as e:
        body = e.body if isinstance(e.body, dict) else {}
        error = {"raised": "NotFoundError", "status": e.status_code, "type": body.get("error", {}).get("type")}
    except anthropic.APIError as e:
        error = {"raised": type(e).__name__, "message": str(e)}

    print(
        json.dumps(
            {
                "plain": {
                    "id": plain.id,
                    "type": plain.type,
                    "role": plain.role,
                    "model": plain.model,
                    "text": "".join(b.text for b in plain.content if b.type == "text"),
                    "stop_reason": plain.stop_reason,
                    "input_tokens": plain.usage.input_tokens,
                    "output_tokens": plain.usage.output_tokens,
                },
                "stream": {
                    "event_types": event_types,
                    "text_stream": "".join(texts),
                    "text_pieces": len(texts),
                    "final_text": "".join(b.text for b in final.content if b.type == "text"),
                    "final_stop_reason": final.stop_reason,
                    "final_output_tokens": final.usage.output_tokens,
                    "final_input_tokens": final.usage.input_tokens,
                },
                "error": error,
            },
            sort_keys=True,
        )
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - report any failure as the reason
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
