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
import sys
import uuid
from typing import Any

from iicp_client.node import IicpNode, NodeConfig

from interop_common import CHAT_INTENT, free_port, serve_until_signal


async def handler(task: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"answer": "python relay's own answer"}}


async def accepting(host: str, port: int) -> None:
    """Returns once `host:port` takes connections (the accept server starts inside
    serve()), or after about 10 s."""
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)


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
    return await serve_until_signal(
        node.serve(handler, host=args.host, port=http_port),
        {"http_port": http_port, "relay_port": relay_port},
        ready=lambda: accepting(args.host, relay_port),
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
