"""The storm guard: per rule and lumisection, alerts in full up to a threshold, then a sample.

``StormGuard(threshold, sample_every)`` is applied by ``stream.pipeline.process_batch``
between the rules and the alert records, on the embedded and the distributed path alike.
For each (source, run, lumisection, rule) it counts the alerts it has let through, in the
order the events arrive (publication order: one lumisection stays on one partition,
``stream.partitioning``). What is kept, exactly:

- the summaries count every alerting event of every rule (``LumiSummary.rule_counts``:
  exact, whatever the guard does);
- the first ``threshold`` alerts of a rule in a lumisection are alerts in full (objects,
  contributions), as without a guard;
- beyond it, an alert is kept in full when it is in the deterministic sample: 1 in
  ``sample_every`` by a 64-bit hash of (run, lumisection, event, rule) (``in_sample``), the
  same whichever path, worker or order scores the event;
- every other alert beyond the threshold is *listed* in a ``StormRecord`` of that batch:
  its event number, score and p-value (arrays), not its objects. So no alert is dropped
  without a trace: the store keeps the storm records, and a subscription that opts out of
  the guard (``DeliverySettings.storm_guard = false``) gets those alerts as records built
  from that list (``StormRecord.listed_alerts``: same ids, no objects payload).

One ``StormRecord`` is made per (batch, rule, lumisection) where the guard listed alerts;
``seen`` is the guard's running count of the rule's alerts in the lumisection, ``kept`` and
``listed`` split the batch's alerts past the threshold. Its ``part`` id hashes (source, run,
lumisection, rule, listed events), so a batch processed twice gives the same part.

The count lives in the process (a worker, a replay). A worker restarted in the middle of a
lumisection starts counting again from the first message it re-reads, so it may keep up to
``threshold`` more alerts of that lumisection in full: more than an uninterrupted run, never
fewer (nothing the uninterrupted run keeps is then only listed, because the sample does not
depend on the count). The state is bounded: the least recently used lumisections beyond
``max_keys`` are forgotten (a lumisection that comes back counts from zero again).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hotline.alerts.records import AlertRecord, alert_ids, significance_from_p
from hotline.errors import ConfigError, StreamError
from hotline.wire import array_of_b64, b64_of

STORM_SCHEMA_VERSION = 1
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        z = x + _K1
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _rule_seed(rule: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(rule.encode()).digest()[:8], "little"))


def in_sample(run: np.ndarray, lumi: np.ndarray, event: np.ndarray, rule: str,
              sample_every: int) -> np.ndarray:
    """True for the events in the guard's deterministic 1-in-``sample_every`` sample of
    ``rule`` (a hash of run, lumisection, event and rule; 0 or 1: every event)."""
    if sample_every <= 1:
        return np.ones(np.shape(event), dtype=bool)
    with np.errstate(over="ignore"):
        ls = (np.asarray(run, np.uint64) << np.uint64(32)) | np.asarray(lumi, np.uint64)
        x = _mix64(np.asarray(event, np.uint64) * _K1 ^ _mix64(ls * _K2) ^ _rule_seed(rule))
    return (x % np.uint64(sample_every)) == 0


def _unb64(text: Any, dtype: str, n: int, what: str) -> np.ndarray:
    return array_of_b64(text, dtype, n, f"storm record field {what!r}", per="alerts")


@dataclass(frozen=True, eq=False)
class StormRecord:
    """One batch's alerts of one rule in one lumisection that the guard listed (module
    docstring). ``events`` / ``scores`` / ``p_values``: the listed alerts (NaN: none)."""

    source: str
    run: int
    lumi: int
    rule: str
    kind: str
    threshold: int
    sample_every: int
    seen: int  #: the guard's running count of the rule's alerts in the lumisection
    kept: int  #: alerts of this batch past the threshold kept in full (the sample)
    events: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    p_values: np.ndarray = field(repr=False)
    created: float = 0.0

    @property
    def listed(self) -> int:
        return int(self.events.size)

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.source, self.run, self.lumi, self.rule)

    @property
    def part(self) -> str:
        """24 hex chars of sha256 over (source, run, lumisection, rule, listed events)."""
        h = hashlib.sha256(f"{self.source}\x1f{self.run}\x1f{self.lumi}\x1f{self.rule}\x1f"
                           .encode())
        h.update(np.sort(self.events.astype("<i8")).tobytes())
        return h.hexdigest()[:24]

    def describe(self) -> str:
        return (f"storm on rule {self.rule} in run {self.run} LS {self.lumi}: "
                f"{self.seen} alerts so far, {self.listed} listed here")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (arrays little-endian, base64)."""
        return {"storm": STORM_SCHEMA_VERSION, "source": self.source, "run": self.run,
                "lumi": self.lumi, "rule": self.rule, "kind": self.kind,
                "threshold": self.threshold, "sample_every": self.sample_every,
                "seen": self.seen, "kept": self.kept, "n": self.listed,
                "events": b64_of(self.events, "<i8"), "scores": b64_of(self.scores, "<f8"),
                "p_values": b64_of(self.p_values, "<f8"), "created": self.created}

    @classmethod
    def from_dict(cls, d: Any) -> StormRecord:
        """Inverse of ``to_dict``; ``StreamError`` naming the malformed field."""
        if not isinstance(d, dict):
            raise StreamError("storm record is not a JSON object")
        if d.get("storm") != STORM_SCHEMA_VERSION:
            raise StreamError(f"storm record schema version {d.get('storm')!r} is not "
                              f"supported (this Hotline reads {STORM_SCHEMA_VERSION})")
        for name in ("source", "rule", "kind"):
            if not isinstance(d.get(name), str) or not d[name]:
                raise StreamError(f"storm record field {name!r} must be a non-empty string")
        for name in ("run", "lumi", "threshold", "sample_every", "seen", "kept", "n"):
            v = d.get(name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63:
                raise StreamError(f"storm record field {name!r} must be a count, got {v!r:.40}")
        created = d.get("created", 0.0)
        if not isinstance(created, int | float) or isinstance(created, bool):
            raise StreamError("storm record field 'created' must be a number")
        n = d["n"]
        return cls(d["source"], d["run"], d["lumi"], d["rule"], d["kind"], d["threshold"],
                   d["sample_every"], d["seen"], d["kept"],
                   _unb64(d.get("events"), "<i8", n, "events").astype(np.int64),
                   _unb64(d.get("scores"), "<f8", n, "scores").astype(np.float64),
                   _unb64(d.get("p_values"), "<f8", n, "p_values").astype(np.float64),
                   float(created))

    def listed_alerts(self) -> list[AlertRecord]:
        """The listed alerts as records: the ids they would have had in full, score and
        p-value, payload ``{"storm_listed": true}`` (no objects)."""
        n = self.listed
        events = self.events.tolist()
        ids = alert_ids(self.source, [self.run] * n, [self.lumi] * n, events, self.rule)
        out = []
        for i, e, s, p in zip(ids, events, self.scores.tolist(), self.p_values.tolist()):
            score = None if s != s else s
            pv = None if p != p else p
            out.append(AlertRecord(i, self.kind, self.rule, self.source, self.run, self.lumi,
                                   e, score, pv, significance_from_p(pv), self.created,
                                   {"storm_listed": True}))
        return out


class StormGuard:
    """Counts alerts per (source, run, lumisection, rule) and decides what is kept in full
    (module docstring). ``threshold`` 0: no guard (everything kept)."""

    def __init__(self, threshold: int, sample_every: int = 100, max_keys: int = 100_000) -> None:
        if threshold < 0 or sample_every < 1:
            raise ConfigError(f"storm guard: threshold {threshold} must be >= 0 and "
                              f"sample_every {sample_every} >= 1")
        self.threshold = int(threshold)
        self.sample_every = int(sample_every)
        self.max_keys = max_keys
        self._seen: OrderedDict[tuple[str, int, int, str], int] = OrderedDict()

    @property
    def active(self) -> bool:
        return self.threshold > 0

    def seen(self, source: str, run: int, lumi: int, rule: str) -> int:
        return self._seen.get((source, run, lumi, rule), 0)

    def apply(self, source: str, rule: str, kind: str, hits: np.ndarray, run: np.ndarray,
              lumi: np.ndarray, event: np.ndarray, score: np.ndarray | None,
              p_value: np.ndarray | None, now: float) -> tuple[np.ndarray, list[StormRecord]]:
        """For the batch positions ``hits`` (ascending) where ``rule`` fired: the positions
        kept in full, and the storm records of the others (one per lumisection)."""
        if not self.active or hits.size == 0:
            return hits, []
        r, ls = run[hits].astype(np.int64), lumi[hits].astype(np.int64)
        key = (r << 32) | ls
        order = np.argsort(key, kind="stable")
        skey = key[order]
        starts = np.r_[0, np.flatnonzero(skey[1:] != skey[:-1]) + 1]
        ends = np.r_[starts[1:], skey.size]
        keep = np.ones(hits.size, dtype=bool)
        storms: list[StormRecord] = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            pos = order[a:b]  # this lumisection's hits, in batch order
            k = (source, int(r[pos[0]]), int(ls[pos[0]]), rule)
            before = self._seen.get(k, 0)
            n = b - a
            self._seen[k] = before + n
            self._seen.move_to_end(k)
            over = min(n, max(0, before + n - self.threshold))  # past the threshold
            if not over:
                continue
            past = pos[n - over:]  # past the threshold
            idx = hits[past]
            sample = in_sample(r[past], ls[past], event[idx], rule, self.sample_every)
            listed = idx[~sample]
            keep[past[~sample]] = False
            nan = np.full(listed.size, np.nan)
            storms.append(StormRecord(
                source, k[1], k[2], rule, kind, self.threshold, self.sample_every,
                before + n, int(sample.sum()), event[listed].astype(np.int64),
                nan if score is None else score[listed].astype(np.float64),
                nan if p_value is None else p_value[listed].astype(np.float64), now))
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return hits[keep], storms


@dataclass(frozen=True)
class Storm:
    """A storm as the store sees it: one (source, run, lumisection, rule) where the guard
    listed alerts. ``n_alerts``: the rule's alerts in the lumisection (exact, from the
    summary; the guard's running count while no summary is stored yet); ``n_kept``: those
    stored in full (exact, from the alerts table); ``n_listed``: alerts listed in storm
    records (after a worker restart an alert can be both kept and listed)."""

    source: str
    run: int
    lumi: int
    rule: str
    kind: str
    threshold: int
    sample_every: int
    n_alerts: int
    n_kept: int
    n_listed: int
    first_seen: float
    updated: float

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.source, self.run, self.lumi, self.rule)

    def describe(self) -> str:
        return (f"storm on rule {self.rule} in LS {self.lumi} (run {self.run}): "
                f"{self.n_alerts} alerts, {self.n_kept} kept")

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}
