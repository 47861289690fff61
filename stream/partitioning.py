"""Where ``hotline.events`` messages are cut and which partition each one goes to.

``[stream] partition_by`` (``HOTLINE_STREAM_PARTITION_BY``) chooses:

- ``"lumi"`` (default): a message holds events of one (run, lumisection) only, key
  ``"run:lumi"``, partition ``(run + lumi) mod partitions``. Consecutive lumisections of a
  run rotate over every partition, so N workers score *one* run in parallel, while each
  lumisection stays on one partition, in publication order (what per-lumisection state,
  such as a storm guard counting a rule's alerts in a lumisection, relies on).
- ``"run"``: key ``"run"``, Kafka's default key hash picks the partition: a whole run on one
  partition and one worker (the behaviour before lumisection keys); messages may span
  lumisections.
- ``"message"``: round robin, message by message (key ``"run:lumi"`` of its first event):
  the finest spread, for lumisections larger than one worker scores in a lumisection's
  time; a lumisection's messages then go to several workers, unordered between them.

Summaries are exact whichever is chosen: every message's per-lumisection summary is a
part with its own id (``stream.pipeline``), and the store adds each part once and merges
the parts of a lumisection (``AlertStore.add_summary_parts``). Alert ids do not depend on
the partition. If the partition count grows during a run, the lumisection being published
at that moment may continue on another partition (its summary stays exact).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hotline.errors import ConfigError
from hotline.stream.batch import EventBatch

#: the values of ``[stream] partition_by``
PARTITION_BY = ("lumi", "run", "message")


def check_partition_by(value: str) -> str:
    """``value`` when it is one of ``PARTITION_BY``; else a one-line ``ConfigError``."""
    if value not in PARTITION_BY:
        raise ConfigError(f"[stream] partition_by = {value!r}: expected one of "
                          f"{', '.join(PARTITION_BY)}")
    return value


@dataclass(frozen=True)
class Routed:
    """One message to send: its key, its partition (None: the key's hash decides), events."""

    key: bytes
    partition: int | None
    batch: EventBatch


def _segments(keys: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of equal consecutive values of ``keys``."""
    if keys.size == 0:
        return []
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    bounds = [0, *cuts.tolist(), int(keys.size)]
    return list(zip(bounds[:-1], bounds[1:], strict=False))


class Router:
    """Cuts batches into messages and routes them (``partition_by``, ``partitions``).

    One router per publishing producer: ``"message"`` round robin counts its messages.
    """

    def __init__(self, partition_by: str, partitions: int) -> None:
        self.by = check_partition_by(partition_by)
        if partitions < 1:
            raise ConfigError(f"hotline.events has {partitions} partitions; expected >= 1")
        self.partitions = partitions
        self.sent = 0

    def route(self, batch: EventBatch, events_per_message: int) -> Iterator[Routed]:
        """The messages of ``batch``, in order: at most ``events_per_message`` events each,
        one run each ("run", "message") or one (run, lumisection) each ("lumi")."""
        if len(batch) == 0:
            return
        run, lumi = batch.run, batch.lumi
        keys = run if self.by != "lumi" else (run << 32) | lumi
        for start, stop in _segments(keys):
            r, ls = int(run[start]), int(lumi[start])
            for a in range(start, stop, events_per_message):
                b = min(stop, a + events_per_message)
                piece = batch if (a == 0 and b == len(batch)) else EventBatch(
                    batch.arrays[a:b], batch.source, batch.origin, dict(batch.meta))
                yield self._routed(r, int(lumi[a]) if self.by == "message" else ls, piece)

    def _routed(self, run: int, lumi: int, piece: EventBatch) -> Routed:
        self.sent += 1
        if self.by == "run":
            return Routed(str(run).encode(), None, piece)
        key = f"{run}:{lumi}".encode()
        if self.by == "lumi":
            return Routed(key, (run + lumi) % self.partitions, piece)
        return Routed(key, (self.sent - 1) % self.partitions, piece)
