"""docker-compose.yml validates (``docker-compose config -q``, pip docker-compose 1.29.2).

The validator lives in its own venv (``~/.cache/hotline/venv-compose``, made by
``.ci/setup``) because docker-compose 1.29.2 needs PyYAML < 6. In CI a missing
validator fails the test; elsewhere it skips with the command that installs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hotline.config import StreamConfig
from hotline.stream.topics import topics_for
from tests.conftest import IN_CI
from tests.support.fetch import CACHE

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = CACHE / "venv-compose" / "bin" / "docker-compose"


@pytest.fixture(scope="module")
def compose() -> Path:
    if not COMPOSE.exists():
        if IN_CI:
            pytest.fail(f"{COMPOSE} missing: .ci/setup should have created it")
        pytest.skip(f"{COMPOSE} missing; run 'bash .ci/setup' to create the validator venv")
    return COMPOSE


def run(compose: Path, path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(compose), "-f", str(path), "config", *args], capture_output=True,
                          text=True, timeout=60, cwd=path.parent, env={"PATH": "/usr/bin:/bin"})


def test_compose_file_is_valid(compose):
    p = run(compose, ROOT / "docker-compose.yml", "-q")
    assert p.returncode == 0, p.stderr


def test_compose_has_the_deployment(compose):
    p = run(compose, ROOT / "docker-compose.yml")
    assert p.returncode == 0, p.stderr
    services = yaml.safe_load(p.stdout)["services"]
    assert {"kafka", "kafka-init", "postgres", "worker", "sink", "dashboard"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert int(services["worker"]["deploy"]["replicas"]) >= 2
    for name in ("kafka", "postgres", "worker", "sink", "dashboard"):
        assert "healthcheck" in services[name], name
    init = " ".join(services["kafka-init"]["command"])
    for topic in topics_for(StreamConfig()).all():  # the names declared once, in [stream]
        assert topic in init, topic
    assert services["worker"]["environment"]["HOTLINE_STREAM_BROKER"] == "kafka://kafka:9092"
    assert services["sink"]["environment"]["HOTLINE_STORE_URL"].startswith("postgresql://")


def test_validator_rejects_a_broken_file(compose, tmp_path):
    text = (ROOT / "docker-compose.yml").read_text()
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace("    deploy:\n", "    deploy:\n      wrong_key: 1\n", 1))
    p = run(compose, bad, "-q")
    assert p.returncode != 0 and "wrong_key" in p.stderr
