"""Interop helper: one chat through the Python SDK's IicpClient (iicp-client==0.7.109).

Used by tests/interop_python.rs against a loopback directory and node only.

Test-only adjustments, all inside this process:
  * IICP_PROXY_ALLOW_LOOPBACK_NODES=1 (set if absent); no plaintext override: the client
    encrypts to our node's advertised CX key with its default settings;
  * `iicp_client.client._is_ssrf_safe` also admits http://127.0.0.1 endpoints (the SDK
    drops every loopback node from discovery otherwise);
  * the SDK's get_json/post_json helpers are wrapped to record what it sends.

--node-token sets ClientConfig.node_token: the SDK then fetches consumer tokens from the
directory (its own httpx call, not recorded) for nodes in token mode.

Prints one JSON object per line on stdout:
  {"event": "http", "method": ..., "url": ..., "request": {...}, "response": {...}}
  {"event": "reply", "content": ..., "node_id": ..., "model": ..., "usage": {...}}
or {"event": "error", "error": ...} (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any
from urllib.parse import urlparse

os.environ.setdefault("IICP_PROXY_ALLOW_LOOPBACK_NODES", "1")

import iicp_client.client as sdk_client  # noqa: E402
from iicp_client import IicpClient  # noqa: E402
from iicp_client.types import ChatMessage, ChatOptions, ClientConfig  # noqa: E402


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


_sdk_is_ssrf_safe = sdk_client._is_ssrf_safe  # noqa: SLF001


def _loopback_ok(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "http" and parsed.hostname == "127.0.0.1":
        return True
    return _sdk_is_ssrf_safe(url)


sdk_client._is_ssrf_safe = _loopback_ok  # noqa: SLF001

_sdk_get_json = sdk_client.get_json
_sdk_post_json = sdk_client.post_json


async def _get_json(url: str, *args: Any, **kwargs: Any) -> Any:
    out = await _sdk_get_json(url, *args, **kwargs)
    emit({"event": "http", "method": "GET", "url": url, "params": kwargs.get("params")})
    return out


async def _post_json(url: str, body: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    emit({"event": "http", "method": "POST", "url": url, "request": body})
    raw, elapsed = await _sdk_post_json(url, body, *args, **kwargs)
    emit({"event": "http", "method": "POST", "url": url, "response": raw})
    return raw, elapsed


sdk_client.get_json = _get_json
sdk_client.post_json = _post_json


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--directory-url", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--timeout-ms", type=int, default=20_000)
    ap.add_argument("--node-token", default=None, help="the consumer's own node token (consumer tokens)")
    args = ap.parse_args()

    client = IicpClient(
        ClientConfig(directory_url=args.directory_url, timeout_ms=args.timeout_ms, node_token=args.node_token)
    )
    try:
        reply = client.chat(
            [ChatMessage(role="user", content=args.text)],
            ChatOptions(timeout_ms=args.timeout_ms),
        )
    except Exception as exc:  # noqa: BLE001 — report any failure to the Rust test
        emit({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    content = reply.choices[0].message.content if reply.choices else None
    emit(
        {
            "event": "reply",
            "content": content,
            "node_id": reply.iicp_node_id,
            "model": reply.model,
            "usage": {
                "prompt_tokens": reply.usage.prompt_tokens,
                "completion_tokens": reply.usage.completion_tokens,
                "total_tokens": reply.usage.total_tokens,
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
