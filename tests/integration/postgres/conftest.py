"""A real PostgreSQL 15 server for the session, from Debian's binaries, on a free 127.0.0.1 port.

``initdb`` / ``pg_ctl`` refuse to run as root, so as root they run as the
``postgres`` user (``runuser``) in a temp dir owned by it. Each test gets a fresh
database (``pg_url``). Without the binaries the tests skip with a hint, except
in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import IN_CI

PG_BIN = Path(os.environ.get("HOTLINE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_pg(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PostgresServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)

    def start(self) -> PostgresServer:
        run = dict(check=True, capture_output=True, text=True, timeout=120)
        subprocess.run(_as_pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                               "-U", "postgres", "-E", "UTF8", "--no-sync"]), **run)
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        subprocess.run(_as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts,
                               "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start"]),
                       **run)
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self) -> str:
        import psycopg

        name = f"hotline_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(_as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                               "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    server = PostgresServer()
    try:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"{PG_BIN}/initdb not found (apt-get install postgresql)")
        server.start()
    except Exception as exc:  # noqa: BLE001
        detail = getattr(exc, "stderr", "") or ""
        server.stop()
        if IN_CI:
            pytest.fail(f"PostgreSQL server could not start in CI: {exc} {detail}")
        pytest.skip(f"no PostgreSQL server ({exc} {detail}); install Debian's postgresql")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.create_database()


def shared_store_tests(module: object) -> list[str]:
    """Names of the tests of a unit-test ``module`` that take only a ``store``: the suites
    run on both backends through ``any_store``."""
    import inspect

    return sorted(name for name, fn in vars(module).items()
                  if name.startswith("test_") and list(inspect.signature(fn).parameters)
                  == ["store"])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh alert store on each backend: a real SQLite file, a real PostgreSQL database."""
    from hotline.alerts.backends import open_store
    from hotline.alerts.store import SQLiteAlertStore

    if request.param == "sqlite":
        s = SQLiteAlertStore(tmp_path / "alerts.db")
    else:
        s = open_store(request.getfixturevalue("pg_url"))
    yield s
    s.close()
