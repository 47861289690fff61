"""Kafka-client log lines during a broker outage: one WARNING per backoff step."""

from __future__ import annotations

import logging

from hotline.stream.log_throttle import BrokerLogThrottle, install


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def emit(logger: logging.Logger, clock: Clock, seconds: float, every: float = 0.05) -> None:
    for _ in range(round(seconds / every)):
        logger.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
        clock.t += every


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()


def test_outage_of_a_minute_logs_a_handful_of_warnings():
    clock = Clock()
    throttle = BrokerLogThrottle(clock=clock, max_step=30.0, reset_after=10.0)
    caplog = Collect()
    caplog.addFilter(throttle)
    # the two loggers hand their records to this handler only: a throttle another test (or
    # a command run in-process) left on the root logger's handlers must not see them first
    client = logging.getLogger("aiokafka.client")
    ours = logging.getLogger("hotline.stream.agents")
    saved = [(lg, lg.propagate, lg.level) for lg in (client, ours)]
    for lg in (client, ours):
        lg.addHandler(caplog)
        lg.propagate = False
        lg.setLevel(logging.INFO)
    try:
        emit(client, clock, 60.0)  # 1,200 ERROR lines in a minute of outage
        ours.warning("dead letter from x")  # not a client line: untouched
        client.info("Discovered coordinator 1")  # INFO passes
        passed = [r for r in caplog.records if r.name == "aiokafka.client" and
                  r.levelno >= logging.WARNING]
        assert 5 <= len(passed) <= 8, [r.getMessage() for r in passed]
        assert all(r.levelname == "WARNING" for r in passed)
        assert "suppressed" in passed[1].getMessage()
        total = sum(int(r.getMessage().split("[")[1].split()[0]) for r in passed[1:])
        assert total + throttle.suppressed + len(passed) == 1200  # every line accounted for
        assert any(r.getMessage() == "dead letter from x" for r in caplog.records)
        assert any(r.getMessage() == "Discovered coordinator 1" for r in caplog.records)
        # a quiet spell ends the outage: the next one starts with short steps again
        clock.t += 20
        caplog.clear()
        emit(client, clock, 3.0)
        assert len(caplog.records) == 2  # at 0 s and after the first 1 s step
    finally:
        for lg, propagate, level in saved:
            lg.removeHandler(caplog)
            lg.propagate, lg.level = propagate, level


def test_install_is_idempotent_and_shared():
    logger = logging.getLogger("hotline-test-throttle")
    h1, h2 = logging.StreamHandler(), logging.StreamHandler()
    logger.addHandler(h1)
    logger.addHandler(h2)
    try:
        t = install(logger)
        assert install(logger) is t
        assert h1.filters == [t] and h2.filters == [t]
    finally:
        logger.removeHandler(h1)
        logger.removeHandler(h2)
