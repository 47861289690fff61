"""The batch core and the embedded (in-process) pipeline.

``process_batch(batch, ctx)`` is the one entry point every path calls (the
embedded loop here and the faust agents): features -> rules (classic and
anomaly-score rules) -> alert records + per-lumisection summaries + dead
letters. It is a pure synchronous function over a columnar batch.

Every per-lumisection summary of a batch carries the ``EventTally`` of its
distinct events (number, quarantined, rules passed, score bins, and the bin codes
of the lumisection histograms of ``PipelineContext.book``: pT, eta, phi and
multiplicity per object type, MET, HT, each type's share of every AE score; see
``detectors.event_histograms``) and derives its counts and histograms from it,
plus a part id (``LumiSummary.part``): a hash of (source, run, lumisection,
``EventSet`` of those events). Whichever worker (re-)processes a
batch, its partial summaries have the same ids and tallies, and the store counts
each (source, run, lumisection, event) once (``AlertStore.add_summary_parts``).

``run_embedded(source, ctx, store)`` drives a source through it and writes the
results to an alert store, flushing a lumisection's summary when the stream
has moved past it (and everything at the end), so memory stays bounded. The
summaries of one lumisection unite their tallies until flushed, so an event
repeated within a replay is counted once there, and one repeated across parts,
files or invocations is counted once by the store: the summaries stay exact
whatever the files, their order or overlaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hotline.alerts.menu import build_menu, load_menu
from hotline.alerts.records import (
    NO_BIN,
    SCORE_BINS,
    SCORE_LOG_MAX,
    SCORE_LOG_MIN,
    AlertRecord,
    DeadLetter,
    EventSet,
    EventTally,
    LumiSummary,
)
from hotline.alerts.records import score_bin_edges as score_bin_edges  # re-exported
from hotline.alerts.rules import RuleOutcome
from hotline.alerts.storms import StormGuard, StormRecord
from hotline.config import NO_MODEL, Config
from hotline.detectors.event_histograms import (
    DEFAULT_BOOK,
    NO_CODE,
    EventBins,
    HistBook,
    fill_event_bins,
)
from hotline.detectors.features import FeatureMatrix, missing_branches, required_branches
from hotline.detectors.quality import Problem, Quarantine, check_events
from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec
from hotline.errors import HotlineError
from hotline.stream.batch import EventBatch
from hotline.stream.batch_alerts import RuleContext, batch_alerts
from hotline.stream.l1_emulation import attach_l1, judge

log = logging.getLogger(__name__)

# score histograms in summaries: the bins (SCORE_BINS, score_bin_edges) are defined with
# LumiSummary (alerts.records) and re-exported here


def score_bin_index(score: np.ndarray) -> np.ndarray:
    """Bin of each ``score`` among the SCORE_BINS + 2 bins of ``LumiSummary.score_hist``
    (0: underflow, SCORE_BINS + 1: overflow; NaN lands in the underflow), as uint8."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(np.maximum(np.nan_to_num(score.astype(np.float64), nan=0.0), 1e-300))
    width = (SCORE_LOG_MAX - SCORE_LOG_MIN) / SCORE_BINS
    idx = np.clip(np.floor((x - SCORE_LOG_MIN) / width) + 1, 0, SCORE_BINS + 1)
    return idx.astype(np.uint8)


def score_histogram(score: np.ndarray) -> list[int]:
    """Counts of ``score`` in the fixed log bins used by every ``LumiSummary.score_hist``."""
    return np.bincount(score_bin_index(score), minlength=SCORE_BINS + 2).tolist()


