"""docker-compose.yml, run: every service started natively with its exact command and
environment (``native_compose``: hostnames and ports mapped to free 127.0.0.1 ports, Kafka
from the Maven jars, PostgreSQL from Debian), the replay profile end to end, and the store
compared with an embedded replay of the same run.

The stack is started once for the module (its start dominates the time); the tests run in
file order, the last ones change it (topics grown, the sink killed).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.integration.broker.conftest import wait_for
from tests.integration.deploy.native_compose import NativeCompose

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]
RUN = 1  # the compose replay's default run: run 1 of the bundled archive (20,000 events)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    try:
        from tests.support.fetch import kafka_jars

        jars = kafka_jars()
        if not Path("/usr/lib/postgresql/15/bin/initdb").exists():
            raise RuntimeError("Debian's postgresql 15 is not installed")
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"native compose stack cannot start in CI: {exc}")
        pytest.skip(f"native compose stack needs Java 17, the Kafka jars and PostgreSQL 15 "
                    f"({exc})")
    c = NativeCompose(ROOT / "docker-compose.yml", tmp_path_factory.mktemp("compose"), jars)
    try:
        c.up()
        yield c
    finally:
        c.stop()


def content(summaries) -> list[tuple]:
    return sorted((s.key, s.n_events, s.n_bad, s.rule_counts) for s in summaries)


def test_the_stack_is_up_as_written(stack):
    svc = stack.services
    assert len(stack.instances["worker"]) == int(svc["worker"]["scale"]) == 2
    for name in ("worker", "sink", "dashboard"):  # their health checks passed (up() waited)
        assert all(i.proc.poll() is None for i in stack.instances[name]), name
    assert stack.instances["kafka-init"][0].proc.returncode == 0
    init = stack.instances["kafka-init"][0].log
    assert "hotline.events: 4 partitions" in init, init
    # workers score with the registered default model, as configured for them
    assert stack.instances["worker"][0].env["HOTLINE_MODEL_NAME"] == "ae_default"


def test_host_and_container_listeners(stack):
    """Host clients (127.0.0.1:9092 published) are told to reconnect to a host address,
    containers (kafka:29092) to the internal listener: both reach the broker."""
    from kafka import KafkaAdminClient

    for port in (9092, 29092):
        local = stack.port("kafka", port)
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{local}")
        try:
            (broker,) = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        assert (broker["host"], broker["port"]) == ("127.0.0.1", local)


def test_replay_profile_matches_an_embedded_replay(stack, tmp_path):
    from hotline.alerts.backends import open_store

    replay = stack.run("replay")  # docker compose --profile replay run --rm replay
    assert replay.proc.returncode == 0, replay.log
    assert "published 20,000 events" in replay.log, replay.log
    # the reference: the replay service's own command and environment, without --to
    ref_db = tmp_path / "embedded.db"
    argv = [a for a in replay.argv if a not in ("--to", replay.argv[replay.argv.index("--to")
                                                                       + 1])]
    ref = subprocess.run(argv, env={**replay.env, "HOTLINE_STORE_URL": f"sqlite:///{ref_db}"},
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    with open_store(f"sqlite:///{ref_db}") as r:
        expected_ids = {a.id for a in r.alerts()}
        expected = content(r.summaries())
        assert any(a.kind == "ae" for a in r.alerts())  # the default model was scoring
    sink = stack.instances["sink"][0]
    with open_store(sink.env["HOTLINE_STORE_URL"]) as store:
        wait_for(lambda: content(store.summaries()) == expected
                 and {a.id for a in store.alerts()} == expected_ids, 180,
                 "the sink's PostgreSQL store to hold what the embedded replay stored")
        assert store.count_alerts() == len(expected_ids)
        assert sum(s.n_events for s in store.summaries()) == 20_000
    # both workers are members of the group sharing the lumisection-keyed partitions
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{stack.port('kafka', 29092)}")
    try:
        group = admin.describe_groups(["hotline"])["hotline"]
    finally:
        admin.close()
    assert len(group["members"]) == 2, group
    for inst in [*stack.instances["worker"], sink, *stack.instances["dashboard"]]:
        h = stack.health_line(inst)
        assert h.returncode == 0 and "healthy" in h.stdout, (inst.name, h.stdout, h.stderr)


def test_dashboard_and_deliver_share_the_secrets_key(stack, tmp_path):
    """A webhook secret sealed with the dashboard's environment is opened with deliver's:
    both read the key file of the shared volume, and the store holds it sealed."""
    from hotline.alerts.backends import open_store

    (deliver,) = stack.instances["deliver"]
    assert deliver.proc.poll() is None, deliver.log
    made = tmp_path / "made.secret"
    add = stack.run("dashboard", ["hotline", "subscribe", "add", "--owner", "compose-test",
                                  "--kind", "ae", "--webhook", "https://hooks.example.org/x",
                                  "--secret-out", str(made), "--json"])
    assert add.proc.returncode == 0, add.log
    sub_id = json.loads(add.log.strip().splitlines()[-1])["id"]
    opened = tmp_path / "opened.secret"
    got = stack.run("deliver", ["hotline", "subscribe", "secret", str(sub_id), "--out",
                                str(opened)])
    assert got.proc.returncode == 0, got.log
    secret = made.read_text().strip()
    assert secret.startswith("whsec_") and opened.read_text().strip() == secret
    key = Path(deliver.env["HOTLINE_SECRETS_KEY_FILE"])
    assert key.is_file() and (key.stat().st_mode & 0o077) == 0
    assert key == Path(add.env["HOTLINE_SECRETS_KEY_FILE"])
    with open_store(deliver.env["HOTLINE_STORE_URL"]) as store, store.transaction() as cur:
        cur.execute(f"SELECT secret FROM subscriptions WHERE id = {store.ph}", (sub_id,))
        sealed = cur.fetchone()[0]
    assert sealed.startswith("fernet:") and secret not in sealed


def test_partition_count_grows_and_refuses_to_shrink(stack):
    """HOTLINE_PARTITIONS raised: kafka-init grows the topics; lowered: one clear line."""
    (grow,) = stack.start("kafka-init", copies=1, extra_env={"HOTLINE_STREAM_PARTITIONS": "6"})
    assert grow.proc.wait(120) == 0, grow.log
    assert "hotline.events: 6 partitions" in grow.log
    (shrink,) = stack.start("kafka-init", copies=1,
                            extra_env={"HOTLINE_STREAM_PARTITIONS": "2"})
    assert shrink.proc.wait(120) == 2
    lines = [x for x in shrink.log.splitlines() if "error" in x]
    assert len(lines) == 1 and "cannot remove partitions" in lines[0], shrink.log


def test_a_dead_sink_is_unhealthy(stack):
    sink = stack.instances["sink"][0]
    sink.proc.send_signal(signal.SIGKILL)
    sink.proc.wait(10)
    time.sleep(2.5)
    h = stack.health_line(sink, "--max-age", "2")
    assert h.returncode == 1 and "no heartbeat for" in h.stdout, h.stdout + h.stderr
