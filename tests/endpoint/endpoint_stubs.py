"""Stub OpenAI-compatible servers for the endpoint tests: ``http.server`` in a thread,
answering each POST with whatever a test's responder returns.

A module of its own (not conftest.py) so that tests import it by a name no other test
folder uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A responder's answer: (status, headers, body), or HANG to accept and never answer.
HANG = "hang"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON, str → as is
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StubServer:
    """A running stub: its base URL and the requests it received (JSON body, headers)."""

    base_url: str
    requests: list[dict[str, Any]]
    headers: list[dict[str, str]]


def completion(text: str | None, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    """A non-streamed chat completion body holding ``text``."""
    body = {
        "id": "stub",
        "object": "chat.completion",
        "model": "stub-model-2026",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
    }
    return body | ({"usage": usage} if usage else {})


def streamed(pieces: list[str], usage: dict | None = None) -> Reply:
    """The same answer as server-sent events, as transformers serve sends it."""
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}], "model": "m"}]
    events += [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({"choices": [], "usage": usage})
    body = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
    return Reply(200, body, {"Content-Type": "text/event-stream; charset=utf-8"})


@contextmanager
def stub_server(responder: Callable[[dict[str, Any], int], Reply | str]) -> Iterator[StubServer]:
    """Serve ``responder(request_body, request_index)`` on a free localhost port."""
    stop = threading.Event()
    received: list[dict[str, Any]] = []
    received_headers: list[dict[str, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                index = len(received)
                received.append(body)
                received_headers.append(dict(self.headers))
            reply = responder(body, index)
            if reply == HANG:
                stop.wait()  # until the stub is shut down; the client times out first
                return
            payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json"} | reply.headers
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload.encode())))
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield StubServer(f"http://127.0.0.1:{server.server_address[1]}", received, received_headers)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
