"""Interop helper: run the Python SDK's relay (iicp-client==0.7.109), the node the
SDK starts for `iicp-node serve --relay-capable`: `IicpNode.serve()` with
`relay_capable=True` opens the relay accept port beside the HTTP port, and the
HTTP port serves `/v1/relay-for/<worker_id>/…` for bound workers.

Used by tests/interop_python_relay_worker.rs; it does not register anywhere
(`--skip-registration` in CLI terms: no node token, so no heartbeat). Its own
handler answers "python relay's own answer" so a test can tell it apart from
the worker's.

It prints one JSON object per line on stdout:
  {"event": "listening", "http_port": ..., "relay_port": ...}
  {"event": "stopped"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import uuid
from typing import Any

from iicp_client.node import IicpNode, NodeConfig

CHAT_INTENT = "urn:iicp:intent:llm:chat:v1"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def handler(task: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"answer": "python relay's own answer"}}


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()

    http_port = free_port(args.host)
    relay_port = free_port(args.host)
    node = IicpNode(
        NodeConfig(
            node_id=str(uuid.uuid4()),
            endpoint=f"http://{args.host}:{http_port}",
            intent=CHAT_INTENT,
            model="py-relay",
            region="local",
            directory_url="http://127.0.0.1:9/unused",
            relay_capable=True,
            relay_accept_port=relay_port,
        )
    )
    serve = asyncio.create_task(node.serve(handler, host=args.host, port=http_port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, serve.cancel)
    # The accept server starts inside serve(); wait until it listens.
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(args.host, relay_port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    emit({"event": "listening", "http_port": http_port, "relay_port": relay_port})
    try:
        await serve
    except asyncio.CancelledError:
        pass
    emit({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
