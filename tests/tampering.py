"""A proxy in front of the real simulator that breaks chosen answers: the simulator keeps the contract, so a
vendor (or a proxy in front of it) that breaks it is played by rewriting the simulator's real answers. The
vendor task behind a broken answer really exists and dials; only what comes back is changed."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

import requests

# (method, path without the query, the envelope's data) -> the data to answer instead, or None to pass it on
Tamper = Callable[[str, str, Any], Any]


class LocalServer:
    """An HTTP server on a free local port, serving a handler class in a daemon thread until `close()`."""

    def _serve(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()


class TamperingProxy(LocalServer):
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tamper: Tamper | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                answer = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=30
                )
                content = answer.content
                envelope = (
                    answer.json()
                    if answer.headers.get("content-type", "").startswith("application/json")
                    else None
                )
                if proxy.tamper is not None and isinstance(envelope, dict) and envelope.get("code") == 0:
                    changed = proxy.tamper(self.command, self.path.split("?")[0], envelope["data"])
                    if changed is not None:
                        content = json.dumps({**envelope, "data": changed}).encode()
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self._serve(Handler)
