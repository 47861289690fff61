"""L1 agreement per lumisection as the dashboard shows it: one shaping for the live view and
the run report.

Firmware in the loop (``stream.l1_emulation``) leaves in every emulated lumisection's summary
an ``alerts.l1_agreement.L1Agreement`` (``LumiSummary.l1``: the build compared, per menu seed
the events whose firmware and serving decisions differ, the score moments, the largest
differences) and raises divergence alarms as DQM-kind alerts (rules
``l1_divergence:<model>:<build>:<seed>`` and ``l1_emulation_failed:<model>:<build>``). This
module turns both into what is drawn and listed, for ``views.l1_agreement`` (live) and
``run_report`` (static):

* ``l1_alarms`` - the divergence alarms per lumisection (``L1Alarm``);
* ``l1_points`` - one row per lumisection and seed: agreement (NaN where nothing was
  compared), events differing / emulated / failed, good events and the fraction emulated,
  the build, the alarm at that seed; ``per_seed`` splits them into one series per seed;
* ``l1_builds`` - the builds compared in a run (model, version, build hash, seeds) and the
  lumisections each covers (a build replaced mid-run shows as two);
* ``l1_selection`` - some lumisections' comparison merged per build: events emulated and
  the fraction, score correlation, agreement per seed, the largest score differences;
* ``l1_lumi_rows`` - the lumisections whose decisions differ, failed or alarmed;
* ``not_emulated`` - the one line shown for a run without emulation, and how to turn it on.

The fraction emulated is of the lumisection's good events (quarantined events are never
scored, so never emulated). No Panel, no Bokeh here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hotline.alerts.l1_agreement import TOP_DIFFERENCES, L1Agreement, L1Header
from hotline.alerts.lumi_status import merge_ranges
from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.alerts.statistics import level_of

__all__ = ["L1_RULES", "L1Alarm", "L1Build", "agreement", "is_l1_alarm", "l1_alarms", "l1_builds",
           "l1_lumi_rows", "l1_points", "l1_seeds", "l1_selection", "lumi_ranges",
           "not_emulated", "per_seed"]

#: rule prefixes of the divergence alarms (``stream.l1_emulation.divergence_alerts``)
L1_RULES = ("l1_divergence:", "l1_emulation_failed:")

POINT_COLUMNS = ("lumi", "seed", "agreement", "agreement_text", "differ", "n", "n_failed",
                 "n_good", "fraction", "fraction_text", "build", "alarm")


@dataclass(frozen=True)
class L1Alarm:
    """One divergence alarm: lumisection, seed ("" when the emulation failed), level, build."""

    lumi: int
    seed: str
    level: str
    build: str
    text: str

    @property
    def label(self) -> str:
        """``"Tight red"`` or ``"emulation failed red"``."""
        return f"{self.seed or 'emulation failed'} {self.level}"


def is_l1_alarm(alert: AlertRecord) -> bool:
    """Is ``alert`` a divergence alarm of firmware in the loop?"""
    return alert.kind == "dqm" and alert.rule.startswith(L1_RULES)


def l1_alarms(alerts: Iterable[AlertRecord]) -> dict[int, list[L1Alarm]]:
    """The divergence alarms among ``alerts`` by lumisection, in the order given. Seed and
    build come from the payload, else from the rule name; the level from the payload, else
    from the alert's (Sidak-corrected) p-value."""
    out: dict[int, list[L1Alarm]] = {}
    for a in alerts:
        if not is_l1_alarm(a):
            continue
        p = a.payload if isinstance(a.payload, dict) else {}
        parts = a.rule.split(":")
        failed = a.rule.startswith("l1_emulation_failed:")
        seed = "" if failed else str(p.get("seed") or ":".join(parts[3:]))
        level = str(p.get("level") or (level_of(a.p_value) if a.p_value is not None else "red"))
        build = str(p.get("build") or (parts[2] if len(parts) > 2 else ""))
        out.setdefault(int(a.lumi), []).append(
            L1Alarm(int(a.lumi), seed, level, build, str(p.get("text") or a.rule)))
    return out


def _emulated(sums: Iterable[LumiSummary]) -> list[LumiSummary]:
    return sorted((s for s in sums if s.l1 is not None), key=lambda s: s.lumi)


def _good(s: LumiSummary) -> int:
    return max(int(s.n_events) - int(s.n_bad), 0)


def _fraction(emulated: int, good: int) -> float:
    return emulated / good if good > 0 else float("nan")


def _pct(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}%}" if math.isfinite(x) else "-"


def l1_seeds(sums: Iterable[LumiSummary]) -> list[str]:
    """The menu seed labels of the builds compared, in menu order (first build first)."""
    return list(dict.fromkeys(seed[0] for s in _emulated(sums) for seed in s.l1.header.seeds))


def agreement(agg: L1Agreement, label: str) -> float:
    """Decision agreement at ``label``; NaN when no event was compared (all failed)."""
    return agg.agreement(label) if agg.n > 0 else float("nan")


def l1_points(sums: Iterable[LumiSummary],
              alarms: dict[int, list[L1Alarm]] | None = None) -> dict[str, list[Any]]:
    """One row per emulated lumisection and menu seed (lumisection order, menu order):
    ``POINT_COLUMNS``. ``alarm`` is the alarm at that seed (or the failed emulation) of
    that build, "" without one."""
    alarms = alarms or {}
    out: dict[str, list[Any]] = {c: [] for c in POINT_COLUMNS}
    for s in _emulated(sums):
        a = s.l1
        good = _good(s)
        frac = _fraction(a.n + a.n_failed, good)
        mine = [x for x in alarms.get(s.lumi, []) if not x.build or x.build == a.header.build]
        failed = [x.label for x in mine if not x.seed]
        for label, *_ in a.header.seeds:
            ag = agreement(a, label)
            out["lumi"].append(int(s.lumi))
            out["seed"].append(label)
            out["agreement"].append(ag)
            out["agreement_text"].append(_pct(ag) if a.n else "- (emulation failed)")
            out["differ"].append(int(a.disagree.get(label, 0)))
            out["n"].append(int(a.n))
            out["n_failed"].append(int(a.n_failed))
            out["n_good"].append(good)
            out["fraction"].append(frac)
            out["fraction_text"].append(_pct(frac, 1))
            out["build"].append(a.header.build)
            out["alarm"].append(", ".join([x.label for x in mine if x.seed == label] + failed))
    return out


