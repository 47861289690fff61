"""Real HTTP webhook receivers on 127.0.0.1 that verify Standard Webhooks signatures.

``Receiver(secret, behaviour)`` runs a ``ThreadingHTTPServer`` in a thread. Every request
is verified with ``standardwebhooks.Webhook(secret).verify``; bad signatures get 401 and
are counted in ``.forged``. Behaviours: ``fail_first`` (answer 500 to the first N
requests), ``hang_first`` (sleep ``hang`` seconds before answering the first N requests),
``delay`` (seconds per request). ``Receiver.reserve()`` picks a port with nothing listening
yet (a receiver that is "down at first" and started later with ``start()``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class Receiver:
    def __init__(self, secret: str, *, port: int = 0, fail_first: int = 0, hang_first: int = 0,
                 hang: float = 3.0, delay: float = 0.0) -> None:
        self.secret = secret
        self.port = port
        self.fail_first = fail_first
        self.hang_first = hang_first
        self.hang = hang
        self.delay = delay
        self.requests = 0
        self.accepted: list[tuple[str, dict[str, Any]]] = []  # (webhook-id, CloudEvent)
        self.forged = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self._stop_hang = threading.Event()

    @staticmethod
    def reserve() -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hotline/hook?team=muon"

    def ids(self) -> list[str]:
        with self.lock:
            return [i for i, _ in self.accepted]

    def alert_ids(self) -> set[str]:
        """Alert ids inside accepted notifications (single or grouped)."""
        out = set()
        with self.lock:
            for _, ev in self.accepted:
                data = ev["data"]
                if "alerts" in data:
                    out.update(a["id"] for a in data["alerts"])
                else:
                    out.add(data["id"])
        return out

    def start(self) -> Receiver:
        rec = self
        wh = Webhook(self.secret)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with rec.lock:
                    rec.requests += 1
                    n = rec.requests
                if n <= rec.hang_first:
                    rec._stop_hang.wait(rec.hang)
                if rec.delay:
                    time.sleep(rec.delay)
                if n <= rec.fail_first:
                    return self._reply(500)
                try:
                    event = wh.verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    with rec.lock:
                        rec.forged += 1
                    return self._reply(401)
                assert event["id"] == self.headers["webhook-id"]
                with rec.lock:
                    rec.accepted.append((self.headers["webhook-id"], event))
                self._reply(200)

            def _reply(self, code: int) -> None:
                payload = json.dumps({"status": code}).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop_hang.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def wait_for(cond: Any, timeout: float = 20.0, every: float = 0.05) -> bool:
    """Poll ``cond()`` until true or ``timeout``; returns the last value."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())
