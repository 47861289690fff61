"""Broker-outage logging: repeated Kafka-client lines collapsed into one WARNING per backoff step.

While the broker is down, the Kafka clients log every failed reconnect and every
failed request: aiokafka (the faust worker) ~2 ERROR lines per 100 ms per
connection, kafka-python (sink, producer, admin) one per attempt. Those lines
say one thing - the broker is unreachable - and would fill the disk (GB per
hour of outage). ``BrokerLogThrottle`` is a ``logging.Filter`` for the handlers:
records of the client loggers (``aiokafka``, ``kafka``, ``faust.transport``) at
WARNING or above pass at most once per backoff step (1 s, then doubling up to
``max_step``, back to 1 s after ``reset_after`` s without such records), as a
WARNING that says how many lines were suppressed since the previous one. So an
outage of N seconds logs at most ~log2(N) + N / ``max_step`` lines of them,
far under one per second; every other record passes untouched.

``install(logger)`` adds one shared throttle to each handler of ``logger`` (the
root logger by default) - idempotent, so it can be called again after a
framework has replaced the handlers (faust's worker does, see
``stream.faust_app.make_worker``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

#: loggers whose repeated lines are throttled (and their children)
CLIENT_LOGGERS = ("aiokafka", "kafka", "faust.transport")


class BrokerLogThrottle(logging.Filter):
    """At most one Kafka-client WARNING/ERROR line per backoff step (module docstring)."""

    def __init__(
        self,
        loggers: tuple[str, ...] = CLIENT_LOGGERS,
        first_step: float = 1.0,
        max_step: float = 30.0,
        reset_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.loggers = loggers
        self.first_step, self.max_step, self.reset_after = first_step, max_step, reset_after
        self.clock = clock
        self._lock = threading.Lock()
        self._step = first_step
        self._next = float("-inf")  #: when the next line may pass
        self._last_seen = float("-inf")
        self._last_pass = float("-inf")
        self.suppressed = 0  #: lines suppressed since the last one that passed
        self.total_suppressed = 0

    def _is_client(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        # the same record seen by a second handler of this throttle: the same decision (a
        # record another throttle decided on is decided afresh: throttles never share state)
        seen = getattr(record, "_hotline_throttle", None)
        if seen is not None and seen[0] is self:
            return bool(seen[1])
        if record.levelno < logging.WARNING or not self._is_client(record.name):
            return True
        with self._lock:
            now = self.clock()
            if now - self._last_seen > self.reset_after:  # a new outage: short steps again
                self._step = self.first_step
                self._next = float("-inf")
            self._last_seen = now
            if now < self._next:
                self.suppressed += 1
                self.total_suppressed += 1
                record._hotline_throttle = (self, False)
                return False
            n, since = self.suppressed, now - self._last_pass
            self.suppressed = 0
            self._last_pass = now
            self._next = now + self._step
            step = self._step
            self._step = min(self._step * 2, self.max_step)
        text = record.getMessage()
        note = f"next Kafka client errors are summarised after {step:g} s"
        if n:
            note = f"{n} similar Kafka client lines suppressed in the last {since:.0f} s; " + note
        # the text only: the traceback of a refused connection says nothing new, every step
        record.msg, record.args = f"{text} [{note}]", ()
        record.exc_info = record.exc_text = record.stack_info = None
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record._hotline_throttle = (self, True)
        return True


def install(logger: logging.Logger | None = None,
            throttle: BrokerLogThrottle | None = None) -> BrokerLogThrottle:
    """Add one ``BrokerLogThrottle`` to every handler of ``logger`` (root by default);
    handlers that already have one keep theirs. Returns the throttle in use."""
    logger = logger or logging.getLogger()
    for h in logger.handlers:
        for f in h.filters:
            if isinstance(f, BrokerLogThrottle):
                throttle = throttle or f
    throttle = throttle or BrokerLogThrottle()
    for h in logger.handlers:
        if not any(isinstance(f, BrokerLogThrottle) for f in h.filters):
            h.addFilter(throttle)
    return throttle
