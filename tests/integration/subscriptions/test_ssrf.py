"""Server-side request forgery attempts against the real delivery worker, all refused.

Real receivers on 127.0.0.1 stand for internal services. A subscription that reached one
(the admin once allowed 127.0.0.1) is refused at send time as soon as the allow-list no
longer names it, whether its URL names the address or a DNS name resolving to it; a
receiver answering with a redirect to an internal address is never followed. Nothing
reaches the internal services and the notifications fail at once, visibly, with the reason.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hotline.alerts.access import SYSTEM
from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbound import set_allow_list
from hotline.alerts.outbox import delivery_log, install_outbox
from hotline.alerts.subscription_store import add_subscription
from hotline.alerts.subscriptions import new_secret
from tests.integration.subscriptions.receivers import wait_for
from tests.support.alerts import make_alerts

FAST = {"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 1.0, "give_up_after": 60,
        "storm_threshold": 1000}


class Redirector:
    """Answers every POST with 307 to ``location`` (counts what it got)."""

    def __init__(self, location: str) -> None:
        outer = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.hits += 1
                self.send_response(307)
                self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _deliver(store: Any, until: Any) -> None:
    w = DeliveryWorker(store, threads=4, poll=0.05)
    stop = threading.Event()
    t = threading.Thread(target=w.run, kwargs={"stop": stop})
    t.start()
    try:
        assert wait_for(until, 20)
    finally:
        stop.set()
        t.join(10)
        w.close()


def test_ssrf_attempts_are_refused_by_the_worker(store, receivers):
    install_outbox(store)
    internal = receivers(new_secret()).start()  # an internal service on loopback
    # the admin allowed loopback once: three subscriptions reach the internal service
    set_allow_list(store, SYSTEM, ["*", "127.0.0.1/32"])
    port = internal.port
    by_ip = add_subscription(store, owner="a", channel="webhook", secret=internal.secret,
                             settings={"url": f"http://127.0.0.1:{port}/admin"},
                             filter={"kinds": ["ae"]}, delivery=FAST)
    redirect = Redirector(f"http://127.0.0.1:{port}/admin")
    via_redirect = add_subscription(store, owner="c", channel="webhook",
                                    settings={"url": redirect.url},
                                    filter={"kinds": ["dqm"]}, delivery=FAST)
    set_allow_list(store, SYSTEM, ["*", "localhost", "127.0.0.1/32"])
    by_name = add_subscription(store, owner="b", channel="webhook", secret=internal.secret,
                               settings={"url": f"http://localhost:{port}/admin"},
                               filter={"kinds": ["classic"]}, delivery=FAST)
    # ... and narrows it again to public hosts: what was added before is refused at send time
    set_allow_list(store, SYSTEM, ["*"])
    alerts = make_alerts(60, seed=5)
    store.add_alerts(alerts)
    want = {s.id: sum(1 for a in alerts if a.kind == k)
            for s, k in ((by_ip, "ae"), (by_name, "classic"), (via_redirect, "dqm"))}
    assert all(n > 0 for n in want.values())

    def all_failed() -> bool:
        return all(sum(d.n_alerts for d in delivery_log(store, sid, limit=1000)
                       if d.status == "failed") == n for sid, n in want.items())

    _deliver(store, all_failed)
    assert internal.requests == 0 and redirect.hits == 0
    for sid in (by_ip.id, by_name.id, via_redirect.id):
        log = delivery_log(store, sid, limit=1000)
        assert all(d.status == "failed" and d.attempts == 1 for d in log)  # never retried
        assert all("refused by the outbound policy" in (d.last_error or "") for d in log)
    errors = {sid: delivery_log(store, sid, limit=1)[0].last_error
              for sid in (by_ip.id, by_name.id)}
    assert "127.0.0.1 is a private, loopback or link-local address" in errors[by_ip.id]
    assert "localhost resolves to 127.0.0.1" in errors[by_name.id]
    redirect.stop()


def test_redirects_to_internal_addresses_are_not_followed(store, receivers):
    install_outbox(store)
    internal = receivers(new_secret()).start()
    redirect = Redirector(f"http://127.0.0.1:{internal.port}/admin")
    # the redirector itself is allowed (an explicit CIDR entry); what it points to is not
    # followed in any case
    set_allow_list(store, SYSTEM, ["*", "127.0.0.1/32"])
    sub = add_subscription(store, owner="c", channel="webhook", settings={"url": redirect.url},
                           delivery=FAST)
    alerts = make_alerts(5, seed=6)
    store.add_alerts(alerts)
    _deliver(store, lambda: sum(d.n_alerts for d in delivery_log(store, sub.id)
                                if d.status == "failed") == len(alerts))
    assert redirect.hits >= 1 and internal.requests == 0
    log = delivery_log(store, sub.id)
    assert all("HTTP 307 (redirects are not followed" in (d.last_error or "") for d in log)
    assert all(d.attempts == 1 for d in log)
    redirect.stop()
