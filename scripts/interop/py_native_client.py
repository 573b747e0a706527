"""Interop helper: the Python SDK's native client (IicpTcpClient, iicp-client[iicp-tcp]==0.7.109)
against a node's port on loopback. Used by tests/interop_python.rs only.

Usage: py_native_client.py HOST PORT [--stream TASK_ID] [--intent URN] [--text TEXT]

Connects, handshakes, pings, calls the chat intent once with one user message, asks DISCOVER,
and with --stream runs one stream_call. Prints one JSON object per line on stdout:
  {"event": "handshake"} / {"event": "ping", "echo": "<hex>"} / {"event": "call", "result": ...}
  {"event": "discover", "nodes": [...]} / {"event": "stream", "item": ...} ...
or {"event": "error", "step": ..., "error": ...} (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from iicp_client.iicp_tcp import IicpTcpClient


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> int:
    client = IicpTcpClient(args.host, args.port, timeout_s=10.0)
    step = "connect"
    try:
        await client.connect()
        step = "handshake"
        await client.handshake()
        emit({"event": "handshake"})
        step = "ping"
        echo = await client.ping(b"interop")
        emit({"event": "ping", "echo": (echo or b"").hex()})
        payload = {"messages": [{"role": "user", "content": args.text}]}
        step = "call"
        result = await client.call(args.intent, payload)
        emit({"event": "call", "result": result})
        step = "discover"
        nodes = await client.discover(args.intent)
        emit({"event": "discover", "nodes": nodes})
        if args.stream:
            step = "stream"
            async for item in client.stream_call(args.intent, payload, task_id=args.stream):
                emit({"event": "stream", "item": item})
        step = "close"
        await client.close()
    except Exception as e:  # noqa: BLE001 - reported to the test
        emit({"event": "error", "step": step, "error": f"{type(e).__name__}: {e}"})
        return 1
    return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--intent", default="urn:iicp:intent:llm:chat:v1")
    p.add_argument("--text", default="hello over iicp-tcp")
    p.add_argument("--stream", default=None, help="task id for one stream_call")
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
