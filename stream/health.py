"""Health of the long-running services (worker, sink): heartbeat files and their checks.

A worker (a faust timer in its event loop) and the sink (its poll loop) write a small
JSON heartbeat file, ``<state dir>/health/<service>.json`` (``$XDG_STATE_HOME``; in the
serving image ``/var/lib/hotline``): the start times of its last starts, the time of its
last beat, its progress count (the sink: records read) and when that count last moved.
``hotline health SERVICE`` (``hotline.cli.health``, the compose health checks) reads it
and says *unhealthy*, in one line, when

- there is no heartbeat file (the service never got as far as its loop);
- the last beat is older than ``[stream] health_max_age`` (the loop is blocked, or the
  process is gone);
- the service is crash-looping: ``CRASH_LOOP_STARTS`` starts within
  ``CRASH_LOOP_WINDOW`` x ``health_max_age`` (each start is recorded before anything can
  fail, so a process that dies on every start leaves its trace);
- (sink) records are waiting in its consumer group (lag > 0) while its progress count
  has not moved for ``health_max_age``: connected but stuck.

The file is replaced atomically (write to a temporary file, rename), so a check never
reads half a file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.config import StreamConfig, default_state_dir

#: services that write heartbeats
SERVICES = ("worker", "sink")
#: a service started this often within CRASH_LOOP_WINDOW x health_max_age is crash-looping
CRASH_LOOP_STARTS = 3
CRASH_LOOP_WINDOW = 5.0
#: start times kept in the file
KEEP_STARTS = 8


def heartbeat_path(service: str, state_dir: Path | None = None) -> Path:
    """Where ``service`` writes its heartbeat."""
    return (state_dir or default_state_dir()) / "health" / f"{service}.json"


class Heartbeat:
    """The heartbeat file of one service process: ``start()`` once, then ``beat()`` often
    (writes at most every ``every`` seconds, unless the progress count moved)."""

    def __init__(self, service: str, path: Path | None = None, every: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.service, self.path = service, path or heartbeat_path(service)
        self.every, self.clock = every, clock
        self.state: dict[str, Any] = {}
        self._written = 0.0

    def start(self) -> Heartbeat:
        """Record this start (keeping the previous ones of this service) and beat."""
        old = read_heartbeat(self.path) or {}
        now = self.clock()
        starts = [float(t) for t in old.get("starts", []) if isinstance(t, (int, float))]
        self.state = {"service": self.service, "pid": os.getpid(),
                      "starts": [*starts, now][-KEEP_STARTS:], "beat": now,
                      "progress": 0, "progress_at": now}
        self._write()
        return self

    def beat(self, progress: int | None = None) -> None:
        """The loop is alive; ``progress``: a count that grows while work gets done."""
        now = self.clock()
        moved = progress is not None and progress != self.state.get("progress")
        if moved:
            self.state["progress"], self.state["progress_at"] = progress, now
        self.state["beat"] = now
        if moved or now - self._written >= self.every:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)
        self._written = self.clock()


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat at ``path``, or None when there is none (or it is not a heartbeat)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def heartbeat_problem(data: dict[str, Any] | None, now: float, max_age: float,
                      lag: int | None = None) -> str | None:
    """Why the heartbeat ``data`` is unhealthy at ``now`` (None: healthy). ``lag``: records
    waiting for the service (None: not known / not checked)."""
    if data is None:
        return "no heartbeat yet (the service has not reached its loop)"
    starts = [float(t) for t in data.get("starts", []) if isinstance(t, (int, float))]
    recent = [t for t in starts if now - t <= CRASH_LOOP_WINDOW * max_age]
    if len(recent) >= CRASH_LOOP_STARTS:
        return (f"crash loop: started {len(recent)} times in the last "
                f"{CRASH_LOOP_WINDOW * max_age:.0f} s")
    age = now - float(data.get("beat", 0.0))
    if age > max_age:
        return f"no heartbeat for {age:.0f} s (limit {max_age:.0f} s): loop blocked or stopped"
    idle = now - float(data.get("progress_at", 0.0))
    if lag and idle > max_age:
        return (f"stuck: {lag:,} records waiting, no progress for {idle:.0f} s "
                f"(limit {max_age:.0f} s)")
    return None


def group_lag(cfg: StreamConfig, group: str, topics: list[str], timeout: float = 10.0) -> int:
    """Records of ``topics`` not yet committed by consumer group ``group`` (read without
    joining the group)."""
    from kafka import KafkaConsumer, TopicPartition

    from hotline.stream.topics import bootstrap_servers

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(cfg.broker), group_id=group,
                             enable_auto_commit=False,
                             request_timeout_ms=max(int(timeout * 1000), 11_000))
    try:
        tps = [TopicPartition(t, p) for t in topics
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return 0
        end = consumer.end_offsets(tps)
        begin = consumer.beginning_offsets(tps)
        return sum(max(0, end[tp] - (consumer.committed(tp) or begin[tp])) for tp in tps)
    finally:
        consumer.close()


@dataclass(frozen=True)
class Health:
    """The verdict of ``check_service``."""

    service: str
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        return f"{self.service}: " + ("healthy" if self.ok else f"unhealthy: {self.problem}")


def check_service(service: str, cfg: StreamConfig, path: Path | None = None,
                  now: float | None = None) -> Health:
    """The health of ``service`` ("worker" or "sink") from its heartbeat (and, for the
    sink, its consumer group's lag when the heartbeat shows no recent progress)."""
    data = read_heartbeat(path or heartbeat_path(service))
    now = time.time() if now is None else now
    problem = heartbeat_problem(data, now, cfg.health_max_age)
    if problem is None and service == "sink" and data is not None \
            and now - float(data.get("progress_at", 0.0)) > cfg.health_max_age:
        from hotline.stream.topics import topics_for

        t = topics_for(cfg)
        try:
            lag: int | None = group_lag(cfg, cfg.sink_group, [t.alerts, t.scores, t.deadletter])
        except Exception:  # noqa: BLE001 - a broker outage is the broker's health, not the sink's
            lag = None
        problem = heartbeat_problem(data, now, cfg.health_max_age, lag=lag)
    return Health(service, problem)


def attach_worker_heartbeat(app: Any, heartbeat: Heartbeat, interval: float = 2.0) -> None:
    """Beat from a faust timer: it runs in the worker's event loop, so the heartbeat stops
    when the loop is blocked or the worker has stopped."""

    @app.timer(interval=interval, name="hotline.heartbeat")
    async def _heartbeat() -> None:
        heartbeat.beat()
