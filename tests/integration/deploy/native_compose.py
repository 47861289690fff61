"""docker-compose.yml run natively: every service with its exact command and environment.

No container engine works on the test machines, so ``NativeCompose`` plays the engine:

- reads the file (PyYAML resolves anchors and merge keys) and interpolates
  ``${VAR:-default}``, ``${VAR}`` and ``$$`` from the given environment, as compose does;
- gives every (service, container port) it finds a free 127.0.0.1 port and rewrites every
  string of a service - environment values, command, health check - so that
  ``SERVICE:PORT``, ``localhost:PORT``, ``127.0.0.1:PORT``, a listener's ``://:PORT`` and a
  bare port value point there: service hostnames map to 127.0.0.1 by these overrides, with
  no ``/etc/hosts`` edit;
- maps volume mount points and the serving image's state folder (the Dockerfile's
  ``XDG_STATE_HOME``) to per-instance temporary folders;
- runs image ``apache/kafka:3.9.x`` as the Kafka server from the Maven jars, with the
  image's convention (``KAFKA_FOO_BAR`` -> ``foo.bar`` in ``server.properties``), and
  ``postgres:15`` as Debian's PostgreSQL 15 (``POSTGRES_USER`` / ``POSTGRES_DB``);
- runs the services built from the Dockerfile (``build: .``) as the installed ``hotline``
  command with the Dockerfile's final ``ENV`` plus the service's environment, ``scale``
  copies each, and runs their health checks as written;
- honours ``depends_on`` conditions (``service_healthy``: the health check passes;
  ``service_completed_successfully``: exit status 0).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.integration.broker.kafka_server import KafkaProcess, free_port, random_cluster_id

BIN = str(Path(sys.executable).parent)
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_HOSTPORT = re.compile(r"(?:^|(?<=[/@,\s=\"']))(?P<host>[A-Za-z0-9_.-]*):(?P<port>\d{2,5})"
                       r"(?![\d:])")
_LOCAL = {"", "localhost", "127.0.0.1", "0.0.0.0"}  # noqa: S104 - names, not a bind


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``${VAR:-default}`` / ``${VAR}`` / ``$VAR`` / ``$$`` in every string of ``value``."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) or m.group(3)
            got = env.get(name)
            return got if got not in (None, "") else (m.group(2) or "")
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def load_compose(path: Path, env: dict[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(path.read_text()), env)


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's final stage."""
    stages = re.split(r"(?m)^FROM ", path.read_text())
    text = stages[-1].replace("\\\n", " ")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                k, _, v = item.partition("=")
                out[k] = v
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


@dataclass
class Instance:
    """One running copy of a service."""

    name: str
    service: str
    env: dict[str, str]
    argv: list[str]
    dir: Path
    proc: subprocess.Popen | None = None

    @property
    def log(self) -> str:
        p = self.dir / "output.log"
        return p.read_text(errors="replace") if p.exists() else ""


