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

A partial summary also carries its ``EventTally``: per distinct event, its number,
whether it was quarantined, which rules it passed and its bin in each score
histogram, plus its histogram bin codes (``EventBins``: pT, eta, phi of each object,
MET, HT, ...). The counts and the per-lumisection histograms (``LumiSummary.hists``)
of a summary with a tally are *derived* from it, so the same event seen twice (one
file given twice, two files sharing events, overlapping replays) is counted once: ``+``
unites tallies, and the store claims each (source, run, lumisection, event) once and
adds only the events it had not seen.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hotline.alerts.l1_agreement import L1Agreement, L1Tally
from hotline.detectors.event_histograms import EventBins, LumiHists
from hotline.errors import StreamError
from hotline.wire import array_of_b64, b64_of

SCHEMA_VERSION = 1
_MASK64 = (1 << 64) - 1


def alert_id(source: str, run: int, lumi: int, event: int, rule: str) -> str:
    """Stable alert id: 24 hex chars of sha256 over (source, run, ls, event, rule)."""
    key = f"{source}\x1f{int(run)}\x1f{int(lumi)}\x1f{int(event)}\x1f{rule}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def alert_ids(source: str, runs: Sequence[int], lumis: Sequence[int], events: Sequence[int],
              rule: str) -> list[str]:
    """``alert_id`` of every (run, lumisection, event) of one rule, computed for a whole batch
    (Python ints, e.g. from ``ndarray.tolist()``; the same ids as one ``alert_id`` each)."""
    sha = hashlib.sha256
    head, tail = f"{source}\x1f", f"\x1f{rule}"
    return [sha(f"{head}{r}\x1f{ls}\x1f{e}{tail}".encode()).hexdigest()[:24]
            for r, ls, e in zip(runs, lumis, events)]


def payload_json(payload: dict[str, Any]) -> str:
    """The one JSON text of an alert payload, as the store keeps it and the stream sends it
    (keys sorted; NaN refused)."""
    return json.dumps(payload, sort_keys=True, allow_nan=False, default=float)


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

    @classmethod
    def batch(
        cls, *, kind: str, rule: str, source: str, ids: Sequence[str], runs: Sequence[int],
        lumis: Sequence[int], events: Sequence[int], scores: Sequence[float | None],
        p_values: Sequence[float | None], payloads: Sequence[dict[str, Any] | None],
        payload_texts: Sequence[str | None], created: float,
    ) -> list[AlertRecord]:
        """The alerts of one rule on one batch, built together: the same records as ``make``
        for each (``ids`` from ``alert_ids``; Python ints and floats), each holding its
        payload's JSON text when given (``payload_texts``: ``payload_json`` of the payload,
        or None to build it on first use), so the store and the stream encode it once. A
        payload given as None (its text given) is parsed from the text when first read."""
        sig = [None if p is None else significance_from_p(p) for p in p_values]
        out = []
        new = object.__new__
        for i, run, lumi, event, score, p, z, payload, text in zip(
                ids, runs, lumis, events, scores, p_values, sig, payloads, payload_texts):
            rec = new(cls)  # the fields set directly: __init__ of a frozen dataclass is slow
            d = rec.__dict__
            d.update(id=i, kind=kind, rule=rule, source=source, run=run, lumi=lumi,
                     event=event, score=score, p_value=p, significance=z, created=created,
                     schema=SCHEMA_VERSION, _payload_json=text)
            if payload is not None or text is None:
                d["payload"] = payload or {}
            out.append(rec)
        return out

    def __getattr__(self, name: str) -> Any:
        """``payload`` of a record built from its JSON text alone (``batch``): parsed once,
        when first read."""
        if name == "payload":
            text = self.__dict__.get("_payload_json")
            if text is not None:
                payload = json.loads(text)
                object.__setattr__(self, "payload", payload)
                return payload
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def payload_json(self) -> str:
        """The payload as JSON text (``payload_json``), built once per record."""
        text = self.__dict__.get("_payload_json")
        if text is None:
            text = payload_json(self.payload)
            object.__setattr__(self, "_payload_json", text)
        return text

    def to_json(self) -> str:
        """The record as one JSON object, keys sorted (the payload's text reused)."""
        head = {f: getattr(self, f) for f in _FIELDS_BEFORE_PAYLOAD}
        tail = {f: getattr(self, f) for f in _FIELDS_AFTER_PAYLOAD}
        before = json.dumps(head, sort_keys=True, allow_nan=False, default=float)
        after = json.dumps(tail, sort_keys=True, allow_nan=False, default=float)
        return f'{before[:-1]}, "payload": {self.payload_json}, {after[1:]}'

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertRecord:
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


