#!/usr/bin/env python3
"""A fixed-answer model server for the relay lab: the LAN's own "model".

It speaks just enough of the OpenAI API for `iicp-node serve --backend-type
openai_compat`: GET /v1/models lists one model, POST /v1/chat/completions
answers "from the LAN model: <last user message>". It is not a model; it
lets a test tell the LAN's answer from any other node's.

Usage: lab_model.py <port> [model]   (listens on 127.0.0.1)
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
MODEL = sys.argv[2] if len(sys.argv) > 2 else "lan-model"


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, {"error": {"message": "bad json"}})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "not found"}})
        last = next(
            (m.get("content", "") for m in reversed(req.get("messages", [])) if m.get("role") == "user"),
            "",
        )
        content = f"from the LAN model: {last}"
        self._send(200, {
            "id": "chatcmpl-lan",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
