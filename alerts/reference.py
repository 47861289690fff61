"""Expectations of every monitored quantity: model-card thresholds and the reference run.

Owns where the run status's expectations come from, with their provenance:

- **AE thresholds** (``AEModel``, ``load_ae_model``): each calibrated threshold of the
  anomaly model's card expects a fraction ``p`` of events above it; the card's background
  survival function gives the fraction above any other score (the summaries' score-bin
  edges). Provenance: model name, version, reference size.
- **Everything else** (``Reference``): each classic rule's fraction of good events, the
  events per lumisection, the quarantined fraction, per DQM subsystem the fraction
  of lumisections with a DQM alert, and the per-lumisection histograms (summed, with
  their lumisection-to-lumisection overdispersion), measured on a *reference run* chosen
  by the expert (``compute_reference``: from that run's stored summaries and DQM
  alerts). A reference is stored like a model card, with its provenance (source, run,
  lumisections, events, rules, who and when, comment, code version) in the
  ``status_references`` table of the alert store (both backends; every reference ever
  set is kept, the latest of a source is the current one: ``save_reference``,
  ``current_reference``, ``reference_history``).

Without a reference the engine (``alerts.run_status``) still tests the AE thresholds
against their p-values and the DQM alerts against their calibrated p-values, and tests the
other quantities against the run's own other lumisections (leave-one-out), saying so.
"""

from __future__ import annotations

import getpass
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from hotline.alerts.distribution_checks import hist_scales, sum_hists
from hotline.alerts.lumi_status import merge_ranges
from hotline.alerts.records import LumiSummary
from hotline.alerts.statistics import ExpectedRate, overdispersion
from hotline.detectors.event_histograms import LumiHists
from hotline.errors import ConfigError, ModelError, StoreError, StreamError

__all__ = ["AEModel", "AEThreshold", "Reference", "ThresholdLike", "ae_rule_p",
           "code_version", "compute_reference", "current_reference", "dqm_alerts",
           "load_ae_model", "measure", "parse_lumi_ranges", "reference_from_summaries",
           "reference_history", "run_source", "save_reference", "user_name"]

_AE_NAME = re.compile(r"^(?P<model>.+)_p(?P<p>\d(?:\.\d+)?e[-+]?\d+)$")


class ThresholdLike(Protocol):
    """Anything with a background p-value and a score threshold (the dashboard's too)."""

    @property
    def p(self) -> float: ...

    @property
    def threshold(self) -> float: ...


@dataclass(frozen=True)
class AEThreshold:
    """One calibrated AE threshold: background p-value ``p`` and the score ``threshold``."""

    p: float
    threshold: float


@dataclass(frozen=True)
class AEModel:
    """What the status needs of an anomaly model's card: thresholds, survival, provenance."""

    name: str
    version: str
    thresholds: tuple[AEThreshold, ...]
    survival: Callable[[np.ndarray], np.ndarray] | None = None
    n_ref: int = 0

    def provenance(self) -> dict[str, Any]:
        return {"model": self.name, "version": self.version, "n_ref": self.n_ref,
                "thresholds": [t.p for t in self.thresholds]}


def ae_rule_p(rule: str) -> tuple[str, float] | None:
    """(model, p) of an AE rule named ``<model>_p<p>`` (``ae_default_p1e-04``), else None."""
    m = _AE_NAME.match(rule)
    if not m:
        return None
    return m.group("model"), float(m.group("p"))


def load_ae_model(name: str, version: str | None = None,
                  registry: str | None = None) -> AEModel:
    """The card of a registered AE model as an ``AEModel`` (``ModelError`` if unusable)."""
    from hotline.models.registry import load_model
    from hotline.models.thresholds import ReferenceDistribution

    model = load_model(name, version or "latest", registry)
    card = model.card
    ths = []
    for t in card.get("thresholds") or []:
        try:
            ths.append(AEThreshold(float(t["p"]), float(t["threshold"])))
        except (KeyError, TypeError, ValueError):
            continue
    if not ths:
        raise ModelError(f"model {name} v{model.version} has no thresholds in its card")
    ths.sort(key=lambda t: -t.p)
    survival = None
    n_ref = int(max((t.get("n_ref", 0) for t in card.get("thresholds") or []), default=0))
    if card.get("reference"):
        try:
            ref = ReferenceDistribution.from_dict(card["reference"])
            survival = ref.p_value
            n_ref = ref.n_ref
        except ModelError:
            survival = None
    return AEModel(name, str(model.version), tuple(ths), survival, n_ref)


