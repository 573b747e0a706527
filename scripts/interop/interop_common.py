"""Shared by the long-running interop helpers (py_node.py, py_mesh_node.py, py_relay.py,
py_relay_worker.py): their JSON-line output, a free loopback port, and the tail every
one of them ends with, serving until SIGTERM or SIGINT.

The helpers are run by path (`python scripts/interop/py_node.py ...`), so Python puts
this directory first on sys.path and `from interop_common import ...` finds this file.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from typing import Any, Awaitable, Callable, Coroutine, Optional

CHAT_INTENT = "urn:iicp:intent:llm:chat:v1"

_SECRET_KEYS = {"node_token", "token", "node_hmac_key", "current_node_token", "proxy_token"}


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in _SECRET_KEYS and v else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout; tokens and the HMAC key are replaced by "***"."""
    sys.stdout.write(json.dumps(_redact(obj), sort_keys=True) + "\n")
    sys.stdout.flush()


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def serve_until_signal(
    serving: Coroutine[Any, Any, Any],
    listening: dict[str, Any],
    ready: Optional[Callable[[], Awaitable[None]]] = None,
) -> int:
    """Runs `serving` (the node's `serve(...)`) until SIGTERM or SIGINT.

    Either signal cancels the serve task, so the SDK's own shutdown path (which
    deregisters a registered node) runs on SIGTERM as it does on SIGINT. Once `ready`
    (when given) has returned, `listening` is emitted as `{"event": "listening", ...}`;
    `{"event": "stopped"}` follows the shutdown. Returns the exit code, 0.
    """
    serve = asyncio.create_task(serving)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, serve.cancel)
    if ready is not None:
        await ready()
    emit({"event": "listening", **listening})
    try:
        await serve
    except asyncio.CancelledError:
        pass
    emit({"event": "stopped"})
    return 0