_FIELDS = sorted(AlertRecord.__dataclass_fields__)
_FIELDS_BEFORE_PAYLOAD = [f for f in _FIELDS if f < "payload"]
_FIELDS_AFTER_PAYLOAD = [f for f in _FIELDS if f > "payload"]


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



#: bin index of an event that was not scored by a score rule (quarantined)
NO_BIN = 255

#: score histograms in summaries: log10(score) in [SCORE_LOG_MIN, SCORE_LOG_MAX), SCORE_BINS bins,
#: plus an underflow (first) and overflow (last) bin
SCORE_LOG_MIN, SCORE_LOG_MAX, SCORE_BINS = -4.0, 4.0, 80


def score_bin_edges() -> np.ndarray:
    """The SCORE_BINS + 1 edges (in score units, not log) of the regular bins of every
    ``LumiSummary.score_hist`` (underflow below the first, overflow above the last)."""
    return np.logspace(SCORE_LOG_MIN, SCORE_LOG_MAX, SCORE_BINS + 1)


def _unb64(text: Any, dtype: Any, n: int, what: str) -> np.ndarray:
    return array_of_b64(text, dtype, n, f"event tally {what}", per="events")


@dataclass(frozen=True, eq=False)
class EventTally:
    """Per distinct event of one (source, run, lumisection) part: what the summary counts.

    ``events``: sorted unique event numbers (int64); ``bad``: quarantined; ``hits[rule]``:
    the (good) event passed the rule; ``bins[rule]``: the event's bin in that score rule's
    histogram of ``n_bins`` bins, ``NO_BIN`` when it was not scored. Rules absent from
    ``hits`` / ``bins`` were unavailable for these events. ``hist``: the events' histogram
    bin codes (same order), or None (no histograms). Build with ``EventTally.build``
    (which keeps the first occurrence of a repeated event number).
    """

    events: np.ndarray
    bad: np.ndarray
    hits: dict[str, np.ndarray] = field(default_factory=dict)
    bins: dict[str, np.ndarray] = field(default_factory=dict)
    n_bins: int = 0
    #: firmware vs serving scores of the emulated events (``alerts.l1_agreement.L1Tally``)
    l1: Any = None
    hist: EventBins | None = None

    @classmethod
    def build(cls, events: Any, bad: Any, hits: dict[str, Any] | None = None,
              bins: dict[str, Any] | None = None, n_bins: int = 0,
              hist: EventBins | None = None) -> EventTally:
        """The tally of ``events`` (any order, repeats allowed: the first occurrence counts)."""
        ev = np.asarray(events, dtype=np.int64).ravel()
        uniq, first = np.unique(ev, return_index=True)
        return cls(uniq, np.asarray(bad, dtype=bool)[first],
                   {r: np.asarray(m, dtype=bool)[first] for r, m in (hits or {}).items()},
                   {r: np.asarray(b, dtype=np.uint8)[first] for r, b in (bins or {}).items()},
                   int(n_bins), hist=None if hist is None else hist.take(first))

    def __len__(self) -> int:
        return int(self.events.size)

    def take(self, idx: np.ndarray) -> EventTally:
        """The tally of the events at positions ``idx`` (sorted order kept)."""
        return EventTally(self.events[idx], self.bad[idx],
                          {r: m[idx] for r, m in self.hits.items()},
                          {r: b[idx] for r, b in self.bins.items()}, self.n_bins,
                          None if self.l1 is None else self.l1.only(self.events[idx]),
                          None if self.hist is None else self.hist.take(idx))

    def only(self, events: Any) -> EventTally:
        """The tally restricted to the event numbers in ``events``."""
        return self.take(np.isin(self.events, np.asarray(events, dtype=np.int64)))

    def union(self, other: EventTally) -> EventTally:
        """Both tallies' events once each; an event in both keeps its entry of ``self``."""
        if not len(other):
            return self if other.l1 is None else replace(self, l1=_l1_union(self.l1, other.l1))
        if not len(self):
            return other if self.l1 is None else replace(other, l1=_l1_union(self.l1, other.l1))

        def cat(a: dict[str, np.ndarray], b: dict[str, np.ndarray], fill: Any,
                dtype: Any) -> dict[str, np.ndarray]:
            out = {}
            for r in dict.fromkeys([*a, *b]):
                x = a.get(r, np.full(len(self), fill, dtype=dtype))
                y = b.get(r, np.full(len(other), fill, dtype=dtype))
                out[r] = np.concatenate([x, y])
            return out

        hist = None
        if self.hist is not None or other.hist is not None:
            some = self.hist if self.hist is not None else other.hist
            assert some is not None
            book = some.book
            mine = self.hist if self.hist is not None else EventBins.empty(book, len(self))
            theirs = other.hist if other.hist is not None else EventBins.empty(book,
                                                                                len(other))
            hist = mine.concat(theirs)
        both = EventTally(np.concatenate([self.events, other.events]),
                          np.concatenate([self.bad, other.bad]),
                          cat(self.hits, other.hits, False, bool),
                          cat(self.bins, other.bins, NO_BIN, np.uint8),
                          max(self.n_bins, other.n_bins), hist=hist)
        _, first = np.unique(both.events, return_index=True)  # sorted; first: self's entry
        return replace(both.take(first), l1=_l1_union(self.l1, other.l1))

    def counts(self) -> tuple[int, int, dict[str, int], dict[str, list[int]]]:
        """(events, quarantined events, hits per rule, score histogram per score rule)."""
        hist = {}
        for r, b in self.bins.items():
            hist[r] = np.bincount(b[b != NO_BIN], minlength=self.n_bins).tolist()
        return (len(self), int(self.bad.sum()), {r: int(m.sum()) for r, m in self.hits.items()},
                hist)

    def to_wire(self) -> dict[str, Any]:
        """JSON-able form: little-endian arrays, base64-encoded (bit-packed flags)."""
        return {
            "n": len(self), "n_bins": self.n_bins,
            "events": b64_of(self.events.astype("<i8")),
            "bad": b64_of(np.packbits(self.bad)),
            "hits": {r: b64_of(np.packbits(m)) for r, m in self.hits.items()},
            "bins": {r: b64_of(b) for r, b in self.bins.items()},
            **({"l1": self.l1.to_wire()} if self.l1 is not None else {}),
            **({"hist": self.hist.to_wire()} if self.hist is not None else {}),
        }

    @classmethod
    def from_wire(cls, d: Any) -> EventTally:
        """Inverse of ``to_wire``; ``StreamError`` naming what is malformed."""
        if not isinstance(d, dict):
            raise StreamError("event tally is not a JSON object")
        n, n_bins = d.get("n"), d.get("n_bins", 0)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise StreamError(f"event tally count {n!r} is not a non-negative integer")
        if not isinstance(n_bins, int) or isinstance(n_bins, bool) or not 0 <= n_bins < NO_BIN:
            raise StreamError(f"event tally n_bins {n_bins!r} is not an integer in [0, {NO_BIN})")
        packed = (n + 7) // 8
        events = _unb64(d.get("events"), "<i8", n, "events").astype(np.int64)
        if n and np.any(events[1:] <= events[:-1]):
            raise StreamError("event tally events are not sorted and unique")

        def flags(text: Any, what: str) -> np.ndarray:
            return np.unpackbits(_unb64(text, np.uint8, packed, what), count=n).astype(bool)

        hits, bins = d.get("hits", {}), d.get("bins", {})
        if not isinstance(hits, dict) or not isinstance(bins, dict):
            raise StreamError("event tally hits / bins are not JSON objects")
        out_bins = {}
        for r, text in bins.items():
            b = _unb64(text, np.uint8, n, f"bins of {r!r}").copy()
            if np.any((b >= n_bins) & (b != NO_BIN)):
                raise StreamError(f"event tally bins of {r!r} exceed n_bins {n_bins}")
            out_bins[str(r)] = b
        l1 = None
        if d.get("l1") is not None:
            l1 = L1Tally.from_wire(d["l1"])
        hist = d.get("hist")
        return cls(events, flags(d.get("bad"), "bad"),
                   {str(r): flags(t, f"hits of {r!r}") for r, t in hits.items()},
                   out_bins, n_bins, l1,
                   None if hist is None else EventBins.from_wire(hist, n))