@dataclass
class PipelineContext:
    """Everything ``process_batch`` needs: feature spec, rules, and per-alert payload options."""

    rules: list[Any] = field(default_factory=build_menu)
    spec: FeatureSpec = DEFAULT_SPEC
    #: True when a scorer needs features; a batch lacking feature branches then makes the
    #: feature-based rules unavailable for it (never a failed batch or file)
    features_required: bool = False
    #: storm guard (``alerts.storms``): alerts in full per rule per lumisection (0: no guard)
    max_alerts_per_lumi: int = 0
    #: beyond it, 1 in this many alerts kept in full (a deterministic sample)
    storm_sample: int = 100
    #: the divergence bound of an L1 emulation rule in ``rules`` (None: no emulation)
    l1_min_agreement: float | None = None
    #: the per-lumisection histograms every summary carries (None: none)
    book: HistBook | None = DEFAULT_BOOK

    def storm_guard(self) -> StormGuard | None:
        """A fresh storm guard for one worker or replay (None when the guard is off)."""
        if self.max_alerts_per_lumi <= 0:
            return None
        return StormGuard(self.max_alerts_per_lumi, self.storm_sample)

    @classmethod
    def from_config(cls, cfg: Config) -> PipelineContext:
        """The context a configuration describes: its rule menu, plus the AE rule of
        ``[model] name`` at ``[model] p_value`` when a model is configured (not empty, not
        ``"none"``; the CLI's scoring commands fill in the registered default model)."""
        from hotline.stream.l1_emulation import emulation_rule

        rules = load_menu(cfg.alerts.rules)
        threshold, sample = cfg.alerts.max_alerts_per_lumi, cfg.alerts.storm_sample
        l1 = emulation_rule(cfg, cfg.model.registry)  # [firmware] emulate: firmware in the loop
        l1_bound = None if l1 is None else cfg.firmware.min_agreement
        if cfg.model.name in ("", NO_MODEL):
            if l1 is None:
                return cls(rules=rules, max_alerts_per_lumi=threshold, storm_sample=sample)
            return cls(rules=[*rules, l1], spec=l1.scorer.spec, features_required=True,
                       max_alerts_per_lumi=threshold, storm_sample=sample,
                       l1_min_agreement=l1_bound)
        from hotline.alerts.ae_rule import AERule
        from hotline.models.scorer import Scorer

        scorer = Scorer.from_registry(cfg.model.name, cfg.model.version, cfg.model.registry)
        rules.append(AERule(scorer, cfg.model.p_value))
        return cls(rules=rules + ([l1] if l1 is not None else []), spec=scorer.spec,
                   features_required=True, max_alerts_per_lumi=threshold,
                   storm_sample=sample, l1_min_agreement=l1_bound)

    def branches(self, available: set[str] | None = None) -> list[str]:
        """Branches to read: the feature spec's (with fallbacks), every rule's needs, and the
        (pt, eta, phi) of each rule's collection (for the objects in its alerts)."""
        out = required_branches(self.spec, available or set())
        for obj in self.spec.objects:
            for prefix in obj.fallbacks:
                out.extend(obj.branches(prefix))
        for r in self.rules:
            out.extend(r.needs)
            out.extend(f"{fb}" for fb in getattr(r, "fallbacks", ()))
            coll = getattr(r, "collection", None)
            if isinstance(coll, str):  # the fired objects' angles, for the alert payload
                out.extend(f"{coll}_{f}" for f in ("pt", "eta", "phi"))
        if self.book is not None:  # the lumisection histograms' collections, where present
            out.extend(self.book.branches())
        return list(dict.fromkeys(out))


@dataclass
class BatchResult:
    """What one batch produced; merge with ``+`` (summaries of one lumisection unite their
    tallies; a merged summary gets the part id of its events, see ``summary_parts``)."""

    alerts: list[AlertRecord] = field(default_factory=list)
    summaries: dict[tuple[str, int, int], LumiSummary] = field(default_factory=dict)
    deadletters: list[DeadLetter] = field(default_factory=list)
    unavailable: dict[str, list[str]] = field(default_factory=dict)
    n_events: int = 0
    storms: list[StormRecord] = field(default_factory=list)  #: the storm guard's records

    def __add__(self, other: BatchResult) -> BatchResult:
        sums = dict(self.summaries)
        for k, s in other.summaries.items():
            sums[k] = sums[k] + s if k in sums else s
        unav = {**self.unavailable, **other.unavailable}
        return BatchResult(
            self.alerts + other.alerts,
            sums,
            self.deadletters + other.deadletters,
            unav,
            self.n_events + other.n_events,
            self.storms + other.storms,
        )

    def summary_parts(self) -> list[LumiSummary]:
        """The summaries, each with the part id of its events (for ``add_summary_parts``)."""
        out = []
        for k, s in self.summaries.items():
            if s.tally is not None:
                s = replace(s, part=EventSet.of(s.tally.events).part_id(*k))
            out.append(s)
        return out


