"""Exponential backoff: the one delay schedule every retry loop in Hotline uses.

``Backoff(first, cap)`` yields ``first, 2*first, 4*first, ...`` capped at ``cap`` seconds
(``next_delay()``), starts again after a success (``reset()``), and with ``jitter`` multiplies
each delay by a random factor in [0.5, 1) so that many clients retrying together spread out.
``Backoff.delay(attempts)`` is the same schedule as a pure function of the attempt count
(used where the attempt count is stored, e.g. per notification in the delivery log).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``first * 2**k`` seconds, at most ``cap``; optionally jittered."""

    first: float = 0.25
    cap: float = 4.0
    jitter: bool = False
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _attempts: int = field(default=0, init=False, repr=False)

    def delay(self, attempts: int) -> float:
        """The delay after ``attempts`` failed attempts (1 -> ``first``)."""
        d = min(self.cap, self.first * 2.0 ** max(attempts - 1, 0))
        return d * self.rng.uniform(0.5, 1.0) if self.jitter else d

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self._attempts += 1
        return self.delay(self._attempts)

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self._attempts = 0

    @property
    def attempts(self) -> int:
        return self._attempts


__all__ = ["Backoff"]
