"""Interop helper: the Python SDK's IicpNode (iicp-client==0.7.109) as a RELAY WORKER.

Used by tests/interop_python_relay.rs. The node registers with the given directory,
serves with `relay_worker_endpoint=<relay host:port>` (the SDK's own relay-worker path,
the one `iicp-node`'s Python counterpart `python -m iicp_client.cli serve
--relay-worker-endpoint host:port` takes), binds at our relay and re-registers with
`endpoint = http://relay:port/v1/relay-for/<node_id>`. It answers chats with
"python echo: <last user message>" (py_node.py's handler) and prints the same JSON
lines as py_node.py (`listening`, `directory`, `task`, `stopped`). It talks only to
the loopback directory and relay it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import iicp_client.node as sdk_node
from iicp_client.node import IicpNode, NodeConfig

from interop_common import CHAT_INTENT, free_port, serve_until_signal
from py_node import _log_response, handler


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--directory-url", required=True)
    ap.add_argument("--relay", required=True, help="host:port of the relay's accept port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--heartbeat-secs", type=float, default=1.0)
    args = ap.parse_args()

    sdk_node._HEARTBEAT_INTERVAL = args.heartbeat_secs  # type: ignore[attr-defined]
    port = free_port(args.host)
    node_id = str(uuid.uuid4())
    node = IicpNode(
        NodeConfig(
            node_id=node_id,
            endpoint=f"http://{args.host}:{port}",
            intent=CHAT_INTENT,
            model="py-echo",
            region="local",
            directory_url=args.directory_url,
            max_concurrent=2,
            relay_worker_endpoint=args.relay,
        )
    )
    node._http.event_hooks["response"].append(_log_response)  # noqa: SLF001

    token = await node.register()
    return await serve_until_signal(
        node.serve(handler, host=args.host, port=port, node_token=token),
        {"node_id": node_id, "endpoint": f"http://{args.host}:{port}"},
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
