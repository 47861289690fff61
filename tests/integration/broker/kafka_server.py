"""A real single-node Apache Kafka 3.9 broker (KRaft) started from the cached Maven jars.

Used by the broker test fixtures and by ``benchmarks/bench_kafka.py``. The broker
listens on free 127.0.0.1 ports, keeps its log in a fresh directory, and is
declared ready when a client metadata request succeeds (polled, no log scraping).
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
