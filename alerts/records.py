"""Alert records and lumisection summaries: the immutable results of the pipeline.

``AlertRecord`` is one alert (versioned schema ``SCHEMA_VERSION``) with a stable
id: a hash of (source, run, lumisection, event, rule), so processing the same
data twice yields the same ids and the store keeps each alert once.
``LumiSummary`` counts what was seen in one (run, lumisection); summaries merge
with ``+`` so partial results from several batches or workers combine.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


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


@dataclass
class LumiSummary:
    """What one (source, run, lumisection) saw: events, bad events, alerts per rule."""

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
        for k, v in other.score_hist.items():
            hist[k] = [a + b for a, b in zip(hist[k], v)] if k in hist else list(v)
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
