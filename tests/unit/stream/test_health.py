"""Service health from heartbeat files (``stream.health``) and ``hotline health``."""

from __future__ import annotations

import json
import re
import time

from hotline.cli import main
from hotline.config import StreamConfig
from hotline.stream.health import (
    CRASH_LOOP_STARTS,
    Heartbeat,
    check_service,
    heartbeat_path,
    heartbeat_problem,
    read_heartbeat,
)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_heartbeat_file_records_starts_beats_and_progress(tmp_path):
    clock = Clock()
    path = tmp_path / "health" / "sink.json"
    hb = Heartbeat("sink", path, every=5.0, clock=clock).start()
    first = read_heartbeat(path)
    assert first["starts"] == [clock.t] and first["progress"] == 0
    clock.t += 2
    hb.beat(0)  # no progress and within `every`: not rewritten
    assert read_heartbeat(path) == first
    clock.t += 1
    hb.beat(40)  # progress: written at once
    assert read_heartbeat(path)["progress_at"] == clock.t
    clock.t += 10
    Heartbeat("sink", path, clock=clock).start()  # a restart keeps the earlier starts
    assert len(read_heartbeat(path)["starts"]) == 2
    assert not list(path.parent.glob(".*"))  # replaced atomically, no temporary left


def test_heartbeat_problems():
    now = 1000.0
    ok = {"starts": [now - 500], "beat": now - 1, "progress_at": now - 100}
    assert heartbeat_problem(ok, now, 60) is None
    assert heartbeat_problem(ok, now, 60, lag=0) is None  # idle with nothing waiting: fine
    assert "stuck: 12 records waiting" in heartbeat_problem(ok, now, 60, lag=12)
    assert heartbeat_problem({**ok, "progress_at": now - 5}, now, 60, lag=12) is None
    assert "no heartbeat for 90 s" in heartbeat_problem({**ok, "beat": now - 90}, now, 60)
    loop = {**ok, "starts": [now - 10 * k for k in range(CRASH_LOOP_STARTS)]}
    assert "crash loop: started 3 times" in heartbeat_problem(loop, now, 60)
    assert "no heartbeat yet" in heartbeat_problem(None, now, 60)


def test_hotline_health_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert main(["health", "worker"]) == 1
    assert capsys.readouterr().out.strip() == (
        "worker: unhealthy: no heartbeat yet (the service has not reached its loop)")
    Heartbeat("worker").start()
    assert heartbeat_path("worker").parent.parent == tmp_path / "hotline"
    assert main(["health", "worker"]) == 0
    assert capsys.readouterr().out.strip() == "worker: healthy"
    data = json.loads(heartbeat_path("worker").read_text())
    heartbeat_path("worker").write_text(json.dumps({**data, "beat": time.time() - 100}))
    assert main(["health", "worker", "--max-age", "30"]) == 1
    # 100 s old when written; the check itself may take a moment on a loaded machine
    assert re.search(r"no heartbeat for 10\d s \(limit 30 s\)", capsys.readouterr().out)
    assert check_service("worker", StreamConfig(health_max_age=300)).ok


def test_dashboard_health_without_a_server(monkeypatch, capsys):
    from tests.integration.broker.kafka_server import free_port

    monkeypatch.setenv("HOTLINE_DASHBOARD_PORT", str(free_port()))
    assert main(["health", "dashboard"]) == 1
    assert capsys.readouterr().out.startswith("dashboard: unhealthy: http://127.0.0.1:")