def _l1_union(a: Any, b: Any) -> Any:
    """Union of two optional ``L1Tally`` (None when both are)."""
    if a is None:
        return b
    return a.union(b)

@dataclass
class LumiSummary:
    """What one (source, run, lumisection) saw: events, bad events, alerts per rule.

    ``part``: the part id of a partial summary (``EventSet.part_id``), or None for a
    merged / whole summary (``a + b`` has none) and for records of older writers.
    ``tally``: the per-event tally the counts derive from (``of_tally``), or None for a
    stored whole summary and for records of older writers; ``+`` of two summaries
    with tallies unites them (an event seen in both is counted once). ``hists``: the
    lumisection's histograms (``LumiHists``, derived from the tally's bin codes), or None
    (no histograms, an older writer's, or a summary read without them).
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
    tally: EventTally | None = field(default=None, repr=False, compare=False)
    #: firmware vs serving agreement (``alerts.l1_agreement.L1Agreement``), None: not emulated
    l1: Any = field(default=None, repr=False, compare=False)
    hists: LumiHists | None = field(default=None, repr=False)

    @classmethod
    def of_tally(cls, source: str, run: int, lumi: int, tally: EventTally,
                 unavailable: set[str] | None = None, first_seen: float | None = None,
                 last_seen: float | None = None, part: str | None = None) -> LumiSummary:
        """The summary whose counts are those of ``tally``."""
        n, bad, counts, hist = tally.counts()
        now = time.time()
        l1 = tally.l1.aggregate() if tally.l1 is not None and len(tally.l1) else None
        return cls(source, int(run), int(lumi), n, bad, counts, set(unavailable or ()), hist,
                   now if first_seen is None else first_seen,
                   now if last_seen is None else last_seen, part, tally, l1,
                   None if tally.hist is None else tally.hist.hists())

    def only(self, events: Any) -> LumiSummary:
        """This (tallied) summary restricted to the event numbers ``events``, no part id."""
        if self.tally is None:
            raise ValueError("only a summary with a tally can be restricted to some events")
        return LumiSummary.of_tally(self.source, self.run, self.lumi, self.tally.only(events),
                                    self.unavailable, self.first_seen, self.last_seen)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.source, self.run, self.lumi)

    def __add__(self, other: LumiSummary) -> LumiSummary:
        if self.key != other.key:
            raise ValueError(f"cannot merge summaries of {self.key} and {other.key}")
        first = min(self.first_seen, other.first_seen)
        last = max(self.last_seen, other.last_seen)
        unavailable = self.unavailable | other.unavailable
        if self.tally is not None and other.tally is not None:
            return LumiSummary.of_tally(self.source, self.run, self.lumi,
                                        self.tally.union(other.tally), unavailable, first, last)
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
            unavailable,
            hist,
            first,
            last,
            l1=other.l1 if self.l1 is None else self.l1 + other.l1,
            hists=_add_hists(self.hists, other.hists),
        )

    def to_dict(self, tally: bool = False) -> dict[str, Any]:
        """JSON-able fields; the tally (wire form) only when ``tally`` is True."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__
             if f not in ("tally", "l1", "hists")}
        d["rule_counts"] = dict(self.rule_counts)
        d["score_hist"] = {k: list(v) for k, v in self.score_hist.items()}
        d["unavailable"] = sorted(self.unavailable)
        if d["part"] is None:  # whole summaries keep the layout they always had
            del d["part"]
        if tally and self.tally is not None:
            d["tally"] = self.tally.to_wire()  # the histograms travel as its bin codes
        elif self.hists is not None:
            d["hists"] = self.hists.to_wire()
        if self.l1 is not None:  # only summaries of an emulated stream have it
            d["l1"] = self.l1.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LumiSummary:
        d = dict(d)
        d["unavailable"] = set(d.get("unavailable", ()))
        wire = d.pop("tally", None)
        l1 = d.pop("l1", None)
        if l1 is not None:
            d["l1"] = L1Agreement.from_dict(l1)
        hists = d.pop("hists", None)
        s = cls(**d)
        if hists is not None:
            s.hists = LumiHists.from_wire(hists)
        if wire is not None:
            t = EventTally.from_wire(wire)
            s = cls.of_tally(s.source, s.run, s.lumi, t, s.unavailable, s.first_seen,
                             s.last_seen, s.part)
        return s


