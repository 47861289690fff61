"""docker-compose.yml validates (``docker-compose config -q``, pip docker-compose 1.29.2).

(``test_compose_native`` runs it.)

The validator lives in its own venv (``~/.cache/hotline/venv-compose``, made by
``.ci/setup``) because docker-compose 1.29.2 needs PyYAML < 6. In CI a missing
validator fails the test; elsewhere it skips with the command that installs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

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
    kafka = services["kafka"]["environment"]
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # containers and host clients on separate listeners, each advertised as they reach it
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "INTERNAL://kafka:29092,HOST://127.0.0.1:9092"
    assert any(str(p).startswith("127.0.0.1:9092:9092") for p in services["kafka"]["ports"])
    # scaling that docker-compose 1.29 honours (it ignores deploy.replicas)
    assert int(services["worker"]["scale"]) >= 2 and "deploy" not in services["worker"]
    assert services["worker"]["environment"]["HOTLINE_MODEL_NAME"] == "ae_default"
    for name in ("worker", "sink", "dashboard"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "hotline", "health", name]
    for name in ("kafka", "postgres"):
        assert "healthcheck" in services[name], name
    # topics: created or grown by `hotline topics`, names from [stream] (stream/topics.py)
    assert services["kafka-init"]["command"] == ["hotline", "topics"]
    for name in ("kafka-init", "worker", "sink", "dashboard", "replay"):
        env = services[name]["environment"]
        assert env["HOTLINE_STREAM_BROKER"] == "kafka://kafka:29092", name
        assert env["HOTLINE_STREAM_PARTITIONS"] == "4", name
    assert "kafka://kafka:29092" in services["replay"]["entrypoint"]
    assert services["sink"]["environment"]["HOTLINE_STORE_URL"].startswith("postgresql://")


def test_validator_rejects_a_broken_file(compose, tmp_path):
    text = (ROOT / "docker-compose.yml").read_text()
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace("    scale: ", "    wrong_key: 1\n    scale: ", 1))
    p = run(compose, bad, "-q")
    assert p.returncode != 0 and "wrong_key" in p.stderr


def test_serving_image_installs_the_wheel_without_the_training_stack():
    """The Dockerfile's serving image installs the wheel with the kafka, dashboard and
    postgres extras only: no torch, hls4ml, Pythia or fastjet in the workers' image."""
    import re
    import tomllib

    docker = (ROOT / "Dockerfile").read_text()
    (extras,) = re.findall(r"hotline-\*\.whl\)\[([a-z,]+)\]", docker)
    assert set(extras.split(",")) == {"kafka", "dashboard", "postgres"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras.split(","):
        reqs += project["optional-dependencies"][extra]
    names = {re.split(r"[=<>\[; ]", r)[0].lower() for r in reqs}
    assert not names & {"torch", "hls4ml", "pythia8mc", "fastjet", "onnx", "matplotlib"}
    assert "onnxruntime" in names  # the workers score with onnxruntime
