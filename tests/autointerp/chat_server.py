"""A real HTTP server speaking the chat-completions protocol, with scripted answers.

It stands in for an external LLM service (vLLM, Ollama, OpenAI): the explainer's ``openai``
client talks to it over loopback exactly as it would to those. ``script`` turns each request's
messages into an answer: a string, or a list of (token, {alternative: logprob}) pieces when the
answer should carry logprobs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Pieces = list[tuple[str, dict[str, float]]]
Script = Callable[[list[dict[str, str]]], "str | Pieces"]

PROMPT_TOKENS = 100
COMPLETION_TOKENS = 10


@dataclass
class ChatServer:
    script: Script
    api_key: str = "right-key"
    fail_first: int = 0  # answer HTTP 500 to this many requests first
    delay_s: float = 0.0  # how long each answer takes
    refuse_after: int | None = None  # answer HTTP 401 once this many requests were answered
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        if handler.path != "/v1/chat/completions":
            return 404, {"error": {"message": "no such route", "type": "not_found"}}
        refused = self.refuse_after is not None and len(self.requests) >= self.refuse_after
        if refused or handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Incorrect API key", "type": "invalid_api_key"}}
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self._lock:
            self.requests.append(body)
            failing = len(self.requests) <= self.fail_first
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if failing:
                return 500, {"error": {"message": "overloaded", "type": "server_error"}}
            return 200, self._completion(body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.script(body["messages"])
        pieces = answer if isinstance(answer, list) else None
        text = "".join(t for t, _ in pieces) if pieces is not None else str(answer)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if pieces is not None and body.get("logprobs"):
            choice["logprobs"] = {
                "content": [
                    {
                        "token": token,
                        "logprob": alternatives.get(token, 0.0),
                        "bytes": None,
                        "top_logprobs": [
                            {"token": a, "logprob": lp, "bytes": None}
                            for a, lp in alternatives.items()
                        ],
                    }
                    for token, alternatives in pieces
                ]
            }
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }


@contextmanager
def serve(server: ChatServer) -> Iterator[ChatServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status, payload = server.handle(self)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
