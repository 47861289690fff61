"""Alert records and lumisection summaries: the immutable results of the pipeline.

``AlertRecord`` is one alert (versioned schema ``SCHEMA_VERSION``) with a stable
id: a hash of (source, run, lumisection, event, rule), so processing the same
data twice yields the same ids and the store keeps each alert once.
``LumiSummary`` counts what was seen in one (run, lumisection); summaries merge
with ``+`` so partial results from several batches or workers combine. A partial
summary carries a ``part`` id: a hash of (source, run, lumisection, ``EventSet``
of its events), so the same events summarised twice (a re-processed batch, a
re-read record, a second replay) give the same part id and the store adds each
part once (``AlertStore.add_summary_parts``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
_MASK64 = (1 << 64) - 1


def alert_id(source: str, run: int, lumi: int, event: int, rule: str) -> str:
    """Stable alert id: 24 hex chars of sha256 over (source, run, ls, event, rule)."""
    key = f"{source}\x1f{int(run)}\x1f{int(lumi)}\x1f{int(event)}\x1f{rule}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def significance_from_p(p: float | None) -> float | None:
    """One-sided Gaussian significance Z for a p-value (None when p is None)."""
    if p is None or not (p > 0):
        return None if p is None else math.inf
    from statistics import NormalDist

    return float(-NormalDist().inv_cdf(min(max(p, 1e-300), 1 - 1e-16)))


@dataclass(frozen=True)
class AlertRecord:
    """One hotline alert. ``kind``: classic | ae | dqm. ``payload``: objects, contributions..."""

    id: str
    kind: str
    rule: str
    source: str
    run: int
    lumi: int
    event: int
    score: float | None = None
    p_value: float | None = None
    significance: float | None = None
    created: float = field(default_factory=time.time)
    payload: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @classmethod
    def make(
        cls,
        *,
        kind: str,
        rule: str,
        source: str,
        run: int,
        lumi: int,
        event: int,
        score: float | None = None,
        p_value: float | None = None,
        payload: dict[str, Any] | None = None,
        created: float | None = None,
    ) -> AlertRecord:
        return cls(
            id=alert_id(source, run, lumi, event, rule),
            kind=kind,
            rule=rule,
            source=source,
            run=int(run),
            lumi=int(lumi),
            event=int(event),
            score=None if score is None else float(score),
            p_value=None if p_value is None else float(p_value),
            significance=significance_from_p(p_value),
            created=time.time() if created is None else float(created),
            payload=payload or {},
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False, default=float)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertRecord:
        from hotline.errors import StreamError

        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise StreamError(
                f"alert record schema version {schema!r} is not supported "
                f"(this Hotline reads version {SCHEMA_VERSION})"
            )
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise StreamError(f"alert record has unknown fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise StreamError(f"alert record is incomplete: {exc}") from None


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of each value (uint64 arithmetic, wrapping)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class EventSet:
    """Identity of the events of one lumisection in a batch: count, min / max event
    number and an order-free digest (sum mod 2**64 of a 64-bit mix of each number).

    ``a + b`` is the identity of the union of two disjoint sets, so the identity of a
    whole lumisection does not depend on how its events were cut into batches.
    """

    n: int = 0
    lo: int = 0
    hi: int = 0
    digest: int = 0

    @classmethod
    def of(cls, events: Any) -> EventSet:
        ev = np.asarray(events, dtype=np.int64).ravel()
        if ev.size == 0:
            return cls()
        mixed = _mix64(ev.astype(np.uint64))
        return cls(int(ev.size), int(ev.min()), int(ev.max()),
                   int(np.add.reduce(mixed, dtype=np.uint64)))

    def __add__(self, other: EventSet) -> EventSet:
        if not self.n:
            return other
        if not other.n:
            return self
        return EventSet(self.n + other.n, min(self.lo, other.lo), max(self.hi, other.hi),
                        (self.digest + other.digest) & _MASK64)

    def part_id(self, source: str, run: int, lumi: int) -> str:
        """The part id of a summary of these events: 24 hex chars of sha256."""
        key = (f"{source}\x1f{int(run)}\x1f{int(lumi)}\x1f{self.n}\x1f{self.lo}\x1f{self.hi}"
               f"\x1f{self.digest:016x}")
        return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass
class LumiSummary:
    """What one (source, run, lumisection) saw: events, bad events, alerts per rule.

    ``part``: the part id of a partial summary (``EventSet.part_id``), or None for a
    merged / whole summary (``a + b`` has none) and for records of older writers.
    """

    source: str
    run: int
    lumi: int
    n_events: int = 0
    n_bad: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)
    score_hist: dict[str, list[int]] = field(default_factory=dict)
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    part: str | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.source, self.run, self.lumi)

    def __add__(self, other: LumiSummary) -> LumiSummary:
        if self.key != other.key:
            raise ValueError(f"cannot merge summaries of {self.key} and {other.key}")
        counts = dict(self.rule_counts)
        for k, v in other.rule_counts.items():
            counts[k] = counts.get(k, 0) + v
        hist = {k: list(v) for k, v in self.score_hist.items()}
        for k, bins in other.score_hist.items():
            hist[k] = [a + b for a, b in zip(hist[k], bins)] if k in hist else list(bins)
        return LumiSummary(
            self.source,
            self.run,
            self.lumi,
            self.n_events + other.n_events,
            self.n_bad + other.n_bad,
            counts,
            self.unavailable | other.unavailable,
            hist,
            min(self.first_seen, other.first_seen),
            max(self.last_seen, other.last_seen),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unavailable"] = sorted(self.unavailable)
        if d["part"] is None:  # whole summaries keep the layout they always had
            del d["part"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LumiSummary:
        d = dict(d)
        d["unavailable"] = set(d.get("unavailable", ()))
        return cls(**d)


@dataclass(frozen=True)
class DeadLetter:
    """Something that could not be decoded, read or scored, with the reason; never dropped."""

    source: str
    origin: str
    reason: str
    run: int | None = None
    lumi: int | None = None
    events: tuple[int, ...] = ()
    payload: bytes | None = None
    created: float = field(default_factory=time.time)
