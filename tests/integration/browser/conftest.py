"""Browser fixtures: headless Chromium via Playwright, and an in-process dashboard server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, make_events

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PASSWORD = "shift-crew-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Any, timeout: float = 20.0, every: float = 0.1, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        out = cond()
        if out:
            return out
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def serve_and_wait(cfg: Any, hub: Any, port: int) -> tuple[Any, str]:
    """Start the dashboard server of ``hub`` on ``port`` (threaded) and wait until its login
    page answers; (server, base URL). The screenshots' folder exists afterwards."""
    import urllib.request

    from hotline.dashboard.app import serve

    server = serve(cfg, hub=hub, port=port, threaded=True, show=False)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(up, timeout=30, what="the dashboard server")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return server, url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (never downloaded: /usr/bin/chromium). Missing in CI = failure."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if IN_CI:
            raise
        pytest.skip(f"playwright is not installed ({exc}); bash .ci/setup installs it")
    if not Path(CHROMIUM).exists():
        if IN_CI:
            raise AssertionError(f"{CHROMIUM} is missing; .ci/setup installs the chromium package")
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def dash_archive(tmp_path: Path) -> Path:
    """Run 7: 3000 events, 50 per lumisection (60 LS), in 3 files."""
    from hotline.stream.archive_writer import write_run

    arrays = make_events(3000, seed=11, run=7, events_per_lumi=50)
    write_run(tmp_path / "archive", 7, arrays, events_per_file=1000,
              card={"description": "browser test run"})
    return tmp_path / "archive"


@pytest.fixture
def dashboard_server(tmp_path: Path, dash_archive: Path) -> Iterator[dict[str, Any]]:
    """The dashboard served in-process on a free port, basic auth on, one AE alert stored."""
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.dashboard.hub import build_hub
    from tests.unit.dashboard.conftest import THRESHOLDS, ae_alert

    store = SQLiteAlertStore(tmp_path / "alerts.db")
    store.add_alerts([ae_alert(5, 3, 42, score=31.0, created=time.time() - 60)])
    port = free_port()
    cfg = load_config(environ={}, cli={
        "source": {"archive": str(dash_archive), "step_size": 100},
        "dashboard": {"port": port, "basic_auth": PASSWORD, "cookie_secret": "test-secret"},
        "store": {"url": store.url},
    })
    hub = build_hub(cfg, store=store)
    hub.thresholds = list(THRESHOLDS)
    server, url = serve_and_wait(cfg, hub, port)
    try:
        yield {"url": url, "hub": hub, "store": store, "cfg": cfg}
    finally:
        if hub.replay is not None:
            hub.replay.stop()
        server.stop()
        store.close()