def per_seed(points: dict[str, list[Any]]) -> dict[str, dict[str, list[Any]]]:
    """``l1_points`` split into one series per seed (same columns), in menu order."""
    out: dict[str, dict[str, list[Any]]] = {}
    for i, seed in enumerate(points["seed"]):
        d = out.setdefault(seed, {c: [] for c in points})
        for c, values in points.items():
            d[c].append(values[i])
    return out


def lumi_ranges(lumis: Iterable[int]) -> str:
    """``"LS 1-5, 7"`` (consecutive lumisections merged); "" for none."""
    rs = merge_ranges(lumis)
    if not rs:
        return ""
    return "LS " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in rs)


@dataclass(frozen=True)
class L1Build:
    """A build compared in a run and the lumisections it was compared in."""

    header: L1Header
    lumis: tuple[int, ...]

    @property
    def label(self) -> str:
        h = self.header
        return f"{h.model} v{h.version} build {h.build}"


def l1_builds(sums: Iterable[LumiSummary]) -> list[L1Build]:
    """The builds compared in ``sums``, in the order first seen (by lumisection)."""
    by: dict[tuple[str, str, str], tuple[L1Header, list[int]]] = {}
    for s in _emulated(sums):
        h = s.l1.header
        by.setdefault((h.model, h.version, h.build), (h, []))[1].append(int(s.lumi))
    return [L1Build(h, tuple(ls)) for h, ls in by.values()]


def l1_selection(sums: Iterable[LumiSummary],
                 lumis: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The comparison of lumisections ``lumis`` (None: all) merged per build (a summary
    compares one build; two builds are never added): per build ``{"build": L1Build,
    "n", "n_failed", "n_good", "fraction", "correlation", "seeds": [{"seed", "p",
    "threshold", "fixed", "differ", "agreement", "pass_fw", "pass_sv"}], "top": [{"lumi",
    "event", "firmware", "serving", "diff"}]}`` (the ``TOP_DIFFERENCES`` largest
    |firmware - serving| of the selection)."""
    keep = None if lumis is None else set(lumis)
    chosen = [s for s in _emulated(sums) if keep is None or s.lumi in keep]
    out = []
    for b in l1_builds(chosen):
        mine = [s for s in chosen if s.l1.header.build == b.header.build
                and s.l1.header.model == b.header.model]
        total: L1Agreement | None = None
        for s in mine:
            total = s.l1 if total is None else total + s.l1
        assert total is not None
        good = sum(_good(s) for s in mine)
        top = sorted(({"lumi": int(s.lumi), "event": int(r[0]), "firmware": float(r[1]),
                       "serving": float(r[2]), "diff": abs(float(r[1]) - float(r[2]))}
                      for s in mine for r in s.l1.top),
                     key=lambda d: (-d["diff"], d["lumi"], d["event"]))[:TOP_DIFFERENCES]
        out.append({
            "build": b, "n": total.n, "n_failed": total.n_failed, "n_good": good,
            "fraction": _fraction(total.n + total.n_failed, good),
            "correlation": total.correlation,
            "seeds": [{"seed": label, "p": p, "threshold": thr, "fixed": fixed,
                       "differ": int(total.disagree.get(label, 0)),
                       "agreement": agreement(total, label),
                       "pass_fw": int(total.pass_fw.get(label, 0)),
                       "pass_sv": int(total.pass_sv.get(label, 0))}
                      for label, p, thr, fixed in b.header.seeds],
            "top": top,
        })
    return out


def l1_lumi_rows(sums: Iterable[LumiSummary],
                 alarms: dict[int, list[L1Alarm]] | None = None) -> list[dict[str, Any]]:
    """The emulated lumisections whose decisions differ at some seed, whose emulation
    failed, or which have an alarm: ``{"lumi", "n", "n_failed", "differ" (``"Loose 1
    (99.950%), ..."``), "correlation", "alarms" (``"Loose red, ..."``), "n_differ"}``,
    lumisection order."""
    alarms = alarms or {}
    rows = []
    for s in _emulated(sums):
        a = s.l1
        if not (any(a.disagree.values()) or a.n_failed or s.lumi in alarms):
            continue
        differ = ", ".join(f"{label} {a.disagree.get(label, 0)} ({_pct(agreement(a, label))})"
                           for label, *_ in a.header.seeds if a.disagree.get(label, 0))
        rows.append({"lumi": int(s.lumi), "n": a.n, "n_failed": a.n_failed, "differ": differ,
                     "correlation": a.correlation, "n_differ": sum(a.disagree.values()),
                     "alarms": ", ".join(x.label for x in alarms.get(s.lumi, []))})
    return rows


def not_emulated(run: int | None) -> str:
    """The one line for a run whose summaries carry no L1 comparison."""
    what = "This run" if run is None else f"Run {run}"
    return (f"{what} was not emulated: no lumisection carries an L1 comparison. Turn it on "
            "with `--emulate BUILD_DIR` on `hotline replay` or `hotline worker` (a `hotline "
            "firmware build` output; `--emulate-fraction F` to sample, or `[firmware] "
            "emulate` in the configuration).")
