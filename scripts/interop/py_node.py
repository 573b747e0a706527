"""Interop helper: run the Python SDK's IicpNode (iicp-client==0.7.109) against a directory.

Used by tests/interop_python.rs; never talks to anything but the directory URL it is
given (a loopback one in the tests). The node serves the chat intent with a tiny
handler that answers "python echo: <last user message>".

It prints one JSON object per line on stdout:
  {"event": "listening", "node_id": ..., "endpoint": ...}
  {"event": "directory", "method": ..., "path": ..., "request": {...}, "status": ..., "response": {...}}
  {"event": "task", "request": {...}}
  {"event": "stopped"}
so the Rust test can see every directory exchange (register, heartbeats with
challenge_response, the registry check, deregister) and the task envelope.

Test-only adjustments, all inside this process:
  * the heartbeat interval (a module constant of 30 s) is lowered to --heartbeat-secs;
  * SIGTERM is turned into a cancellation of serve() so the SDK's own shutdown path
    (which deregisters) runs, as it does on SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any
from urllib.parse import urlparse

import httpx

import iicp_client.node as sdk_node
from iicp_client.node import IicpNode, NodeConfig

from interop_common import CHAT_INTENT, emit, free_port, serve_until_signal


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


async def _log_response(resp: httpx.Response) -> None:
    await resp.aread()
    req = resp.request
    emit(
        {
            "event": "directory",
            "method": req.method,
            "path": urlparse(str(req.url)).path,
            "query": urlparse(str(req.url)).query,
            "authorization": "bearer" if req.headers.get("authorization", "").startswith("Bearer ") else None,
            "request": _json_or_text(req.content),
            "status": resp.status_code,
            "response": _json_or_text(resp.content),
        }
    )


async def handler(task: dict[str, Any]) -> dict[str, Any]:
    emit({"event": "task", "request": {k: v for k, v in task.items() if not k.startswith("_")}})
    messages = (task.get("payload") or {}).get("messages") or []
    text = messages[-1].get("content", "") if messages else ""
    content = f"python echo: {text}"
    return {
        "result": {
            "model": "py-echo",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(text.split()),
                "completion_tokens": len(content.split()),
                "total_tokens": len(text.split()) + len(content.split()),
            },
        }
    }


def echo_node_arguments() -> argparse.ArgumentParser:
    """The arguments of every echo-node helper (py_node.py, py_mesh_node.py,
    py_relay_worker.py); each adds its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--directory-url", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--node-id", default="")
    ap.add_argument("--heartbeat-secs", type=float, default=1.0)
    return ap


def echo_node_config(args: argparse.Namespace, port: int, **extra: Any) -> NodeConfig:
    """The configuration of a node on `args.host:port` serving the chat intent as
    model "py-echo" (answered by `handler`) and registering with
    `args.directory_url`; `extra` adds NodeConfig fields. Lowers the SDK's heartbeat
    interval to `args.heartbeat_secs`."""
    sdk_node._HEARTBEAT_INTERVAL = args.heartbeat_secs  # type: ignore[attr-defined]
    return NodeConfig(
        node_id=args.node_id or str(uuid.uuid4()),
        endpoint=f"http://{args.host}:{port}",
        intent=CHAT_INTENT,
        model="py-echo",
        region="local",
        directory_url=args.directory_url,
        max_concurrent=2,
        **extra,
    )


async def register_and_serve(node: IicpNode, config: NodeConfig, host: str, port: int) -> int:
    """Registers `node`, then serves `handler` until SIGTERM or SIGINT (see
    interop_common.serve_until_signal), announcing its id and endpoint."""
    token = await node.register()
    return await serve_until_signal(
        node.serve(handler, host=host, port=port, node_token=token),
        {"node_id": config.node_id, "endpoint": config.endpoint},
    )


def log_directory_exchanges(node: IicpNode) -> None:
    """Emits every directory exchange the SDK makes (register, heartbeat, registry
    check, deregister) as a `directory` line, without changing them."""
    node._http.event_hooks["response"].append(_log_response)  # noqa: SLF001


async def main() -> int:
    ap = echo_node_arguments()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    port = args.port or free_port(args.host)
    config = echo_node_config(args, port)
    node = IicpNode(config)
    log_directory_exchanges(node)
    return await register_and_serve(node, config, args.host, port)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
