"""hotline.backoff: the one delay schedule of every retry loop."""

from __future__ import annotations

import random

from hotline.backoff import Backoff


def test_doubles_up_to_the_cap_and_resets():
    b = Backoff(0.25, 1.5)
    assert [b.next_delay() for _ in range(5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert b.attempts == 5
    b.reset()
    assert b.next_delay() == 0.25


def test_jitter_stays_within_half_to_full_delay():
    b = Backoff(1.0, 300.0, jitter=True, rng=random.Random(3))
    for attempts in range(1, 12):
        full = min(300.0, 2.0 ** (attempts - 1))
        assert 0.5 * full <= b.delay(attempts) < full