@dataclass
class NativeCompose:
    """The services of one compose file, started natively (see the module docstring)."""

    compose_file: Path
    workdir: Path
    jars: Path
    environ: dict[str, str] = field(default_factory=dict)
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")
    instances: dict[str, list[Instance]] = field(default_factory=dict)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    kafka: KafkaProcess | None = None
    postgres: Any = None

    def __post_init__(self) -> None:
        self.spec = load_compose(self.compose_file, self.environ)
        self.services: dict[str, dict[str, Any]] = self.spec["services"]
        self.image_env = dockerfile_env(self.compose_file.parent / "Dockerfile")
        for name, svc in self.services.items():
            for s in _strings({k: v for k, v in svc.items() if k != "image"}):
                for m in _HOSTPORT.finditer(s):
                    host, port = m["host"], int(m["port"])
                    if host in self.services:
                        self.ports.setdefault((host, port), free_port())
                    elif host in _LOCAL:
                        self.ports.setdefault((name, port), free_port())
            for p in svc.get("ports", []):
                self.ports.setdefault((name, int(str(p).rsplit(":", 1)[-1])), free_port())

    # ---- rewriting ------------------------------------------------------------------------
    def port(self, service: str, port: int) -> int:
        """The 127.0.0.1 port standing for ``service``'s container port ``port``."""
        return self.ports[(service, port)]

    def rewrite(self, value: str, own: str, volumes: dict[str, Path]) -> str:
        def sub(m: re.Match) -> str:
            host, port = m["host"], int(m["port"])
            key = (host, port) if host in self.services else (own, port) if host in _LOCAL \
                else None
            if key is None or key not in self.ports:
                return m.group(0)
            keep = host if host in _LOCAL and host else "127.0.0.1"  # localhost stays localhost
            return f"{keep}:{self.ports[key]}"

        out = _HOSTPORT.sub(sub, value)
        if out.isdigit() and (own, int(out)) in self.ports:  # a bare port value
            out = str(self.ports[(own, int(out))])
        for mount, local in volumes.items():
            if out == mount or out.startswith(mount + "/"):
                out = str(local) + out[len(mount):]
        return out

    def _volumes(self, name: str, inst_dir: Path) -> dict[str, Path]:
        vols = {}
        for v in self.services[name].get("volumes", []):
            src, _, mount = str(v).partition(":")
            vols[mount] = self.workdir / "volumes" / src
            vols[mount].mkdir(parents=True, exist_ok=True)
        if "build" in self.services[name] and "XDG_STATE_HOME" in self.image_env:
            vols[self.image_env["XDG_STATE_HOME"]] = inst_dir / "state"
        return vols

    def _env(self, name: str, inst_dir: Path, extra: dict[str, str] | None = None
             ) -> tuple[dict[str, str], dict[str, Path]]:
        vols = self._volumes(name, inst_dir)
        env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(inst_dir), "LANG": "C.UTF-8"}
        if "build" in self.services[name]:
            env.update({k: self.rewrite(v, name, vols) for k, v in self.image_env.items()})
        for k, v in (self.services[name].get("environment") or {}).items():
            env[k] = self.rewrite(str(v), name, vols)
        env.update(extra or {})
        return env, vols

    def argv(self, name: str, args: list[str] | None = None) -> list[str]:
        svc = self.services[name]
        entry = svc.get("entrypoint") or []
        cmd = args if args is not None else (svc.get("command") or [])
        return [str(a) for a in [*entry, *cmd]]

    # ---- services -------------------------------------------------------------------------
    def start_kafka(self, name: str = "kafka") -> None:
        d = self.workdir / name
        env, vols = self._env(name, d)
        props = {}
        for k, v in env.items():
            if k.startswith("KAFKA_") and k not in ("KAFKA_HEAP_OPTS", "KAFKA_OPTS"):
                key = k[6:].lower().replace("___", "-").replace("__", "\0").replace("_", ".")
                props[key.replace("\0", "_")] = v
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        self.kafka = KafkaProcess(self.jars, d, text, env.get("CLUSTER_ID")
                                  or random_cluster_id(self.jars), heap="512m").start()

    def start_postgres(self, name: str = "postgres") -> None:
        import psycopg

        from tests.integration.postgres.conftest import PostgresServer

        env = self.services[name].get("environment") or {}
        server = PostgresServer()
        server.port = self.port(name, 5432)
        self.postgres = server.start()
        user, db = env.get("POSTGRES_USER", "postgres"), env.get("POSTGRES_DB")
        pw = env.get("POSTGRES_PASSWORD", "")
        with psycopg.connect(server.admin_url, autocommit=True) as c:
            if user != "postgres":
                c.execute(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{pw}'")
            c.execute(f"CREATE DATABASE {db or user} OWNER {user}")

    def start(self, name: str, args: list[str] | None = None, copies: int | None = None,
              extra_env: dict[str, str] | None = None) -> list[Instance]:
        """Start ``name`` (``scale`` copies for a Hotline service) without waiting."""
        svc = self.services[name]
        image = str(svc.get("image", ""))
        if "build" not in svc:
            if image.startswith("apache/kafka:"):
                self.start_kafka(name)
            elif image.startswith("postgres:"):
                self.start_postgres(name)
            else:
                raise ValueError(f"service {name}: image {image} has no native stand-in")
            self.instances[name] = []
            return []
        n = copies if copies is not None else int(svc.get("scale", 1))
        out = []
        for i in range(1, n + 1):
            d = self.workdir / f"{name}-{i}"
            d.mkdir(parents=True, exist_ok=True)
            env, vols = self._env(name, d, extra_env)
            argv = [self.rewrite(a, name, vols) for a in self.argv(name, args)]
            inst = Instance(f"{name}-{i}", name, env, argv, d)
            log = open(d / "output.log", "ab")  # noqa: SIM115 - lives with the process
            inst.proc = subprocess.Popen(inst.argv, env=env, cwd=d, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            out.append(inst)
        self.instances.setdefault(name, []).extend(out)
        return out

    def healthy(self, name: str) -> bool:
        """The service's health check, run natively (all copies must pass)."""
        test = self.services[name]["healthcheck"]["test"]
        kind, rest = test[0], list(test[1:])
        if self.kafka is not None and name == "kafka":
            # the image's kafka-broker-api-versions.sh: a request to its --bootstrap-server
            from kafka import KafkaAdminClient

            (cmd,) = rest
            server = self.rewrite(cmd.split("--bootstrap-server ")[1].split()[0], name, {})
            try:
                KafkaAdminClient(bootstrap_servers=server, request_timeout_ms=3000).close()
                return True
            except Exception:  # noqa: BLE001 - not up yet
                return False
        if self.postgres is not None and name == "postgres":
            (cmd,) = rest
            argv = [str(self.pg_bin / "pg_isready"), *shlex.split(cmd)[1:], "-h", "127.0.0.1",
                    "-p", str(self.port(name, 5432))]
            return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
        return all(self.check(inst, kind, rest) == 0 for inst in self.instances.get(name, []))

    def check(self, inst: Instance, kind: str, rest: list[str]) -> int:
        vols = self._volumes(inst.service, inst.dir)
        rest = [self.rewrite(a, inst.service, vols) for a in rest]
        argv = rest if kind == "CMD" else ["/bin/sh", "-c", rest[0]]
        return subprocess.run(argv, env=inst.env, cwd=inst.dir, capture_output=True,
                              timeout=60).returncode

    def health_line(self, inst: Instance, *extra: str) -> subprocess.CompletedProcess:
        test = self.services[inst.service]["healthcheck"]["test"]
        return subprocess.run([*test[1:], *extra], env=inst.env, cwd=inst.dir,
                              capture_output=True, text=True, timeout=60)

    def wait(self, name: str, condition: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            insts = self.instances.get(name, [])
            if condition == "service_completed_successfully":
                if insts and all(i.proc is not None and i.proc.poll() is not None
                                 for i in insts):
                    bad = [i for i in insts if i.proc.returncode != 0]  # type: ignore[union-attr]
                    if bad:
                        raise RuntimeError(f"{bad[0].name} exited with "
                                           f"{bad[0].proc.returncode}:\n{bad[0].log[-3000:]}")  # type: ignore[union-attr]
                    return
            elif condition == "service_healthy":
                self.raise_if_exited(name)
                if self.healthy(name):
                    return
            else:
                return
            time.sleep(1.0)
        raise RuntimeError(f"{name}: not {condition} after {timeout:.0f} s:\n"
                           + "\n".join(i.log[-2000:] for i in self.instances.get(name, [])))

    def raise_if_exited(self, name: str) -> None:
        for i in self.instances.get(name, []):
            if i.proc is not None and i.proc.poll() is not None and "restart" in \
                    self.services[name] and self.services[name]["restart"] != "no":
                raise RuntimeError(f"{i.name} exited with {i.proc.returncode}:\n{i.log[-3000:]}")

    def up(self, timeout: float = 240.0) -> None:
        """Start every service without a profile, in ``depends_on`` order, waiting for each
        dependency's condition (like ``docker compose up``); then wait for all health checks."""
        todo = [n for n, s in self.services.items() if not s.get("profiles")]
        started: set[str] = set()
        while todo:
            ready = [n for n in todo if set(self.services[n].get("depends_on") or {}) <= started]
            if not ready:
                raise RuntimeError(f"depends_on cycle among {todo}")
            for name in ready:
                for dep, cond in (self.services[name].get("depends_on") or {}).items():
                    self.wait(dep, cond["condition"] if isinstance(cond, dict) else
                              "service_started", timeout)
                self.start(name)
                started.add(name)
                todo.remove(name)
        for name in started:
            if "healthcheck" in self.services[name]:
                self.wait(name, "service_healthy", timeout)

    def run(self, name: str, args: list[str] | None = None, timeout: float = 240.0
            ) -> Instance:
        """``docker compose run --rm NAME [ARGS]``: its dependencies' conditions, then one copy
        to completion (exit status 0 expected)."""
        for dep, cond in (self.services[name].get("depends_on") or {}).items():
            self.wait(dep, cond["condition"], timeout)
        (inst,) = self.start(name, args, copies=1)
        assert inst.proc is not None
        inst.proc.wait(timeout)
        return inst

    def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(self.instances)
        for n in names:
            for inst in self.instances.get(n, []):
                if inst.proc is not None and inst.proc.poll() is None:
                    os.killpg(inst.proc.pid, signal.SIGTERM)
            for inst in self.instances.get(n, []):
                if inst.proc is not None:
                    try:
                        inst.proc.wait(20)
                    except subprocess.TimeoutExpired:
                        os.killpg(inst.proc.pid, signal.SIGKILL)
                        inst.proc.wait(10)
        if name is None:
            if self.kafka is not None:
                self.kafka.stop()
            if self.postgres is not None:
                self.postgres.stop()