def _add_hists(a: LumiHists | None, b: LumiHists | None) -> LumiHists | None:
    """``a + b``; histograms of different books (or layouts) do not merge: None."""
    if a is None or b is None:
        return a if b is None else b
    try:
        return a + b
    except ValueError:
        return None


def deadletter_id(source: str, origin: str, reason: str, run: int | None, lumi: int | None,
                  events: tuple[int, ...]) -> str:
    """Stable dead-letter id: 24 hex chars of sha256 over (source, origin, reason, run,
    lumisection, sorted event numbers); the same failure of the same input has the same id."""
    evs = ",".join(str(int(e)) for e in sorted(events))
    key = (f"{source}\x1f{origin}\x1f{reason}\x1f{'' if run is None else int(run)}"
           f"\x1f{'' if lumi is None else int(lumi)}\x1f{evs}")
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class DeadLetter:
    """Something that could not be decoded, read or scored, with the reason; never dropped.

    ``id`` is stable (``deadletter_id``: not the time, not the payload), so the same
    failure written twice - a re-replay, a re-read Kafka record - is stored once.
    ``resolved`` (a time) and ``resolution`` (what fixed it) are set by the store once the
    input was re-driven successfully (``hotline deadletters --redrive``); None while open.
    """

    source: str
    origin: str
    reason: str
    run: int | None = None
    lumi: int | None = None
    events: tuple[int, ...] = ()
    payload: bytes | None = None
    created: float = field(default_factory=time.time)
    resolved: float | None = None
    resolution: str | None = None

    @property
    def id(self) -> str:
        return deadletter_id(self.source, self.origin, self.reason, self.run, self.lumi,
                             self.events)