def _quarantine_letters(
    batch: EventBatch, quarantine: Quarantine, features: FeatureMatrix | None
) -> list[DeadLetter]:
    """One dead letter per (run, lumisection) and per (branch, reason) of the quarantine,
    listing the events; feature rows rejected for another reason get their own letter.
    A joined batch (``meta["parts"]``: each part's origin and event range,
    ``stream.batch.concat_batches``) gets one per part too, naming the part's origin, as
    when each part is scored alone."""
    problems = list(quarantine.problems)
    if features is not None:
        extra = features.bad & ~quarantine.bad
        if extra.any():
            problems.append(Problem("features", "feature inputs rejected", np.flatnonzero(extra)))
    out = []
    run, lumi, event = batch.run, batch.lumi, batch.event
    parts = batch.meta.get("parts") or [(batch.origin, 0, len(batch))]
    for p in problems:
        for origin, start, stop in parts:
            idx = p.events[(p.events >= start) & (p.events < stop)]
            for (r, ls), sel in _group(run[idx], lumi[idx]):
                out.append(DeadLetter(
                    source=batch.source,
                    origin=origin,
                    reason=f"{p.describe()}; event quarantined",
                    run=r,
                    lumi=ls,
                    events=tuple(int(e) for e in event[idx][sel]),
                ))
    return out


def process_batch(batch: EventBatch, ctx: PipelineContext,
                  guard: StormGuard | None = None) -> BatchResult:
    """Score one batch: features, rules, alerts, summaries, dead letters (pure, no I/O).

    Every event whose values break the quarantine policy (``detectors.quality``: any
    branch, whichever rules or models are on) is dead-lettered with its branch and reason,
    counted in ``n_bad`` and kept out of rule counts and alerts. A batch lacking feature
    branches still runs every rule whose inputs it has; the feature-based rules are then
    *unavailable* for it (``missing`` names the branches), the batch is not refused.
    With a storm ``guard`` (``alerts.storms``; its count is the caller's state) the alerts
    of a rule past its threshold in a lumisection are sampled and the rest listed in
    ``result.storms``; the summaries count every alert either way.
    """
    n = len(batch)
    run, lumi, event = batch.run, batch.lumi, batch.event
    result = BatchResult(n_events=n)
    quarantine = check_events(batch.arrays)
    # features for the whole batch only when a scorer or a rule needs them there; else
    # batch_alerts extracts them for the alerted events alone (stream.batch_alerts)
    context = RuleContext(batch, ctx.spec, missing_branches(ctx.spec, batch.fields),
                          eager=ctx.features_required)
    features = context.whole
    bad = quarantine.bad if features is None else quarantine.bad | features.bad
    if bad.any():
        result.deadletters.extend(_quarantine_letters(batch, quarantine, features))
    good = ~bad
    context["good"] = good
    outcomes: list[RuleOutcome] = [rule.evaluate(batch.arrays, context) for rule in ctx.rules]
    for o in outcomes:  # e.g. a scalar rule on a branch that is jagged in this batch
        if o.mask is not None and np.shape(o.mask) != (n,):
            raise ValueError(f"{batch.origin}: rule {o.rule} gave a mask of shape "
                             f"{np.shape(o.mask)} for {n} events (is one of its branches "
                             "of another layout?)")

    # per-lumisection summaries, vectorised over the (run, lumi) groups of the batch; the
    # counts derive from each lumisection's tally of distinct events (a repeated event
    # number counts once, with its first occurrence)
    now = time.time()
    passed = {o.rule: o.mask & good for o in outcomes if o.mask is not None}
    bins = {o.rule: np.where(good, score_bin_index(o.score), NO_BIN).astype(np.uint8)
            for o in outcomes if o.mask is not None and o.score is not None}
    unavailable = {o.rule for o in outcomes if o.mask is None}
    ev_bins = None if ctx.book is None else _event_bins(batch, ctx.book, bad, good, outcomes)
    for (r, ls), sel in _group(run, lumi):
        tally = EventTally.build(event[sel], bad[sel], {k: m[sel] for k, m in passed.items()},
                                 {k: b[sel] for k, b in bins.items()}, SCORE_BINS + 2,
                                 hist=None if ev_bins is None else ev_bins.take(sel))
        tally = attach_l1(tally, context, sel, event)  # L1 emulation beside serving, if on
        part = EventSet.of(tally.events).part_id(batch.source, r, ls)
        s = LumiSummary.of_tally(batch.source, r, ls, tally, unavailable, now, now, part)
        result.summaries[s.key] = s
    for o in outcomes:
        if o.mask is None:
            result.unavailable[o.rule] = o.missing
    if guard is not None and guard.active:
        outcomes = _guarded(batch, outcomes, good, guard, now, result)
    result.alerts.extend(batch_alerts(batch, outcomes, good, context, now))
    return result


