"""The DQM core and its embedded path: occupancy maps -> conv-AE scores -> DQM alerts.

``process_occupancy(maps, ctx)`` is the one entry point (embedded loop and the
faust agent on ``hotline.occupancy`` alike): it scores every map with the
registered conv-AE of its subsystem (batched per subsystem), and for each map
above the threshold at ``ctx.p_value`` builds an ``AlertRecord`` with
``kind="dqm"``, ``rule=f"dqm_{subsystem}"``, ``event=0`` and a payload naming
the run, lumisection, subsystem, the top hardware units with their loss
contributions, plus the normalised map and the per-cell loss (the dashboard's
heatmap and loss overlay). The threshold and p-value are those at the map's own
events per lumisection when the model is calibrated per statistics
(``models.occupancy_statistics``); a map whose events per lumisection lie outside the
model's calibrated range is *not scored*: it becomes a dead letter with the one-line
reason and a ``MapScore`` with ``note`` "not calibrated: ..." (never an alert). Maps of a
subsystem without a model, or of the wrong shape, become dead letters naming the map.
Pure: no I/O.

The alert p-value is one configuration key, ``[dqm] p_value`` (``HOTLINE_DQM_P_VALUE``,
``--p-value``): ``DQMContext.from_config(cfg)`` is what the CLI, the worker's agent and
the monitor are built with.

``DQMMonitor`` is the embedded path hooked to replays: called with each
``EventBatch`` (it is a valid ``run_embedded(..., on_result=monitor)`` hook), it
accumulates occupancy maps with ``detectors.occupancy.accumulate`` (optionally
injecting faults), and once the stream has left a lumisection it scores that
lumisection's maps and writes the alerts to the alert store; ``finish()``
flushes the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.alerts.records import AlertRecord, DeadLetter
from hotline.config import Config, DQMConfig
from hotline.detectors.occupancy import HitModel, OccupancyMap, accumulate, add_background
from hotline.errors import ConfigError, HotlineError, ModelError
from hotline.models.interface import OccupancyScorer

log = logging.getLogger(__name__)


@dataclass
class DQMContext:
    """Scorers per subsystem, the alert p-value and payload options."""

    #: subsystem -> the scorer of its occupancy model (e.g. models.conv_ae.ConvAEScorer):
    #: ``score(counts, n_events)``, ``threshold(p)``, ``geometry``, ``subsystem``
    scorers: dict[str, OccupancyScorer]
    p_value: float = DQMConfig.p_value
    top_k: int = 5
    include_maps: bool = True  #: put the map and per-cell loss in the payload
    digits: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < float(self.p_value) < 1.0:
            raise ConfigError(f"DQM p-value {self.p_value!r} ([dqm] p_value, "
                              "HOTLINE_DQM_P_VALUE, --p-value) must be in (0, 1)")

    @classmethod
    def from_config(cls, cfg: Config, subsystems: Sequence[str] | None = None,
                    **kw: Any) -> DQMContext:
        """The context of a configuration: its model registry and ``[dqm] p_value``."""
        return cls.from_registry(subsystems, cfg.model.registry, cfg.dqm.p_value, **kw)

    @classmethod
    def from_registry(cls, subsystems: Sequence[str] | None = None,
                      registry: str | Path | None = None,
                      p_value: float | None = None, **kw: Any) -> DQMContext:
        """One scorer per subsystem (default: every registered model of an occupancy kind,
        ``models.kinds``; ``subsystems`` names them ``conv_<subsystem>``). Without
        ``p_value``: the configured ``[dqm] p_value`` (config file, ``HOTLINE_DQM_P_VALUE``)."""
        if p_value is None:
            from hotline.config import load_config

            p_value = load_config().dqm.p_value
        from hotline.models.kinds import available_model_kinds
        from hotline.models.registry import available_models, load_model

        if subsystems is None:
            occupancy = set(available_model_kinds(family="occupancy"))
            names = sorted({m["name"] for m in available_models(registry)
                            if m["kind"] in occupancy})
        else:
            names = [f"conv_{s}" for s in subsystems]
        scorers = {}
        for n in names:
            model = load_model(n, registry=registry)
            if model.model_kind.family != "occupancy":
                raise ModelError(f"model {n} is of kind '{model.kind}', which scores events, "
                                 "not occupancy maps; DQM needs an occupancy kind ("
                                 f"{', '.join(available_model_kinds(family='occupancy'))})")
            sc = model.scorer()
            if not isinstance(sc, OccupancyScorer):
                raise ModelError(f"model {n} (kind '{model.kind}') has no occupancy scorer")
            scorers[sc.subsystem] = sc
        return cls(scorers, p_value, **kw)

    def threshold(self, subsystem: str, n_events: float | None = None) -> float:
        """The map-score threshold at ``p_value`` (at ``n_events`` events per lumisection
        when the subsystem's model is calibrated per statistics)."""
        sc: Any = self.scorers[subsystem]
        if n_events is not None and getattr(sc, "statistics", None) is not None:
            return float(sc.threshold(self.p_value, n_events))
        return float(sc.threshold(self.p_value))

    def calibration_problem(self, subsystem: str, n_events: float) -> str | None:
        """Why the subsystem's model cannot score a map of ``n_events`` events (or None)."""
        check = getattr(self.scorers[subsystem], "calibration_problem", None)
        return check(n_events) if check is not None else None


@dataclass
class MapScore:
    """What one map scored (for summaries, benchmarks and the dashboard)."""

    key: tuple[str, int, int, str]
    score: float
    p_value: float
    threshold: float
    alert: bool
    top_units: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  #: why the map was not scored ("not calibrated: ..."), else empty

    @property
    def scored(self) -> bool:
        return not self.note


@dataclass
class DQMResult:
    alerts: list[AlertRecord] = field(default_factory=list)
    scores: list[MapScore] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)

    def __add__(self, other: DQMResult) -> DQMResult:
        return DQMResult(self.alerts + other.alerts, self.scores + other.scores,
                         self.deadletters + other.deadletters)


