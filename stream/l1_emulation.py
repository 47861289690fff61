"""Firmware in the loop: the L1 emulation of a firmware build beside the serving score.

``L1EmulationRule`` joins a rule menu (kind ``"l1"``) when ``[firmware] emulate`` names a
build folder (``hotline firmware build`` output: ``l1_menu.json`` + the emulation library,
opened by ``models.l1_emulator.L1Emulator``; no hls4ml, no torch). On each batch it emulates
the good events -- all, or the fraction ``[firmware] emulate_fraction`` chosen by a hash of
the event number, so a re-processed event is sampled again and counted once -- scores the
same events with the build's model in onnxruntime, raises alerts from the firmware decision
at the seed ``[firmware] emulate_seed`` (the L1 trigger's own decision), and leaves the
per-event scores in the batch context. :func:`attach_l1` (the batch core's hook) puts them in
each lumisection's ``EventTally`` (``alerts.l1_agreement.L1Tally``), from which the summary
derives the per-seed agreement, correlation and largest differences. :func:`judge` (the
embedded path's hook, at each flushed lumisection; :class:`LumiJudge` is the sink's) raises
the divergence alarm (:func:`divergence_alerts`: at a seed, significantly more differing
events than ``[firmware] min_agreement`` allows -- exact one-sided binomial test, Sidak over
the seeds, the run status's amber/red bounds -- or a failed emulation -> DQM-kind alerts
naming model, build and seed, which the run status shows as findings of the ``L1 <model>``
subsystem). A failing emulation is no failed batch: its
events count as failed in the comparison, which alarms too.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hotline.alerts.l1_agreement import L1_SUBSYSTEM, L1Agreement, L1Header, L1Tally
from hotline.alerts.records import AlertRecord
from hotline.alerts.rules import RuleOutcome
from hotline.alerts.statistics import binomial_tail, level_of, p_is, sidak
from hotline.errors import ModelError

log = logging.getLogger(__name__)

CONTEXT_KEY = "l1_emulation"


def sampled(event: np.ndarray, fraction: float) -> np.ndarray:
    """Deterministic sample of events by number (the same events on every worker and pass)."""
    if fraction >= 1.0:
        return np.ones(event.shape, bool)
    x = np.asarray(event, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    return (x & np.uint64(0xFFFFFF)).astype(np.float64) / float(1 << 24) < fraction


class L1EmulationRule:
    """The firmware decision of a build's L1 emulation as a rule (module docstring)."""

    kind = "l1"

    def __init__(self, emulator: Any, scorer: Any, fraction: float = 1.0,
                 seed: str = "Nominal", name: str | None = None) -> None:
        if not 0 < fraction <= 1:
            raise ModelError(f"L1 emulation: fraction must be in (0, 1], got {fraction}")
        self.emulator = emulator
        self.scorer = scorer
        self.fraction = float(fraction)
        menu = emulator.menu
        labels = [s.label for s in menu.seeds]
        self.seed = menu.seed(seed if seed in labels else labels[len(labels) // 2])
        self.name = name or f"l1_{menu.model}_{self.seed.label}"
        self.header = L1Header(menu.model, menu.version, menu.build, menu.frac_bits,
                               tuple((s.label, s.p, s.threshold, s.fixed) for s in menu.seeds))

    @property
    def needs(self) -> list[str]:
        return []

    def evaluate(self, arrays: Any, context: dict[str, Any]) -> RuleOutcome:
        features = context.get("features")
        if features is None:
            return RuleOutcome(self.name, None, kind="l1",
                               missing=list(context.get("features_missing") or ["features"]))
        good = context.get("good")
        good = ~features.bad if good is None else good
        batch = context.get("batch")
        events = (np.asarray(batch.event) if batch is not None
                  else np.arange(len(features), dtype=np.int64))
        idx = np.flatnonzero(good & sampled(events, self.fraction))
        x, m = features.x[idx], features.mask[idx]
        res = self.scorer.score_arrays(x, m, where=getattr(batch, "origin", "batch"))
        sv = np.asarray(res.extra.get(self.emulator.menu.serving_score, res.total), np.float64)
        try:
            fw = self.emulator.scores(x, m)
        except Exception as exc:  # noqa: BLE001 - a failing emulation is alarmed, not fatal
            log.warning("L1 emulation %s failed on %s: %s", self.emulator.name,
                        getattr(batch, "origin", "batch"), exc)
            fw = np.full(idx.size, np.nan)
        context[CONTEXT_KEY] = (self.header, idx, fw, sv)
        lsb = np.floor(np.nan_to_num(fw, nan=-np.inf) * 2.0 ** self.header.frac_bits)
        mask = np.zeros(len(features), bool)
        mask[idx] = lsb > self.seed.fixed
        menu, seed = self.emulator.menu, self.seed
        row = np.full(len(features), -1, np.int64)
        row[idx] = np.arange(idx.size)

        def details(i: int) -> dict[str, Any]:
            r = int(row[i])
            return {"model": menu.model, "version": menu.version, "build": menu.build,
                    "seed": seed.label, "p": seed.p, "threshold_fixed": seed.fixed,
                    "l1_score": float(fw[r]), "l1_score_lsb": int(lsb[r]),
                    "serving_score": float(sv[r])}

        return RuleOutcome(self.name, mask, kind="l1", details=details)


def attach_l1(tally: Any, context: dict[str, Any], sel: np.ndarray, event: np.ndarray) -> Any:
    """The batch core's hook: ``tally`` of the events ``sel`` with their emulation entries."""
    got = context.get(CONTEXT_KEY)
    if got is None:
        return tally
    header, idx, fw, sv = got
    pos = np.flatnonzero(np.isin(idx, sel))
    from dataclasses import replace

    return replace(tally, l1=L1Tally.build(header, event[idx[pos]], fw[pos], sv[pos]))


def divergence_test(k: int, n: int, min_agreement: float, m: int) -> tuple[float, float]:
    """(p, Sidak-corrected p) that ``k`` of ``n`` emulated events differing at one of ``m``
    seeds is no more than the allowed ``1 - min_agreement`` (exact one-sided binomial)."""
    p = binomial_tail(k, n, 1.0 - min_agreement, upper=True) if n else 1.0
    return p, sidak(p, m)


def divergence_alerts(summary: Any, min_agreement: float,
                      created: float | None = None) -> list[Any]:
    """DQM-kind alerts for a lumisection summary whose firmware and serving decisions
    differ significantly more often than ``1 - min_agreement`` at a seed, or whose emulation
    failed.

    The rule (the run status's own statistics, ``alerts.statistics``): at each of the ``m``
    menu seeds, ``k`` of the ``n`` emulated events differ; under a build that meets the bound
    ``k ~ Binomial(n, 1 - min_agreement)`` at worst, so ``p = P(X >= k)`` (exact tail) is
    corrected with Sidak over the ``m`` seeds and a seed alarms when the corrected p is below
    ``AMBER_P`` (amber) or ``RED_P`` (red). A literal "agreement below the bound" cannot be
    used per lumisection: one differing event of 500 is 0.2 %, yet it is what a build at the
    bound shows in 39 % of such lumisections. The alert's ``p_value`` is the corrected p, so
    the run status grades the lumisection by it. The alert ids are stable (one per
    lumisection, build and seed), so a lumisection judged twice raises each alert once.
    """
    agg: L1Agreement | None = getattr(summary, "l1", None)
    if agg is None or (agg.n == 0 and agg.n_failed == 0):
        return []
    h = agg.header
    subsystem = L1_SUBSYSTEM.format(model=h.model)
    out = []

    def alert(rule: str, text: str, units: list[str], p_value: float,
              extra: dict[str, Any]) -> Any:
        payload = {"subsystem": subsystem, "model": h.model, "version": h.version,
                   "build": h.build, "text": text, "n_emulated": agg.n,
                   "n_failed": agg.n_failed,
                   "correlation": agg.correlation if np.isfinite(agg.correlation) else None,
                   "largest_differences": agg.top,
                   "top_units": [{"level": "", "unit": u} for u in units], **extra}
        return AlertRecord.make(kind="dqm", rule=rule, source=summary.source, run=summary.run,
                                lumi=summary.lumi, event=0, score=None, p_value=p_value,
                                payload=payload, created=created)

    if agg.n_failed:
        out.append(alert(f"l1_emulation_failed:{h.model}:{h.build}",
                         f"L1 emulation of {h.model} v{h.version} build {h.build} failed on "
                         f"{agg.n_failed} events", [f"build {h.build} emulation failed"],
                         0.0, {"level": "red"}))
    m = len(h.seeds)
    for label, p, thr, fixed in h.seeds:
        k = agg.disagree.get(label, 0)
        p_raw, p_corr = divergence_test(k, agg.n, min_agreement, m)
        level = level_of(p_corr)
        if level == "green":
            continue
        a = agg.agreement(label)
        text = (f"L1 {h.model} v{h.version} build {h.build}: firmware and serving differ on "
                f"{k} of {agg.n} events at {label} (p={p:g}; agreement {a:.3%}), significantly "
                f"more than the allowed {1 - min_agreement:.2%} ({p_is(p_corr)} after Sidak "
                f"over {m} seeds: {level})")
        out.append(alert(f"l1_divergence:{h.model}:{h.build}:{label}", text,
                         [f"build {h.build} {label} agreement {a:.2%}"], p_corr,
                         {"seed": label, "p": p, "threshold": thr, "fixed": fixed,
                          "agreement": a, "disagree": k, "min_agreement": min_agreement,
                          "p_binomial": p_raw, "p_corrected": p_corr, "level": level}))
    return out


def judge(summaries: Any, min_agreement: float) -> list[Any]:
    """The divergence alerts of complete lumisection summaries (embedded path, at flush)."""
    out: list[Any] = []
    for s in summaries:
        out.extend(divergence_alerts(s, min_agreement))
    return out


class LumiJudge:
    """The sink's hook: judges a stored lumisection once the stream has left it.

    Summaries arrive as partial records from several workers; a lumisection is judged (its
    stored, merged agreement) when a part of a later lumisection of the same run arrived,
    and every lumisection still open when the sink stops. A late part of a judged
    lumisection has it judged again: the alert ids are stable, so nothing is duplicated.
    """

    def __init__(self, min_agreement: float) -> None:
        self.min_agreement = min_agreement
        self.latest: dict[tuple[str, int], int] = {}
        self.pending: set[tuple[str, int, int]] = set()

    def seen(self, summaries: Any) -> None:
        for s in summaries:
            if getattr(s, "l1", None) is None:
                continue
            self.pending.add(s.key)
            k = (s.source, s.run)
            self.latest[k] = max(self.latest.get(k, s.lumi), s.lumi)

    def judge(self, store: Any, everything: bool = False) -> list[Any]:
        """Divergence alerts of the lumisections due (all pending with ``everything``),
        written to ``store``; returns those that were new."""
        due = sorted(k for k in self.pending
                     if everything or k[2] < self.latest.get((k[0], k[1]), k[2]))
        out: list[Any] = []
        by_run: dict[tuple[str, int], set[int]] = {}
        for src, run, ls in due:
            by_run.setdefault((src, run), set()).add(ls)
        for (src, run), lumis in by_run.items():
            for s in store.summaries(source=src, run=run):
                if s.lumi in lumis:
                    out.extend(divergence_alerts(s, self.min_agreement))
        self.pending.difference_update(due)
        return list(store.add_alerts(out)) if out else []


def emulation_rule(cfg: Any, registry: str | None = None) -> L1EmulationRule | None:
    """The rule ``[firmware] emulate`` describes, or None when it is empty."""
    fw = cfg.firmware
    if not fw.emulate:
        return None
    from hotline.models.l1_emulator import L1Emulator
    from hotline.models.scorer import Scorer

    emu = L1Emulator.open(fw.emulate, registry)
    scorer = Scorer.from_registry(emu.menu.model, emu.menu.version, registry)
    return L1EmulationRule(emu, scorer, fw.emulate_fraction, fw.emulate_seed)
