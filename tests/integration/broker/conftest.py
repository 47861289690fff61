"""Broker fixtures: a real single-node Apache Kafka 3.9.1 (KRaft) for the whole session.

``kafka_broker`` starts the broker from the Maven-resolved jars on free
127.0.0.1 ports and stops it at the end. Without Java or the jars the broker
tests skip with a hint - except in CI (``CI=true``), where they fail.
``stream_cfg`` gives each test its own topics, faust app id and sink group.
``Workers`` runs ``hotline worker`` subprocesses with their own data dirs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.integration.broker.kafka_server import KafkaBroker

HOTLINE = str(Path(sys.executable).parent / "hotline")


def wait_for(cond: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """Poll ``cond`` until truthy; fail the test after ``timeout`` s naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory):
    try:
        from tests.support.fetch import kafka_jars

        jars = kafka_jars()
        broker = KafkaBroker(jars, workdir=tmp_path_factory.mktemp("kafka"))
        broker.start(timeout=120)
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"Kafka broker could not start in CI: {exc}")
        pytest.skip(f"no Kafka broker ({exc}); needs Java 17 and "
                    "'python -m tests.support.fetch' (Maven) to get the jars")
    yield broker
    broker.stop()


def write_config(path: Path, broker: str, tag: str, store_url: str, **stream: object) -> Path:
    lines = ["[stream]", f'broker = "{broker}"', f'app_id = "hotline-{tag}"',
             f'events_topic = "ev-{tag}"', f'occupancy_topic = "occ-{tag}"',
             f'scores_topic = "sc-{tag}"', f'alerts_topic = "al-{tag}"',
             f'deadletter_topic = "dl-{tag}"', f'sink_group = "sink-{tag}"',
             "session_timeout = 6.0", "connect_timeout = 20.0", "commit_interval = 0.5"]
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in stream.items()]
    lines += ["", "[store]", f'url = "{store_url}"', ""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def stream_env(kafka_broker: KafkaBroker, tmp_path: Path, request: pytest.FixtureRequest):
    """(config file, Config) with unique topics / app id / group for this test."""
    from hotline.config import load_config

    tag = f"{request.node.name[:20]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    path = write_config(tmp_path / "hotline.toml", kafka_broker.url, tag,
                        f"sqlite:///{tmp_path / 'alerts.db'}")
    return path, load_config(path, environ={})


class Workers:
    """``hotline worker`` subprocesses; every one is killed at teardown."""

    def __init__(self, config: Path, tmp: Path) -> None:
        self.config, self.tmp, self.procs = config, tmp, []

    def start(self, name: str = "w1", *extra: str, model: str | None = "none"
              ) -> subprocess.Popen:
        """Start worker ``name``. ``model``: "none" (``--no-model``: classic rules only, what
        the tests comparing with a ``PipelineContext()`` reference need), None (the worker's
        own default: the registered default model) or ``NAME[:VERSION]``."""
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        if model == "none":
            extra = ("--no-model", *extra)
        elif model is not None:
            extra = ("--model", model, *extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        p = subprocess.Popen(
            [HOTLINE, "--config", str(self.config), "worker", "--datadir",
             str(self.tmp / f"data-{name}"), "--loglevel", "info", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        p.name = name  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        p = self.tmp / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill(self, p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if p.poll() is None:
            os.killpg(p.pid, sig)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)

    def stop_all(self) -> None:
        for p in self.procs:
            self.kill(p, signal.SIGTERM)


@pytest.fixture
def workers(stream_env, tmp_path: Path):
    w = Workers(stream_env[0], tmp_path)
    yield w
    w.stop_all()
