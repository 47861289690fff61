"""Named leases in the alert store: one holder at a time, gone unless renewed.

``Lease(store, "deliver", holder, seconds)`` is how ``hotline deliver`` makes sure
one delivery worker per alert store forms and sends notifications: the worker
holding the lease renews it every ``seconds / 3``; a second worker finds it held
and waits as a standby, and takes over once the holder stops renewing (killed,
hung, network cut) and the lease has expired -- at most ``seconds`` later.

One atomic statement does acquire-or-renew on SQLite and PostgreSQL alike::

    INSERT ... ON CONFLICT (name) DO UPDATE SET holder, expires
        WHERE leases.holder = <me> OR leases.expires < <now>

followed by reading back who holds it. Clocks: ``expires`` is wall-clock time of
the machine that wrote it; workers on different hosts need clocks synchronised to
well below ``seconds`` (NTP gives milliseconds).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from hotline.errors import ConfigError

LEASE_SCHEMA_SQL = [
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL,
        acquired DOUBLE PRECISION NOT NULL)""",
]


def default_holder() -> str:
    """host:pid:random -- unique per process, readable in messages."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    """A named lease held by ``holder`` for ``seconds`` at a time (see module docstring)."""

    def __init__(self, store: Any, name: str, holder: str | None = None,
                 seconds: float = 15.0, clock: Callable[[], float] = time.time) -> None:
        if not seconds > 0:
            raise ConfigError(f"lease '{name}': seconds must be > 0, got {seconds}")
        self.store = store
        self.name = name
        self.holder = holder or default_holder()
        self.seconds = float(seconds)
        self.clock = clock
        self.current: tuple[str, float] | None = None  #: (holder, expires) as last read
        with store.transaction() as cur:
            for stmt in LEASE_SCHEMA_SQL:
                cur.execute(stmt)

    def acquire(self) -> bool:
        """Take or renew the lease; True if this holder has it now."""
        now = self.clock()
        ph = self.store.ph
        with self.store.transaction() as cur:
            cur.execute(
                f"INSERT INTO leases (name, holder, expires, acquired) VALUES ({ph}, {ph}, {ph}, "
                f"{ph}) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires = excluded.expires, acquired = CASE WHEN leases.holder = "
                "excluded.holder THEN leases.acquired ELSE excluded.acquired END "
                f"WHERE leases.holder = excluded.holder OR leases.expires < {ph}",
                (self.name, self.holder, now + self.seconds, now, now))
            cur.execute(f"SELECT holder, expires FROM leases WHERE name = {ph}", (self.name,))
            row = cur.fetchone()
        self.current = (str(row[0]), float(row[1])) if row else None
        return self.held

    @property
    def held(self) -> bool:
        return self.current is not None and self.current[0] == self.holder

    def release(self) -> None:
        """Give the lease up (only if this holder has it), so a standby takes over at once."""
        ph = self.store.ph
        with self.store.transaction() as cur:
            cur.execute(f"DELETE FROM leases WHERE name = {ph} AND holder = {ph}",
                        (self.name, self.holder))
        self.current = None

    def describe(self) -> str:
        """Who holds it and until when (for logs and the CLI)."""
        if self.current is None:
            return f"lease '{self.name}' is free"
        holder, expires = self.current
        who = "this worker" if holder == self.holder else holder
        return (f"lease '{self.name}' held by {who} until "
                f"{time.strftime('%H:%M:%S', time.localtime(expires))}")
