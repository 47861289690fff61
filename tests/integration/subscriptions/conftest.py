"""Fixtures for subscription delivery tests: real webhook receivers, stores with subscriptions."""

from __future__ import annotations

import pytest

from tests.integration.subscriptions.receivers import Receiver


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def make(secret: str, **kw) -> Receiver:
        r = Receiver(secret, **kw)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
