"""Real Apache Kafka 3.9 brokers (KRaft) started from the cached Maven jars.

Used by the broker test fixtures and by ``benchmarks/bench_kafka.py``. ``KafkaBroker``:
one node; ``KafkaProcess``: one node from a given ``server.properties`` text (the native
compose run); ``KafkaCluster``: three broker+controller nodes with a static voter list
(the broker-loss test). Brokers listen on free 127.0.0.1 ports, keep their logs in fresh
directories, and are declared ready when a client metadata request succeeds (polled, no
log scraping).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={logdir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=20971520
replica.fetch.max.bytes=20971520
log.flush.interval.messages=9223372036854775807
"""


@dataclass
class KafkaBroker:
    """One broker process; ``start()`` / ``stop()`` / ``restart()``; ``bootstrap`` = host:port."""

    jars: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hotline-kafka-")))
    port: int = field(default_factory=free_port)
    cport: int = field(default_factory=free_port)
    heap: str = "512m"
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java") or "java"
        return [java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-cp", f"{self.jars}/*", *args]

    def _format(self) -> Path:
        props = self.workdir / "server.properties"
        logdir = self.workdir / "log"
        props.write_text(SERVER_PROPERTIES.format(port=self.port, cport=self.cport, logdir=logdir))
        (self.workdir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n"
            f"log4j.appender.F.File={self.workdir / 'server.log'}\n"
            "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.F.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        if not (logdir / "meta.properties").exists():
            cluster = subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                check=True, capture_output=True, text=True, timeout=120,
            ).stdout.strip().splitlines()[-1]
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)),
                check=True, capture_output=True, text=True, timeout=120,
            )
        return props

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        props = self._format()
        env = dict(os.environ, KAFKA_HEAP_OPTS=f"-Xmx{self.heap}")
        cmd = self._java(f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
                         "kafka.Kafka", str(props))
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Poll a metadata request until the broker answers (or fail with its log tail)."""
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Kafka broker exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=3000)
                try:
                    admin.describe_cluster()
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"Kafka broker at {self.bootstrap} not ready after {timeout:.0f} s "
                           f"({last}):\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        lines: list[str] = []
        for name in ("stdout.log", "server.log"):
            p = self.workdir / name
            if p.exists():
                lines += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, timeout: float = 90.0) -> None:
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---- processes from given properties, and a 3-node cluster on loopback --------------------

def java_command(jars: Path, heap: str, *args: str) -> list[str]:
    """``java`` with the broker jars on the class path (fast-starting JVM flags)."""
    java = shutil.which("java") or "java"
    return [java, f"-Xmx{heap}", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-cp", f"{jars}/*", *args]


def random_cluster_id(jars: Path) -> str:
    return subprocess.run(java_command(jars, "128m", "kafka.tools.StorageTool", "random-uuid"),
                          check=True, capture_output=True, text=True,
                          timeout=120).stdout.strip().splitlines()[-1]


@dataclass
class KafkaProcess:
    """One broker (or broker+controller) process started from a ``server.properties`` text;
    formatted with ``cluster_id`` before its first start."""

    jars: Path
    workdir: Path
    properties: str
    cluster_id: str
    heap: str = "384m"
    proc: subprocess.Popen | None = None

    def format(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self.workdir / "server.properties"
        props.write_text(self.properties)
        (self.workdir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n"
            f"log4j.appender.F.File={self.workdir / 'server.log'}\n"
            "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.F.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        if not (self.workdir / "formatted").exists():
            subprocess.run(java_command(self.jars, "128m", "kafka.tools.StorageTool", "format",
                                        "-t", self.cluster_id, "-c", str(props)),
                           check=True, capture_output=True, text=True, timeout=120)
            (self.workdir / "formatted").touch()
        return props

    def start(self) -> KafkaProcess:
        props = self.format()
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - lives with the process
        cmd = java_command(self.jars, self.heap,
                           f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
                           "kafka.Kafka", str(props))
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if not self.running:
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, n: int = 20) -> str:
        lines: list[str] = []
        for name in ("stdout.log", "server.log"):
            p = self.workdir / name
            if p.exists():
                lines += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)


def wait_for_brokers(bootstrap: str, n: int, timeout: float,
                     nodes: list[KafkaProcess] = ()) -> None:  # type: ignore[assignment]
    """Poll metadata until ``n`` brokers are listed (or fail with the nodes' log tails)."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        dead = [p for p in nodes if p.proc is not None and p.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"Kafka node exited with {dead[0].proc.returncode}:\n"  # type: ignore[union-attr]
                               + dead[0].log_tail())
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                brokers = admin.describe_cluster()["brokers"]
            finally:
                admin.close()
            if len(brokers) >= n:
                return
            last = f"{len(brokers)} of {n} brokers"
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"Kafka at {bootstrap}: not {n} brokers after {timeout:.0f} s ({last}):\n"
                       + "\n".join(p.log_tail(10) for p in nodes))


CLUSTER_PROPERTIES = """\
process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={logdir}
num.partitions=1
default.replication.factor={n}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={n}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={n}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=20971520
replica.fetch.max.bytes=20971520
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
replica.lag.time.max.ms=5000
log.flush.interval.messages=9223372036854775807
"""


@dataclass
class KafkaCluster:
    """``n`` broker+controller nodes on loopback: node ids 1..n, a static voter list, one
    cluster id, replication factor ``n`` and ``min.insync.replicas`` ``min_isr``."""

    jars: Path
    workdir: Path
    n: int = 3
    min_isr: int = 2
    heap: str = "384m"
    nodes: list[KafkaProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def url(self) -> str:
        return "kafka://" + self.bootstrap

    def start(self, timeout: float = 150.0) -> KafkaCluster:
        self.ports = [free_port() for _ in range(self.n)]
        cports = [free_port() for _ in range(self.n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(cports))
        cluster = random_cluster_id(self.jars)
        for i in range(self.n):
            wd = self.workdir / f"node{i + 1}"
            props = CLUSTER_PROPERTIES.format(node=i + 1, voters=voters, port=self.ports[i],
                                              cport=cports[i], logdir=wd / "log", n=self.n,
                                              min_isr=self.min_isr)
            self.nodes.append(KafkaProcess(self.jars, wd, props, cluster, self.heap))
        try:
            for node in self.nodes:  # in parallel: a quorum needs a majority up
                node.start()
            wait_for_brokers(self.bootstrap, self.n, timeout, self.nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (0-based): a broker lost without a clean shutdown."""
        self.nodes[i].stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for node in self.nodes:
            node.stop(sig)

    def cleanup(self) -> None:
        """Kill the nodes (their logs are deleted: a controlled shutdown of a cluster that
        has lost a node waits ~20 s for nothing) and delete their folders."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)