def _event_bins(batch: EventBatch, book: HistBook, bad: np.ndarray, good: np.ndarray,
                outcomes: list[RuleOutcome]) -> EventBins:
    """The batch's histogram bin codes, with each AE rule's per-type score shares."""
    ev_bins = fill_event_bins(batch.arrays, book, bad)
    shares: dict[str, np.ndarray] = {}
    for o in outcomes:
        if o.mask is None or o.per_type is None or o.score is None:
            continue
        total = np.maximum(o.per_type.sum(axis=1), 1e-300)
        for j, label in enumerate(o.type_labels):
            frac = np.clip(o.per_type[:, j] / total, 0.0, 1.0)
            codes = book.fraction.index(np.minimum(frac, np.nextafter(1.0, 0.0)))
            shares[f"score/{o.rule}/{label}"] = np.where(good, codes, NO_CODE).astype(np.uint8)
    return ev_bins.with_scalars(shares) if shares else ev_bins


def _guarded(batch: EventBatch, outcomes: list[RuleOutcome], good: np.ndarray,
             guard: StormGuard, now: float, result: BatchResult) -> list[RuleOutcome]:
    """``outcomes`` with each rule's mask cut to the alerts the storm guard keeps in full;
    its storm records go to ``result.storms``."""
    out = []
    run, lumi, event = batch.run, batch.lumi, batch.event
    for o in outcomes:
        if o.mask is None:
            out.append(o)
            continue
        hits = np.flatnonzero(o.mask & good)
        kept, storms = guard.apply(batch.source, o.rule, o.kind, hits, run, lumi, event,
                                   o.score, o.p_value, now)
        if storms:
            result.storms.extend(storms)
            mask = np.zeros_like(o.mask, dtype=bool)
            mask[kept] = True
            o = replace(o, mask=mask)
        out.append(o)
    return out