def _grid(a: np.ndarray, digits: int) -> list[list[float]]:
    return np.round(a.astype(np.float64), digits).tolist()


def process_occupancy(maps: Iterable[OccupancyMap], ctx: DQMContext) -> DQMResult:
    """Score occupancy maps and build DQM alerts (see module docstring); pure."""
    result = DQMResult()
    by_sub: dict[str, list[OccupancyMap]] = {}
    for m in maps:
        by_sub.setdefault(m.subsystem, []).append(m)
    now = time.time()
    for sub, ms in by_sub.items():
        scorer = ctx.scorers.get(sub)
        if scorer is None:
            for m in ms:
                result.deadletters.append(DeadLetter(
                    m.source, f"occupancy {m.subsystem} run {m.run} LS {m.lumi}",
                    f"no DQM model for subsystem '{sub}' (have: "
                    f"{', '.join(sorted(ctx.scorers)) or 'none'}); map not scored",
                    run=m.run, lumi=m.lumi))
            continue
        good = []
        for m in ms:
            where = f"occupancy {m.subsystem} run {m.run} LS {m.lumi}"
            if m.counts.shape != scorer.geometry.shape:
                result.deadletters.append(DeadLetter(
                    m.source, where, f"map of shape {m.counts.shape} does not fit geometry "
                    f"'{sub}' {scorer.geometry.shape}", run=m.run, lumi=m.lumi))
                continue
            problem = ctx.calibration_problem(sub, m.n_events)
            if problem is not None:
                log.warning("%s: %s", where, problem)
                result.deadletters.append(DeadLetter(m.source, where, problem, run=m.run,
                                                     lumi=m.lumi))
                result.scores.append(MapScore(m.key, float("nan"), float("nan"),
                                              float("nan"), False,
                                              note=f"not calibrated: {problem}"))
                continue
            good.append(m)
        if not good:
            continue
        counts = np.stack([m.counts for m in good])
        n_ev = np.array([m.n_events for m in good])
        s = scorer.score(counts, n_ev)
        floor = _p_floor(scorer, n_ev)
        geo = scorer.geometry
        for i, m in enumerate(good):
            thr = ctx.threshold(sub, m.n_events)
            alert = bool(s.total[i] > thr)
            top = s.top_units(i, ctx.top_k)
            result.scores.append(MapScore(m.key, float(s.total[i]), float(s.p_value[i]), thr,
                                          alert, top if alert else []))
            if not alert:
                continue
            payload: dict[str, Any] = {
                "run": m.run, "lumi": m.lumi, "subsystem": sub, "title": geo.title,
                "model": f"{scorer.name} v{scorer.version}",
                "n_events": m.n_events, "pileup": round(m.pileup, 2),
                "threshold": round(thr, 4), "alert_p_value": ctx.p_value,
                # the smallest p-value the reference supports at these events: a p-value
                # equal to it is a bound (p < p_floor), not a measurement
                "p_floor": floor[i],
                "top_units": top,
                "summary": ", ".join(f"{t['level']} {t['unit']}" for t in top[:3]),
            }
            if ctx.include_maps:
                payload.update(
                    shape=list(geo.shape), rows=list(geo.built.row_labels),
                    cols=list(geo.built.col_labels),
                    map=_grid(m.normalised, ctx.digits + 2),
                    loss=_grid(s.cell_loss[i].reshape(geo.shape), ctx.digits),
                    expected=_grid(s.expected[i].reshape(geo.shape) / max(m.n_events, 1),
                                   ctx.digits + 2),
                )
            result.alerts.append(AlertRecord.make(
                kind="dqm", rule=f"dqm_{sub}", source=m.source, run=m.run, lumi=m.lumi,
                event=0, score=float(s.total[i]), p_value=float(s.p_value[i]),
                payload=payload, created=now))
    return result