def code_version() -> str:
    """``hotline <version>`` (the code that computed a reference or a flag)."""
    from hotline import __version__

    return f"hotline {__version__}"


def user_name() -> str:
    """The OS login name (who set a reference or overrode a flag)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def parse_lumi_ranges(text: str) -> list[tuple[int, int]]:
    """``"1-20,25,30-40"`` -> [(1, 20), (25, 25), (30, 40)]; ``ConfigError`` naming the text."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise ConfigError(f"lumisection range {part!r} in {text!r} is not N or N-M")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ConfigError(f"lumisection range {part!r} in {text!r} ends before it starts")
        out.append((a, b))
    if not out:
        raise ConfigError(f"no lumisections in {text!r}")
    return out


@dataclass
class Reference:
    """Expectations measured on a reference run, with provenance (see module docstring).

    ``rules[name]`` / ``quarantine``: ``{"k": passed, "n": events, "phi": overdispersion,
    "n_lumi": mean events per lumisection}``; ``input``: ``{"mean", "var", "n_lumis"}``
    events per lumisection; ``dqm[subsystem]``: ``{"k": lumisections with a DQM alert,
    "n": lumisections, "p_cal": the alerts' calibrated p-value}``; ``ae[rule]``: the
    reference's measured AE rate (provenance only: AE thresholds are tested against p);
    ``hists``: the reference's per-lumisection histograms summed over its lumisections
    (``LumiHists`` wire form; None when its summaries had none) and ``hist_scale`` their
    lumisection-to-lumisection overdispersion per histogram (``hist_scales``).
    """

    source: str
    run: int
    lumis: list[list[int]]
    n_lumis: int
    events: int
    good_events: int
    rules: dict[str, dict[str, float]] = field(default_factory=dict)
    quarantine: dict[str, float] = field(default_factory=dict)
    input: dict[str, float] = field(default_factory=dict)
    dqm: dict[str, dict[str, float]] = field(default_factory=dict)
    ae: dict[str, dict[str, float]] = field(default_factory=dict)
    hists: dict[str, Any] | None = None
    hist_scale: dict[str, float] = field(default_factory=dict)
    set_by: str = ""
    set_at: float = 0.0
    comment: str = ""
    code_version: str = ""
    seq: int | None = None

    # -------------------------------------------------------------- expectations

    @staticmethod
    def _rate(d: dict[str, float] | None) -> ExpectedRate | None:
        if not d or d.get("n", 0) <= 0:
            return None
        return ExpectedRate.measured(d["k"], d["n"], d.get("phi", 1.0), d.get("n_lumi", 0.0))

    def rule_rate(self, rule: str) -> ExpectedRate | None:
        return self._rate(self.rules.get(rule))

    def quarantine_rate(self) -> ExpectedRate | None:
        return self._rate(self.quarantine)

    def input_counts(self) -> tuple[float, float] | None:
        """(mean, variance) of events per reference lumisection."""
        if not self.input or self.input.get("n_lumis", 0) < 1:
            return None
        return float(self.input["mean"]), float(self.input["var"])

    def lumi_hists(self) -> LumiHists | None:
        """The reference's histograms (None without, or in a form this Hotline cannot read)."""
        if not self.hists:
            return None
        try:
            return LumiHists.from_wire(self.hists)
        except StreamError:
            return None

    def label(self) -> str:
        return f"reference run {self.run}"

    def provenance(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("source", "run", "lumis", "n_lumis", "events", "good_events",
                                  "set_by", "set_at", "comment", "code_version", "seq")} | {
            "rules": sorted(self.rules), "dqm": sorted(self.dqm),
            "hists": sorted(self.hists.get("names", [])) if self.hists else []}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _counts_entry(k: Sequence[float] | np.ndarray,
                  n: Sequence[float] | np.ndarray) -> dict[str, float]:
    k_arr, n_arr = np.asarray(k, float), np.asarray(n, float)
    return {"k": float(k_arr.sum()), "n": float(n_arr.sum()),
            "phi": float(overdispersion(k_arr, n_arr)),
            "n_lumi": float(n_arr.mean()) if n_arr.size else 0.0}