def _group(run: np.ndarray, lumi: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Indices of each distinct (run, lumi) pair, in first-seen order."""
    if run.size == 0:
        return []
    key = (run.astype(np.int64) << 32) | lumi.astype(np.int64)
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)
    sort_idx = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=uniq.size))
    starts = np.concatenate([[0], bounds[:-1]])
    out = []
    for u in order:
        sel = sort_idx[starts[u] : bounds[u]]
        out.append(((int(uniq[u] >> 32), int(uniq[u] & 0xFFFFFFFF)), sel))
    return out


@dataclass
class RunReport:
    """What an embedded replay did, for the CLI and the dashboard."""

    events: int = 0
    batches: int = 0
    alerts_new: int = 0
    alerts_seen: int = 0
    deadletters: int = 0
    seconds: float = 0.0
    per_rule: dict[str, int] = field(default_factory=dict)
    per_lumi: dict[tuple[int, int], int] = field(default_factory=dict)
    unavailable: dict[str, list[str]] = field(default_factory=dict)
    available: set[str] = field(default_factory=set)  #: rules that ran on some batch
    errors: list[str] = field(default_factory=list)
    storms: int = 0  #: storm records of the storm guard written

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def run_embedded(
    batches: Iterable[EventBatch],
    ctx: PipelineContext,
    store: Any,
    on_result: Any = None,
) -> RunReport:
    """Drive ``batches`` through ``process_batch`` into ``store``; returns a ``RunReport``.

    Summaries of a lumisection are written once the stream has left it (and all at
    the end), as one part (``store.add_summary_parts``) whose id is that of all the
    lumisection's events; ``on_result(batch, result)`` is called after each batch
    (dashboard hook). With ``ctx.max_alerts_per_lumi`` set, the replay has its own storm
    guard (``alerts.storms``) and writes its storm records to ``store.add_storms``.
    """
    report = RunReport(per_rule={r.name: 0 for r in ctx.rules})
    open_lumis = BatchResult()  # summaries and event sets of the lumisections not yet written

    def flush(keys: list[tuple[str, int, int]]) -> None:
        done = BatchResult()
        for k in keys:
            done.summaries[k] = open_lumis.summaries.pop(k)
        if keys:
            store.add_summary_parts(done.summary_parts())
            if ctx.l1_min_agreement is not None:  # firmware divergence, per whole lumisection
                store.add_alerts(judge(done.summaries.values(), ctx.l1_min_agreement))

    guard = ctx.storm_guard()  # the replay's storm guard (None: off)
    t0 = time.perf_counter()
    for batch in batches:
        try:
            res = process_batch(batch, ctx, guard)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the replay
            letters = batch_deadletters(batch, exc)
            store.add_deadletters(letters)
            report.deadletters += len(letters)
            report.errors.append(letters[0].reason)
            log.warning("batch from %s quarantined: %s", batch.origin, letters[0].reason)
            continue
        new = store.add_alerts(res.alerts)
        report.alerts_new += len(new)
        report.alerts_seen += len(res.alerts)
        for a in res.alerts:
            report.per_rule[a.rule] = report.per_rule.get(a.rule, 0) + 1
            report.per_lumi[(a.run, a.lumi)] = report.per_lumi.get((a.run, a.lumi), 0) + 1
        if res.deadletters:
            store.add_deadletters(res.deadletters)
            report.deadletters += len(res.deadletters)
        if res.storms:
            store.add_storms(res.storms)
            report.storms += len(res.storms)
        report.unavailable.update(res.unavailable)
        report.available.update(r.name for r in ctx.rules if r.name not in res.unavailable)
        open_lumis = open_lumis + BatchResult(summaries=res.summaries)
        # flush lumisections the stream has left (data arrive ordered by run, lumi; one
        # that comes back later is written again as a further part, and added)
        latest = max(res.summaries) if res.summaries else None
        if latest is not None:
            flush([k for k in open_lumis.summaries
                   if k[:2] != latest[:2] or k[2] < latest[2]])
        report.events += res.n_events
        report.batches += 1
        if on_result is not None:
            on_result(batch, res)
    flush(list(open_lumis.summaries))
    # files the source could not read (or chunks it refused): dead letters too, with the
    # file as origin, so `hotline deadletters` lists them and `--redrive` can retry them
    failed = [DeadLetter(getattr(batches, "source", "hotline"), getattr(e, "path", "") or "",
                         str(e)) for e in getattr(batches, "errors", ())]
    if failed:
        store.add_deadletters(failed)
        report.deadletters += len(failed)
    report.seconds = time.perf_counter() - t0
    return report


def batch_deadletters(batch: EventBatch, exc: BaseException) -> list[DeadLetter]:
    """The dead letters of a batch ``process_batch`` could not score: one per (run,
    lumisection) listing its events (one without ids if even those are unreadable)."""
    reason = str(exc) if isinstance(exc, HotlineError) else (
        f"{batch.origin}: unexpected {type(exc).__name__} while scoring: {str(exc)[:300]}")
    try:
        event = batch.event
        return [DeadLetter(batch.source, batch.origin, reason, r, ls,
                           tuple(int(e) for e in event[sel]))
                for (r, ls), sel in _group(batch.run, batch.lumi)] or \
            [DeadLetter(batch.source, batch.origin, reason)]
    except Exception:  # noqa: BLE001 - ids unreadable: the batch as a whole
        return [DeadLetter(batch.source, batch.origin, reason)]
