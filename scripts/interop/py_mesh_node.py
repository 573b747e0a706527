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

import asyncio
import sys

import iicp_client.peer_manager as sdk_peers
from iicp_client.node import IicpNode

from interop_common import free_port
from py_node import echo_node_arguments, echo_node_config, register_and_serve


async def main() -> int:
    ap = echo_node_arguments()
    ap.add_argument("--gossip-secs", type=float, default=1.0)
    ap.add_argument("--gossip-key", default="")
    args = ap.parse_args()

    sdk_peers._GOSSIP_INTERVAL_S = args.gossip_secs  # type: ignore[attr-defined]
    port = free_port(args.host)
    config = echo_node_config(args, port, enable_mesh=True)
    node = IicpNode(config)
    node._peer_manager._node_token = args.gossip_key  # noqa: SLF001
    return await register_and_serve(node, config, args.host, port)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