def measure(summaries: Sequence[LumiSummary],
            dqm: Mapping[int, Sequence[Any]] | None = None) -> dict[str, Any]:
    """The expectations measured on ``summaries`` (and DQM alerts per lumisection)."""
    sums = [s for s in summaries if s.n_events > 0]
    score_rules = {r for s in sums for r in s.score_hist}
    rules: dict[str, dict[str, float]] = {}
    ae: dict[str, dict[str, float]] = {}
    for rule in sorted({r for s in sums for r in s.rule_counts}):
        have = [s for s in sums if rule in s.rule_counts and rule not in s.unavailable]
        k = [s.rule_counts[rule] for s in have]
        n = [max(s.n_events - s.n_bad, 0) for s in have]
        if rule in score_rules:
            ae[rule] = {"k": float(sum(k)), "n": float(sum(n))}
        else:
            rules[rule] = _counts_entry(k, n)
    ev = np.asarray([s.n_events for s in sums], float)
    out: dict[str, Any] = {
        "rules": rules, "ae": ae,
        "quarantine": _counts_entry([s.n_bad for s in sums], ev) if sums else {},
        "input": ({"mean": float(ev.mean()), "var": float(ev.var(ddof=1)) if ev.size > 1
                   else float(ev.mean()), "n_lumis": int(ev.size)} if ev.size else {}),
        "dqm": {},
    }
    if dqm:
        lumis = {s.lumi for s in sums}
        subs: dict[str, set[int]] = {}
        p_cal: dict[str, float] = {}
        for ls, alerts in dqm.items():
            for a in alerts:
                sub = str(a.payload.get("subsystem") or a.rule.removeprefix("dqm_"))
                subs.setdefault(sub, set())
                if ls in lumis:
                    subs[sub].add(ls)
                if a.payload.get("alert_p_value"):
                    p_cal[sub] = float(a.payload["alert_p_value"])
        out["dqm"] = {sub: {"k": float(len(ls_set)), "n": float(len(lumis)),
                            "p_cal": p_cal.get(sub, 0.0)} for sub, ls_set in subs.items()}
    return out


def run_source(store: Any, run: int, source: str | None) -> str:
    """The source of ``run``'s summaries (given, or the one with most events)."""
    sums = store.summaries(source=source, run=run)
    if not sums:
        where = f" of source '{source}'" if source else ""
        raise StoreError(f"no lumisection summaries for run {run}{where} in {store.url} "
                         "(replay the run into this store first)")
    if source:
        return source
    by: dict[str, int] = {}
    for s in sums:
        by[s.source] = by.get(s.source, 0) + s.n_events
    return max(sorted(by), key=lambda k: by[k])


def dqm_alerts(store: Any, run: int, source: str,
               lumis: Iterable[int] | None = None) -> dict[int, list[Any]]:
    """The run's DQM alerts per lumisection (payload maps left out of nothing: as stored)."""
    out: dict[int, list[Any]] = {}
    for a in store.iter_alerts(kind="dqm", run=run, source=source,
                               lumi=None if lumis is None else sorted(set(lumis))):
        out.setdefault(a.lumi, []).append(a)
    return out


