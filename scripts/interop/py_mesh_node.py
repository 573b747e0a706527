"""Interop helper: the Python SDK's IicpNode (iicp-client==0.7.109) with its mesh
gossip on (NodeConfig.enable_mesh), against a directory.

Used by tests/interop_python_mesh.rs; talks only to the directory URL it is given
and to the peers that directory lists (loopback ones in the tests). Reuses
py_node.py's handler and output: one JSON line per event on stdout, the first being
{"event": "listening", "node_id": ..., "endpoint": ...}.

Test-only adjustments, all inside this process:
  * the heartbeat interval (30 s) is lowered to --heartbeat-secs and the gossip
    interval (30 s, peer_manager._GOSSIP_INTERVAL_S) to --gossip-secs;
  * --gossip-key sets the key the SDK's PeerManager signs and checks exchanges
    with. The SDK takes it from NodeConfig.node_hmac_key, which it also uses
    for the directory's heartbeat challenge; setting it there would make a
    directory that issues its own key refuse the heartbeats, so only the
    PeerManager gets it (a fleet sharing one gossip key).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import iicp_client.node as sdk_node
import iicp_client.peer_manager as sdk_peers
from iicp_client.node import IicpNode, NodeConfig

from interop_common import CHAT_INTENT, free_port, serve_until_signal
from py_node import handler


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--directory-url", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--node-id", default="")
    ap.add_argument("--heartbeat-secs", type=float, default=1.0)
    ap.add_argument("--gossip-secs", type=float, default=1.0)
    ap.add_argument("--gossip-key", default="")
    args = ap.parse_args()

    sdk_node._HEARTBEAT_INTERVAL = args.heartbeat_secs  # type: ignore[attr-defined]
    sdk_peers._GOSSIP_INTERVAL_S = args.gossip_secs  # type: ignore[attr-defined]
    port = free_port(args.host)
    node_id = args.node_id or str(uuid.uuid4())
    endpoint = f"http://{args.host}:{port}"
    node = IicpNode(
        NodeConfig(
            node_id=node_id,
            endpoint=endpoint,
            intent=CHAT_INTENT,
            model="py-echo",
            region="local",
            directory_url=args.directory_url,
            max_concurrent=2,
            enable_mesh=True,
        )
    )
    node._peer_manager._node_token = args.gossip_key  # noqa: SLF001

    token = await node.register()
    return await serve_until_signal(
        node.serve(handler, host=args.host, port=port, node_token=token),
        {"node_id": node_id, "endpoint": endpoint},
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
