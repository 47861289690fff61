"""Firmware-vs-serving agreement per lumisection, and the divergence alarm.

When the stream runs a firmware build's bit-accurate emulation beside the onnxruntime score
(``stream.l1_emulation``), each emulated event leaves in its lumisection's ``EventTally`` an
entry of an :class:`L1Tally`: event number, firmware score, serving score (NaN firmware score:
the emulation failed). Like the rest of the tally it is united by event, so an event
re-processed is compared once. A summary derives an :class:`L1Agreement` from it: per menu
seed (VLoose..VTight) the events whose decision differs, the passes of each side, the score
correlation (from moments) and the largest differences; agreements add with ``+`` (the store
adds the aggregates of events it had not counted before).

The divergence alarm built on it (DQM-kind alerts) is ``stream.l1_emulation.divergence_alerts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hotline.errors import StreamError
from hotline.wire import array_of_b64, b64_of

TOP_DIFFERENCES = 5  #: largest |firmware - serving| differences kept per lumisection
L1_SUBSYSTEM = "L1 {model}"  #: the run-status subsystem of the divergence alerts


@dataclass(frozen=True)
class L1Header:
    """Which build was compared: model, version, build id, seeds (label, serving threshold,
    fixed-point threshold) and the fractional bits of the score type."""

    model: str
    version: str
    build: str
    frac_bits: int
    seeds: tuple[tuple[str, float, float, int], ...]  #: (label, p, threshold, fixed)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "build": self.build,
                "frac_bits": self.frac_bits, "seeds": [list(s) for s in self.seeds]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> L1Header:
        try:
            return cls(str(d["model"]), str(d["version"]), str(d["build"]), int(d["frac_bits"]),
                       tuple((str(s[0]), float(s[1]), float(s[2]), int(s[3]))
                             for s in d["seeds"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StreamError(f"L1 comparison header is malformed: {exc}") from None


def _unb64(text: Any, dtype: str, n: int, what: str) -> np.ndarray:
    return array_of_b64(text, dtype, n, f"L1 tally {what}", per="events")


@dataclass(frozen=True, eq=False)
class L1Tally:
    """Per emulated distinct event of one lumisection part: firmware and serving score."""

    header: L1Header
    events: np.ndarray  #: sorted unique event numbers (int64)
    fw: np.ndarray  #: firmware score (float64; NaN: the emulation failed)
    sv: np.ndarray  #: serving score (float64)

    @classmethod
    def build(cls, header: L1Header, events: Any, fw: Any, sv: Any) -> L1Tally:
        ev = np.asarray(events, np.int64).ravel()
        uniq, first = np.unique(ev, return_index=True)
        return cls(header, uniq, np.asarray(fw, np.float64)[first],
                   np.asarray(sv, np.float64)[first])

    def __len__(self) -> int:
        return int(self.events.size)

    def only(self, events: Any) -> L1Tally:
        keep = np.isin(self.events, np.asarray(events, np.int64))
        return L1Tally(self.header, self.events[keep], self.fw[keep], self.sv[keep])

    def union(self, other: L1Tally | None) -> L1Tally:
        if other is None or not len(other):
            return self
        if not len(self):
            return other
        ev = np.concatenate([self.events, other.events])
        _, first = np.unique(ev, return_index=True)
        return L1Tally(self.header, ev[first], np.concatenate([self.fw, other.fw])[first],
                       np.concatenate([self.sv, other.sv])[first])

    def aggregate(self) -> L1Agreement:
        """The :class:`L1Agreement` of these events."""
        h = self.header
        ok = np.isfinite(self.fw)
        fw, sv, ev = self.fw[ok], self.sv[ok], self.events[ok]
        lsb = np.floor(fw * 2.0 ** h.frac_bits)
        agree = L1Agreement(h, n=int(ok.sum()), n_failed=int((~ok).sum()))
        for label, _p, thr, fixed in h.seeds:
            dfw, dsv = lsb > fixed, sv > thr
            agree.disagree[label] = int((dfw != dsv).sum())
            agree.pass_fw[label] = int(dfw.sum())
            agree.pass_sv[label] = int(dsv.sum())
        agree.moments = [float(fw.sum()), float(sv.sum()), float((fw * fw).sum()),
                         float((sv * sv).sum()), float((fw * sv).sum())]
        if fw.size:
            d = np.abs(fw - sv)
            top = np.argsort(-d, kind="stable")[:TOP_DIFFERENCES]
            agree.top = [[int(ev[i]), float(fw[i]), float(sv[i])] for i in top]
        return agree

    def to_wire(self) -> dict[str, Any]:
        return {"header": self.header.to_dict(), "n": len(self),
                "events": b64_of(self.events.astype("<i8")), "fw": b64_of(self.fw.astype("<f8")),
                "sv": b64_of(self.sv.astype("<f8"))}

    @classmethod
    def from_wire(cls, d: Any) -> L1Tally:
        if not isinstance(d, dict):
            raise StreamError("L1 tally is not a JSON object")
        n = d.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise StreamError(f"L1 tally count {n!r} is not a non-negative integer")
        ev = _unb64(d.get("events"), "<i8", n, "events").astype(np.int64)
        if n and np.any(ev[1:] <= ev[:-1]):
            raise StreamError("L1 tally events are not sorted and unique")
        return cls(L1Header.from_dict(d.get("header") or {}), ev,
                   _unb64(d.get("fw"), "<f8", n, "fw").astype(np.float64),
                   _unb64(d.get("sv"), "<f8", n, "sv").astype(np.float64))


@dataclass
class L1Agreement:
    """Firmware vs serving in one lumisection (see the module docstring); adds with ``+``."""

    header: L1Header
    n: int = 0  #: events emulated and compared
    n_failed: int = 0  #: events whose emulation failed
    disagree: dict[str, int] = field(default_factory=dict)
    pass_fw: dict[str, int] = field(default_factory=dict)
    pass_sv: dict[str, int] = field(default_factory=dict)
    moments: list[float] = field(default_factory=lambda: [0.0] * 5)  #: sx, sy, sxx, syy, sxy
    top: list[list[float]] = field(default_factory=list)  #: [event, firmware, serving]

    def agreement(self, label: str) -> float:
        return 1.0 - self.disagree.get(label, 0) / self.n if self.n else 1.0

    @property
    def worst(self) -> tuple[str, float]:
        """(seed label, agreement) of the worst seed."""
        if not self.header.seeds:
            return ("", 1.0)
        return min(((s[0], self.agreement(s[0])) for s in self.header.seeds),
                   key=lambda x: x[1])

    @property
    def correlation(self) -> float:
        n = self.n
        if n < 2:
            return float("nan")
        sx, sy, sxx, syy, sxy = self.moments
        vx, vy = sxx - sx * sx / n, syy - sy * sy / n
        if vx <= 0 or vy <= 0:
            return float("nan")
        return float((sxy - sx * sy / n) / math.sqrt(vx * vy))

    def __add__(self, other: L1Agreement | None) -> L1Agreement:
        if other is None:
            return self
        if other.header.build != self.header.build:  # another build: keep both apart? no:
            # one summary compares one build; the newer one (other) replaces the older
            return other
        out = L1Agreement(self.header, self.n + other.n, self.n_failed + other.n_failed)
        for attr in ("disagree", "pass_fw", "pass_sv"):
            a, b = getattr(self, attr), getattr(other, attr)
            setattr(out, attr, {k: a.get(k, 0) + b.get(k, 0) for k in dict.fromkeys([*a, *b])})
        out.moments = [x + y for x, y in zip(self.moments, other.moments)]
        seen: dict[int, list[float]] = {}
        for row in self.top + other.top:
            seen.setdefault(int(row[0]), list(row))
        out.top = sorted(seen.values(), key=lambda r: -abs(r[1] - r[2]))[:TOP_DIFFERENCES]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"header": self.header.to_dict(), "n": self.n, "n_failed": self.n_failed,
                "disagree": dict(self.disagree), "pass_fw": dict(self.pass_fw),
                "pass_sv": dict(self.pass_sv), "moments": list(self.moments),
                "top": [list(r) for r in self.top]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> L1Agreement:
        try:
            return cls(L1Header.from_dict(d["header"]), int(d["n"]), int(d.get("n_failed", 0)),
                       {str(k): int(v) for k, v in d.get("disagree", {}).items()},
                       {str(k): int(v) for k, v in d.get("pass_fw", {}).items()},
                       {str(k): int(v) for k, v in d.get("pass_sv", {}).items()},
                       [float(x) for x in d.get("moments", [0.0] * 5)],
                       [list(map(float, r)) for r in d.get("top", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise StreamError(f"L1 agreement record is malformed: {exc}") from None

    def lines(self) -> list[str]:
        """Plain text: one line per seed, then correlation and largest differences."""
        h = self.header
        out = [f"{h.model} v{h.version} build {h.build}: {self.n} events emulated"
               + (f", {self.n_failed} failed" if self.n_failed else "")]
        for label, p, _thr, fixed in h.seeds:
            out.append(f"  {label:<8} p={p:g} (> {fixed} LSB): agreement "
                       f"{self.agreement(label):.4%} ({self.disagree.get(label, 0)} differ; "
                       f"fw {self.pass_fw.get(label, 0)}, serving {self.pass_sv.get(label, 0)})")
        out.append(f"  correlation {self.correlation:.6f}; largest |diff| "
                   + ", ".join(f"ev {int(r[0])}: {abs(r[1] - r[2]):.3g}" for r in self.top[:3]))
        return out