def compute_reference(store: Any, run: int, source: str | None = None,
                      lumis: Sequence[tuple[int, int]] | None = None, set_by: str | None = None,
                      comment: str = "") -> Reference:
    """The reference measured on ``run`` (optionally only the lumisection ranges ``lumis``)."""
    src = run_source(store, run, source)
    sums = store.summaries(source=src, run=run, hists=True)
    if lumis:
        sums = [s for s in sums if any(a <= s.lumi <= b for a, b in lumis)]
        if not sums:
            raise StoreError(f"run {run} has no summaries in lumisections "
                             + ",".join(f"{a}-{b}" for a, b in lumis))
    sums = [s for s in sums if s.n_events > 0]
    if not sums:
        raise StoreError(f"run {run} of source '{src}' has no events to measure a reference on")
    return reference_from_summaries(sums, dqm_alerts(store, run, src), set_by=set_by,
                                    comment=comment)


def reference_from_summaries(summaries: Sequence[LumiSummary],
                             dqm: Mapping[int, Sequence[Any]] | None = None,
                             set_by: str | None = None, comment: str = "") -> Reference:
    """The reference measured on one run's ``summaries`` (and its DQM alerts per lumi)."""
    sums = [s for s in summaries if s.n_events > 0]
    if not sums:
        raise StoreError("no lumisections with events to measure a reference on")
    m = measure(sums, dqm)
    with_hists = [s.hists for s in sums if s.hists is not None]
    total = sum_hists(with_hists)
    return Reference(
        source=sums[0].source, run=int(sums[0].run),
        lumis=merge_ranges([s.lumi for s in sums]),
        n_lumis=len(sums), events=int(sum(s.n_events for s in sums)),
        good_events=int(sum(s.n_events - s.n_bad for s in sums)),
        rules=m["rules"], quarantine=m["quarantine"], input=m["input"], dqm=m["dqm"],
        ae=m["ae"], hists=None if total is None else total.to_wire(),
        hist_scale=hist_scales(with_hists), set_by=set_by or user_name(), set_at=time.time(),
        comment=comment,
        code_version=code_version())


def save_reference(store: Any, ref: Reference, actor: Any = None) -> Reference:
    """Store ``ref`` as the current reference of its source (older ones are kept).

    With ``actor`` (``alerts.access.Actor``): the role is checked first (``set_reference``)
    and one audit row (the previous and the new reference run) is written with it."""
    if actor is not None:
        from hotline.alerts.access import require

        require(actor, "set_reference")
    before = None
    if actor is not None:
        prev = reference_history(store, ref.source, limit=1)
        before = ({"run": prev[0].run, "set_by": prev[0].set_by, "seq": prev[0].seq}
                  if prev else None)
    ph = store.ph
    data = {k: v for k, v in ref.to_dict().items() if k != "seq"}
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO status_references (source, run, data, set_by, set_at, comment) "
            f"VALUES ({ph},{ph},{ph},{ph},{ph},{ph})",
            (ref.source, ref.run, json.dumps(data, allow_nan=False), ref.set_by, ref.set_at,
             ref.comment))
        if actor is not None:
            from hotline.alerts.audit import append

            append(cur, store, actor, "set_reference", f"{ref.source}/reference",
                   before, {"run": ref.run, "n_lumis": ref.n_lumis, "comment": ref.comment})
    hist = reference_history(store, ref.source, limit=1)
    return hist[0] if hist else ref


def reference_history(store: Any, source: str | None = None,
                      limit: int | None = None) -> list[Reference]:
    """References set so far, newest first (of ``source``, or of every source)."""
    ph = store.ph
    sql = "SELECT seq, data FROM status_references"
    args: list[Any] = []
    if source is not None:
        sql += f" WHERE source = {ph}"
        args.append(source)
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with store.transaction() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    out = []
    for seq, data in rows:
        ref = Reference.from_dict(json.loads(data))
        ref.seq = int(seq)
        out.append(ref)
    return out


def current_reference(store: Any, source: str | None = None) -> Reference | None:
    """The reference set last for ``source`` (any source when None), or None."""
    hist = reference_history(store, source, limit=1)
    return hist[0] if hist else None
