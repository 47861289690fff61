"""The next navigation's first stage built ahead (``dashboard.spare``), the page built from
it (``app.build_first_stage`` + ``create_page``), and the warm session reuse around them
(``dashboard.session_reuse``): which requests share an HTML page, the primer request, who is
connected. Real SQLite store, real HTTP server for the primer."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from hotline.dashboard import session_reuse
from hotline.dashboard.spare import Spare


def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_spare_hands_over_each_build_once_and_rebuilds_after_the_delay():
    made = []

    def build():
        made.append(object())
        return made[-1]

    spare = Spare(build, delay=0.2)
    assert spare.take() is None  # nothing built yet: the caller builds its own ...
    assert spare.missed == 1
    wait_until(spare.ready)  # ... and the take started the first build
    first = spare.take()
    assert first is made[0]
    assert spare.take() is None  # never handed out twice
    time.sleep(0.1)
    assert not spare.ready()  # the rebuild waits ``delay`` after a take
    wait_until(spare.ready)
    assert spare.take() is made[1]
    assert (spare.built, spare.taken) == (2, 2)


def test_spare_start_builds_at_most_one_at_a_time():
    gate = threading.Event()
    calls = []

    def build():
        calls.append(1)
        gate.wait(5)
        return len(calls)

    spare = Spare(build, delay=0.0)
    spare.start()
    spare.start()  # one being built: no second
    wait_until(lambda: calls)
    gate.set()
    wait_until(spare.ready)
    spare.start()  # one ready: no second
    time.sleep(0.1)
    assert calls == [1]


def test_a_failing_build_leaves_no_spare_and_is_logged(caplog):
    def build():
        raise RuntimeError("store gone")

    spare = Spare(build, delay=0.0)
    spare.start()
    wait_until(lambda: "store gone" in caplog.text)
    time.sleep(0.05)
    assert not spare.ready() and spare.take() is None and spare.built == 0


def test_the_page_from_a_first_stage_built_ahead(filled_store, tmp_path):
    """``build_first_stage`` needs no Panel session; outside one ``create_page`` builds its
    own (every stage at once) and a given spare is left for the sessions."""
    from hotline.config import load_config
    from hotline.dashboard.app import build_first_stage, create_page
    from hotline.dashboard.hub import build_hub

    cfg = load_config(environ={}, cli={"store": {"url": filled_store.url},
                                       "dashboard": {"basic_auth": "pw"}})
    hub = build_hub(cfg, store=filled_store, replay=False)
    first = build_first_stage(hub)
    assert first.state.user == "guest" and first.state.role == "guest"
    assert first.state.run is not None  # its data read when it was built
    assert set(first.views) == {"overview", "strip"}
    assert "guest (read-only)" in first.header.object
    # the alert table is not in the first stage: its slot holds a spinner
    assert [type(o).__name__ for o in first.table_slot.objects] == ["LoadingSpinner"]

    spare = Spare(lambda: build_first_stage(hub), delay=60)
    spare.start()
    wait_until(spare.ready)
    page = create_page(hub, user="alice", spare=spare)
    assert spare.ready()  # not a session: the spare stays for one
    assert page.hotline_state.user == "alice"
    assert {"overview", "strip", "alerts", "histogram", "audit"} <= set(page.hotline_views)
    assert "alice" in page.objects[0].object


def test_session_key_separates_the_wall_display_only():
    def req(path: str, **args: list[bytes]) -> SimpleNamespace:
        return SimpleNamespace(path=path, arguments=args)

    crew = session_reuse.session_key(req("/"))
    assert session_reuse.session_key(req("/", alert=[b"abc"])) == crew  # no session per id
    assert session_reuse.session_key(req("/", wall=[b"1"])) != crew
    assert session_reuse.session_key(req("/other")) != crew


def test_enable_and_disable_set_panels_session_reuse():
    import panel as pn

    try:
        session_reuse.enable()
        assert pn.config.reuse_sessions == "warm"
        assert pn.config.session_key_func is session_reuse.session_key
    finally:
        session_reuse.disable()
    assert pn.config.reuse_sessions is False


def test_browsers_unknown_without_a_session():
    from bokeh.document import Document

    assert session_reuse.browsers(Document()) is None
    assert session_reuse.browsers(None) is None


def test_prepare_document_points_panels_stylesheets_at_the_server():
    from bokeh.document import Document
    from panel.io.resources import CDN_DIST

    doc = Document()
    session_reuse.prepare_document(doc)
    assert doc.template_variables["dist_url"]
    assert not doc.template_variables["dist_url"].startswith(CDN_DIST)


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.hits.append(self.path)
        if self.path.startswith("/login-first"):
            self.send_response(302)
            self.send_header("Location", "/login")
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.hits = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prime_requests_the_page_once(http_server):
    assert session_reuse.prime(http_server + "/?wall=1", timeout=5)
    assert _Handler.hits == ["/?wall=1"]


def test_prime_takes_a_redirect_to_a_login_as_no_primer(http_server):
    assert not session_reuse.prime(http_server + "/login-first", timeout=5)
    assert _Handler.hits == ["/login-first"]  # the login page itself is not requested


def test_prime_gives_up_when_nothing_answers():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.monotonic()
    assert not session_reuse.prime(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert time.monotonic() - t0 < 5
