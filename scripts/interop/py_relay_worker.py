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

import asyncio
import sys

from iicp_client.node import IicpNode

from interop_common import free_port
from py_node import (
    echo_node_arguments,
    echo_node_config,
    log_directory_exchanges,
    register_and_serve,
)


async def main() -> int:
    ap = echo_node_arguments()
    ap.add_argument("--relay", required=True, help="host:port of the relay's accept port")
    args = ap.parse_args()

    port = free_port(args.host)
    config = echo_node_config(args, port, relay_worker_endpoint=args.relay)
    node = IicpNode(config)
    log_directory_exchanges(node)
    return await register_and_serve(node, config, args.host, port)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