def _p_floor(scorer: Any, n_events: np.ndarray) -> list[float | None]:
    """Per map: the smallest p-value ``scorer`` can give at its events per lumisection (its
    p-value of an infinite score; None when the scorer cannot say)."""
    inf = np.full(len(n_events), np.inf)
    try:
        try:
            p = scorer.p_value(inf, n_events)
        except TypeError:  # a scorer without per-statistics calibration
            p = scorer.p_value(inf)
        return [float(x) if np.isfinite(x) else None
                for x in np.broadcast_to(np.asarray(p, float), inf.shape)]
    except (HotlineError, ValueError):
        return [None] * len(n_events)


@dataclass
class DQMReport:
    maps: int = 0
    alerts_new: int = 0
    alerts_seen: int = 0
    deadletters: int = 0
    not_calibrated: int = 0  #: maps refused: events per lumisection outside the calibration
    injected: list[dict[str, Any]] = field(default_factory=list)
    scores: list[MapScore] = field(default_factory=list)


class DQMMonitor:
    """Embedded DQM: accumulate maps from event batches, score finished lumisections.

    ``faults``: subsystem -> faults injected into every map of ``fault_lumis``
    (all lumisections when None) before scoring -- the ``hotline dqm replay
    --scenario`` path for trying the chain end to end.
    """

    def __init__(self, ctx: DQMContext, store: Any, hit_model: HitModel = HitModel(),
                 faults: dict[str, list[Any]] | None = None,
                 fault_lumis: set[int] | None = None) -> None:
        self.ctx = ctx
        self.store = store
        self.hit_model = hit_model
        self.geometries = [sc.geometry for sc in ctx.scorers.values()]
        self.faults = faults or {}
        self.fault_lumis = fault_lumis
        self.open: dict[tuple[str, int, int, str], OccupancyMap] = {}
        self.report = DQMReport()

    def __call__(self, batch: Any, result: Any = None) -> None:
        try:
            maps = accumulate(batch, self.geometries, self.hit_model, background=False)
        except HotlineError as exc:
            self.store.add_deadletters([DeadLetter(batch.source, batch.origin,
                                                   f"occupancy maps: {exc}")])
            self.report.deadletters += 1
            return
        for k, m in maps.items():
            self.open[k] = self.open[k] + m if k in self.open else m
        if maps:
            latest = max((k[1], k[2]) for k in maps)
            done = [k for k in self.open if (k[1], k[2]) < latest]
            if done:
                self._flush(done)

    def _flush(self, keys: list[tuple[str, int, int, str]]) -> None:
        from hotline.detectors.occupancy_faults import inject

        maps = []
        geos = {g.name: g for g in self.geometries}
        for k in sorted(keys, key=lambda k: (k[1], k[2], k[3])):
            m = add_background(self.open.pop(k), geos[k[3]], self.hit_model)
            faults = self.faults.get(m.subsystem)
            if faults and (self.fault_lumis is None or m.lumi in self.fault_lumis):
                geo = self.ctx.scorers[m.subsystem].geometry
                counts, truth = inject(m.counts, geo, faults, seed=m.lumi)
                m = OccupancyMap(m.subsystem, m.run, m.lumi, counts, m.n_events, m.source,
                                 m.pileup, {**m.meta, "injected": [t.to_dict() for t in truth]})
                self.report.injected.append({"run": m.run, "lumi": m.lumi,
                                             "subsystem": m.subsystem,
                                             "faults": [t.to_dict() for t in truth]})
            maps.append(m)
        res = process_occupancy(maps, self.ctx)
        new = self.store.add_alerts(res.alerts)
        if res.deadletters:
            self.store.add_deadletters(res.deadletters)
        self.report.maps += len(maps)
        self.report.alerts_new += len(new)
        self.report.alerts_seen += len(res.alerts)
        self.report.deadletters += len(res.deadletters)
        self.report.not_calibrated += sum(1 for s in res.scores if not s.scored)
        self.report.scores += res.scores

    def finish(self) -> DQMReport:
        """Score every lumisection still open (end of the stream)."""
        if self.open:
            self._flush(list(self.open))
        return self.report
