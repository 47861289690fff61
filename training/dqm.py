"""DQM conv-AE training, calibration, registration, and the fault-detection evaluation.

``train_dqm(geometry, ...)`` makes good lumisections with
``detectors.occupancy.synthesize_lumis`` (luminosity and pileup varying per
lumisection), trains the conv-AE (kind ``conv-ae`` of ``models.kinds``: its network is
``models.conv_ae_net``, its scorer ``models.conv_ae``) with a Poisson loss,
measures each hardware unit's good-data loss mean/variance on a held-out set
(``unit_null``), calibrates map-score thresholds per p-value on a third set
(``models.thresholds.calibrate``), and registers ``conv_<geometry>`` with a
``conv-ae`` card through ``models.registry``.

``evaluate(geometries, ...)`` measures, per fault kind and size, the detection
efficiency within one lumisection at a false-alarm rate of 1 per 1000 good
lumisections and the top-1 / top-3 localisation accuracy (among detected), for
the conv-AE and each baseline of ``detectors.dqm_baselines`` on the same maps;
every method's threshold comes from the same good lumisections, and the false
alarm rate is checked on an independent good set. ``plot_evaluation`` draws it.

``calibrate_statistics(name, runs, ...)`` calibrates a registered conv-AE per
events-per-lumisection level on pseudo-lumisections drawn from generated events
(``event_pool`` of archived runs -> ``detectors.pseudo_lumis.draw_lumis``) and registers
the result as a new version whose card carries ``statistics_calibration`` and
``calibrated_events`` (``models.occupancy_statistics``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.detectors.dqm_baselines import Reference, available_baselines, get_baseline
from hotline.detectors.geometry import Geometry, get_geometry
from hotline.detectors.occupancy import LumiSet, synthesize_lumis
from hotline.detectors.occupancy_faults import Fault, get_fault_kind, inject
from hotline.detectors.pseudo_lumis import EventHits, draw_lumis
from hotline.errors import ConfigError, ModelError
from hotline.models.conv_ae import (
    KIND,
    WHITEN_MAX_CELLS,
    ConvAEScorer,
    normalise,
    whiten_units,
)
from hotline.models.kinds import get_model_kind
from hotline.models.occupancy_statistics import INTERPOLATION, level_grid

log = logging.getLogger(__name__)

DQM_P_VALUES = (0.05, 0.01, 1e-3, 1e-4)
FALSE_ALARM = 1e-3  #: evaluation working point: 1 false alarm per 1000 good lumisections


def model_name(geo: Geometry | str) -> str:
    return f"conv_{geo if isinstance(geo, str) else geo.name}"


@dataclass
class TrainSettings:
    n_train: int = 2000
    n_null: int = 1500
    n_calib: int = 5000
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    events_per_lumi: int = 50_000
    lumi_spread: float = 0.3
    pileup: tuple[float, float] = (20.0, 60.0)
    channels: tuple[int, int] = (4, 4)
    pool1: int | None = None  #: first pooling step along phi (None: ~sqrt of the phi cells)
    seed: int = 0
    n_boot: int = 30  #: bootstrap fits for the threshold uncertainties


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def train_conv_ae(geo: Geometry, good: LumiSet, settings: TrainSettings,
                  progress: bool = True) -> tuple[Any, dict[str, Any], np.ndarray, list[float]]:
    """Train on ``good``; returns (torch model, arch, reference occupancy, loss curve)."""
    import torch

    from hotline.models.conv_ae_net import default_arch

    torch.manual_seed(settings.seed)
    arch = default_arch(geo, *settings.channels, pool1=settings.pool1)
    model = get_model_kind(KIND).build_model(arch)
    with torch.no_grad():  # start from "every cell as the reference" (x_hat ~ 1)
        model[-1].weight.mul_(0.1)
        model[-1].bias.fill_(1.0)
    ref = (good.counts.reshape(len(good), -1) / good.n_events[:, None]).mean(axis=0)
    ref = np.maximum(ref, 1e-9)
    x = torch.from_numpy(normalise(good.counts, good.n_events, ref))
    counts = torch.from_numpy(good.counts.reshape(len(good), 1, *geo.shape).astype(np.float32))
    scale = torch.from_numpy((good.n_events[:, None] * ref[None]).astype(np.float32)
                             .reshape(len(good), 1, *geo.shape))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.epochs)
    gen = torch.Generator().manual_seed(settings.seed)
    curve: list[float] = []
    bar = _progress(settings.epochs, f"train {geo.name}", progress)
    for _ in range(settings.epochs):
        perm = torch.randperm(len(x), generator=gen)
        tot = 0.0
        for i in range(0, len(x), settings.batch_size):
            idx = perm[i : i + settings.batch_size]
            mu = torch.clamp(model(x[idx]), min=1e-3) * scale[idx]
            # Poisson negative log-likelihood per cell (up to a constant), mean per cell
            loss = (mu - counts[idx] * torch.log(mu)).mean() / scale[idx].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
        sched.step()
        curve.append(tot / len(x))
        bar.update(1)
        bar.set_postfix(loss=f"{curve[-1]:.5f}")
    bar.close()
    model.eval()
    return model, arch, ref, curve


def train_dqm(
    geo: Geometry,
    settings: TrainSettings | None = None,
    registry: str | Path | None = None,
    version: str | int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """Train, calibrate and register the conv-AE of one geometry; returns the RegisteredModel."""
    import torch

    from hotline.models.registry import register_model

    s = settings or TrainSettings()
    t0 = time.perf_counter()
    kw = dict(events_per_lumi=s.events_per_lumi, lumi_spread=s.lumi_spread, pileup=s.pileup)
    train = synthesize_lumis(geo, s.n_train, seed=s.seed, run=100, **kw)
    null = synthesize_lumis(geo, s.n_null, seed=s.seed, run=101, **kw)
    calib = synthesize_lumis(geo, s.n_calib, seed=s.seed, run=102, **kw)
    model, arch, ref, curve = train_conv_ae(geo, train, s, progress)
    card: dict[str, Any] = {
        "kind": KIND,
        "description": f"DQM conv-AE for {geo.title}",
        "feature_spec": None,
        "geometry": geo.to_dict(),
        "architecture": arch,
        "normalisation": {
            "scheme": "counts / (n_events * reference); reference = mean hits per event per "
                      "cell over the good training lumisections",
            "reference": [float(v) for v in ref],
        },
        "score": SCORE_TEXT,
    }
    card["score_mode"] = "level_min_p"
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = get_model_kind(KIND).export_onnx(model, Path(tmp) / "model.onnx")
        card.update(calibrate_card(card, model_name(geo), onnx_path, null, calib, s))
        card["training"] = {
            "sample": "detectors.occupancy.synthesize_lumis (good lumisections: make_events-like "
                      "objects -> hits, + pileup + noise, Poisson per cell)",
            "events_per_lumi": s.events_per_lumi, "lumi_spread": s.lumi_spread,
            "pileup": list(s.pileup), "n_train": s.n_train, "n_null": s.n_null,
            "n_calib": s.n_calib, "epochs": s.epochs, "seed": s.seed,
            "final_loss": curve[-1] if curve else None, "seconds": time.perf_counter() - t0,
        }
        card["regenerate"] = (
            f"hotline dqm train --geometry {geo.name} --epochs {s.epochs} --n-train {s.n_train} "
            f"--n-calib {s.n_calib} --events-per-lumi {s.events_per_lumi} --channels "
            f"{s.channels[0]},{s.channels[1]}"
            + (f" --pool1 {s.pool1}" if s.pool1 else "") + f" --seed {s.seed}")
        wpath = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), wpath)
        return register_model(model_name(geo), onnx_path, card, weights_file=wpath,
                              registry=registry, version=version, overwrite=overwrite)


def calibrate_card(card: dict[str, Any], name: str, onnx_path: Path, null: LumiSet,
                   calib: LumiSet, s: TrainSettings) -> dict[str, Any]:
    """unit_null (per-unit good-data loss mean/var) and thresholds for a card."""
    from hotline.models.thresholds import calibrate

    scorer = ConvAEScorer({**card, "name": name, "unit_null": None, "reference": None},
                          onnx_path)
    ns = scorer.score(null.counts, null.n_events)
    nl, npull = ns.unit_loss, ns.unit_pull
    umu = ns.unit_mu.mean(axis=0)
    mean = nl.mean(axis=0)
    var = np.maximum(nl.var(axis=0), 1e-6 * np.maximum(mean, 1e-6))
    out: dict[str, Any] = {"unit_null": {
        "n_ref": len(null), "mean": [float(v) for v in mean], "var": [float(v) for v in var],
        "sum_mean": [float(v) for v in npull.mean(axis=0)],
        "sum_var": [float(v) for v in np.maximum(npull.var(axis=0), 1e-6)],
        "sum_rel_bias": [float(v) for v in npull.mean(axis=0) / np.sqrt(umu)],
        "sum_rel_var": [float(v) for v in np.maximum(npull.var(axis=0) - 1.0, 0.0) / umu],
        "whiten": whiten_levels(scorer.geometry, null.counts, ns.expected)}}
    scorer = ConvAEScorer({**card, **out, "name": name, "reference": None}, onnx_path)
    cs = scorer.score(calib.counts, calib.n_events).total
    cal = calibrate(cs, DQM_P_VALUES, seed=s.seed, n_boot=s.n_boot)
    out.update(thresholds=cal["thresholds"], refused=cal["refused"], reference=cal["reference"])
    return out


def whiten_levels(geo: Geometry, counts: np.ndarray, mu: np.ndarray) -> dict[str, Any]:
    """Whitened sum-test weights (``models.conv_ae.whiten_units``) of every unit level
    whose units have the same number of cells, 2 to ``WHITEN_MAX_CELLS`` (chambers,
    sectors), from good lumisections' counts and reconstructed expectations."""
    r = (counts.reshape(len(counts), -1) - mu) / np.sqrt(np.maximum(mu, 1e-3))
    out: dict[str, Any] = {}
    for name, lv in geo.levels.items():
        cells = [lv.cells(u) for u in range(lv.n_units)]
        k = {len(c) for c in cells}
        if len(k) == 1 and 1 < k.pop() <= WHITEN_MAX_CELLS:
            out[name] = whiten_units(r, mu, np.array(cells))
    return out


def recalibrate_dqm(name: str, registry: str | Path | None = None,
                    events_per_lumi: int | None = None, version: str | int | None = None,
                    overwrite: bool = False) -> Any:
    """Re-measure unit_null (incl. the whitened unit tests) and thresholds of a registered
    conv-AE with the current score definition; the ONNX file is unchanged.

    ``events_per_lumi`` calibrates at another mean lumisection size than the training's
    (the network sees maps normalised per event, so it carries over; the good-data
    spreads and the thresholds do not); it is stored in the card's ``calibration`` and
    the evaluation uses it. With ``version`` the result is registered as that new
    version (same ONNX and weights); without, the card is updated in place.
    """
    from hotline.models.registry import load_model, register_model, update_card

    m = load_model(name, registry=registry)
    tr = m.card["training"]
    epl = int(events_per_lumi or m.card.get("calibration", {}).get("events_per_lumi")
              or tr["events_per_lumi"])
    s = TrainSettings(n_null=int(tr["n_null"]), n_calib=int(tr["n_calib"]),
                      events_per_lumi=epl, lumi_spread=float(tr["lumi_spread"]),
                      pileup=tuple(tr["pileup"]), seed=int(tr["seed"]))
    geo = get_geometry(m.card["geometry"]["name"])
    kw = dict(events_per_lumi=s.events_per_lumi, lumi_spread=s.lumi_spread, pileup=s.pileup)
    null = synthesize_lumis(geo, s.n_null, seed=s.seed, run=101, **kw)
    calib = synthesize_lumis(geo, s.n_calib, seed=s.seed, run=102, **kw)
    card = {**m.card, "score_mode": "level_min_p"}
    card.update(calibrate_card(card, name, m.onnx_path, null, calib, s))
    card["score"] = SCORE_TEXT
    cmd = (f"hotline dqm train --geometry {geo.name} --recalibrate --events-per-lumi {epl}"
           + (f" --version {version}" if version is not None else ""))
    card["calibration"] = {"events_per_lumi": epl, "n_null": s.n_null, "n_calib": s.n_calib,
                           "seed": s.seed,
                           "regenerate": f"{m.card.get('regenerate', '')} (as version "
                                         f"{m.version}); then {cmd}"}
    keys = ("score_mode", "score", "unit_null", "thresholds", "refused", "reference",
            "calibration")
    if version is None:
        return update_card(m, **{k: card[k] for k in keys})
    for k in ("name", "version", "created", "onnx"):
        card.pop(k, None)
    return register_model(name, m.onnx_path, card,
                          weights_file=m.weights_path if m.weights_path.exists() else None,
                          registry=registry, version=version, overwrite=overwrite)


# ----------------------------------------------------- calibration per events/lumisection

#: default statistics levels of ``calibrate_statistics``: 10 levels log-spaced 100..20,000
STAT_LEVELS = (100, 20_000, 10)
STAT_MAPS = 4000  #: clean pseudo-lumisections per level


@dataclass
class EventPool:
    """Events of archived runs as per-event hits of one subsystem, with their provenance."""

    hits: EventHits
    runs: list[int]
    files: list[str]
    lumis: np.ndarray  #: [events] lumisection of each event
    runs_of_events: np.ndarray  #: [events] run of each event


def event_pool(runs: list[int], archive: str | Path, geo: Geometry,
               clean_only: bool = True) -> EventPool:
    """Per-event hits (``detectors.pseudo_lumis.EventHits``) of archived runs, with physical
    weights when the runs carry ``genWeight`` (``models.weights.component_weights``).
    ``clean_only`` drops events with a non-zero ``fault`` code (detector-fault variants)."""
    from hotline.models.weights import component_weights
    from hotline.stream.archive import find_run
    from hotline.stream.replay import ReplaySource

    files: list[str] = []
    for r in runs:
        files.extend(str(f) for f in find_run(Path(archive).expanduser(), r).files)
    branches = [f"{c}_{f}" for c in geo.collections for f in ("pt", "eta", "phi", "charge")]
    src = ReplaySource(files=files, branches=[*branches, "genWeight", "sample", "fault"],
                       step_size=100_000)
    parts, gws, codes, lumis, rns = [], [], [], [], []
    for batch in src:
        a = batch.arrays
        keep = np.ones(len(batch), bool)
        if clean_only and "fault" in a.fields:
            keep = np.asarray(a["fault"]) == 0
        parts.append(EventHits.from_arrays(a[keep], geo, np.asarray(batch.event)[keep],
                                           where=batch.origin))
        if "genWeight" in a.fields:
            gws.append(np.asarray(a["genWeight"], np.float64)[keep])
            codes.append(np.asarray(a["sample"], np.int64)[keep] if "sample" in a.fields
                         else np.zeros(int(keep.sum()), np.int64))
        lumis.append(np.asarray(batch.lumi)[keep])
        rns.append(np.asarray(batch.run)[keep])
    if not parts:
        raise ModelError(f"runs {runs} in {archive} gave no events"
                         + (f": {src.errors}" if src.errors else ""))
    hits = EventHits.concatenate(parts)
    if gws and len(gws) == len(parts):
        w = component_weights(np.concatenate(codes), np.concatenate(gws))
        hits.weights = None if np.allclose(w, 1.0) else w
    return EventPool(hits, list(runs), files, np.concatenate(lumis), np.concatenate(rns))


def statistics_levels(spec: str | tuple[int, int, int]) -> list[int]:
    """``"100:20000:10"`` (low:high:count, log-spaced) or ``"250,500,2000"`` -> levels."""
    if isinstance(spec, tuple):
        return level_grid(*spec)
    try:
        if ":" in spec:
            lo, hi, k = spec.split(":")
            return level_grid(float(lo), float(hi), int(k))
        return sorted({int(v) for v in spec.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"statistics levels '{spec}': give LOW:HIGH:COUNT (e.g. "
                          "100:20000:10) or a list (250,500,2000)") from None


def calibrate_statistics(
    name: str,
    runs: list[int],
    archive: str | Path | None = None,
    levels: str | tuple[int, int, int] = STAT_LEVELS,
    maps_per_level: int = STAT_MAPS,
    pileup: float | tuple[float, float] = 40.0,
    seed: int = 0,
    registry: str | Path | None = None,
    version: str | int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """Calibrate a registered conv-AE per events-per-lumisection on maps of generated events.

    For each level ``n`` of ``levels``: ``maps_per_level`` clean pseudo-lumisections of
    exactly ``n`` events drawn from the events of ``runs`` (data-like: with probability
    proportional to the physical weight, without replacement within a map --
    ``detectors.pseudo_lumis.draw_lumis``; with replacement, the heavy-weight events of a
    biased sample would repeat in one map and make it clumpier than data) plus the
    pileup (``pileup``: the replay default of ``HitModel``, 40, or a uniform range) and
    noise hits; their map scores give the level's
    thresholds (with their uncertainty) and reference distribution
    (``models.thresholds.calibrate``). The card gets ``statistics_calibration`` (the
    levels, the sample, the command) and ``calibrated_events``; the network, its
    normalisation and unit statistics are unchanged. Registered as ``version`` (default:
    the next), with the same ONNX and weights.
    """
    from hotline.models.registry import load_model, register_model
    from hotline.models.thresholds import calibrate
    from hotline.stream.samples import SAMPLES_DIR

    archive = Path(archive or SAMPLES_DIR).expanduser()
    lv = statistics_levels(levels)
    m = load_model(name, registry=registry)
    if version is not None and str(version) == m.version:
        raise ConfigError(f"model {name} v{m.version} is the one being calibrated: write the "
                          "calibration as a new version (--version), not over it")
    geo = get_geometry(m.card["geometry"]["name"])
    pool = event_pool(runs, archive, geo)
    base = {k: v for k, v in m.card.items() if k not in ("statistics_calibration",
                                                          "calibrated_events")}
    scorer = ConvAEScorer(base, m.onnx_path)
    rows = []
    bar = _progress(len(lv), f"calibrate {geo.name} per statistics", progress)
    for i, n in enumerate(lv):
        if n > len(pool.hits) // 4:
            raise ConfigError(f"statistics level {n:,} is more than a quarter of the "
                              f"{len(pool.hits):,} events of runs {runs}: its maps would "
                              "share most of their events; use more runs or lower levels")
        maps = draw_lumis(pool.hits, n, maps_per_level, seed=seed + i, replace=False,
                          pileup=pileup, run=900 + i)
        total = scorer.score(maps.counts, maps.n_events).total
        cal = calibrate(total, DQM_P_VALUES, seed=seed, n_boot=30)
        rows.append({"n_events": n, "n_ref": maps_per_level,
                     "thresholds": cal["thresholds"], "refused": cal["refused"],
                     "reference": cal["reference"]})
        bar.update(1)
    bar.close()
    lv_txt = levels if isinstance(levels, str) else ":".join(str(v) for v in levels)
    pu_txt = (f"{pileup[0]:g},{pileup[1]:g}" if isinstance(pileup, tuple) else f"{pileup:g}")
    cmd = (f"hotline dqm train --geometry {geo.name} --calibrate-statistics --runs "
           f"{','.join(str(r) for r in runs)} --levels {lv_txt} --maps-per-level "
           f"{maps_per_level} --pileup {pu_txt} --seed {seed}"
           + (f" --version {version}" if version is not None else ""))
    card = dict(base)
    card["statistics_calibration"] = {
        "levels": rows,
        "interpolation": INTERPOLATION,
        "sample": {
            "runs": list(runs), "archive": "sample cache (hotline samples make)"
            if archive == Path(SAMPLES_DIR).expanduser() else str(archive),
            "events": len(pool.hits), "kish_events": round(pool.hits.kish(), 1),
            "draw": "events drawn with probability proportional to their physical weight, "
                    "without replacement within a map; + pileup and noise hits "
                    f"(detectors.occupancy.background_mean) at pileup {pu_txt}",
            "pileup": list(pileup) if isinstance(pileup, tuple) else pileup,
        },
        "maps_per_level": maps_per_level, "seed": seed,
        "regenerate": f"{m.card.get('regenerate', '')} (network, as version {m.version}); "
                      f"then {cmd}",
    }
    card["calibrated_events"] = {"min": lv[0], "max": lv[-1], "interpolation": INTERPOLATION}
    # the card's own thresholds: those at the largest level (maps of a known size use the
    # table; these serve callers that give no events per lumisection)
    card["thresholds"] = rows[-1]["thresholds"]
    card["refused"] = rows[-1]["refused"]
    card["reference"] = rows[-1]["reference"]
    for k in ("name", "version", "created", "onnx"):
        card.pop(k, None)
    return register_model(name, m.onnx_path, card,
                          weights_file=m.weights_path if m.weights_path.exists() else None,
                          registry=registry, version=version, overwrite=overwrite)


def false_alarms(scorer: ConvAEScorer, maps: LumiSet,
                 p_values: tuple[float, ...] = (0.01, 1e-3)) -> dict[float, tuple[int, int]]:
    """Alerts on clean maps at each p-value, ``{p: (alerts, scored maps)}``, with the
    thresholds at each map's own events per lumisection (maps outside the calibrated range
    are not counted: they are refused, never alerts)."""
    n = np.asarray(maps.n_events)
    ok = np.array([scorer.calibration_problem(float(v)) is None for v in n], bool)
    total = scorer.score(maps.counts[ok], n[ok]).total if ok.any() else np.zeros(0)
    out = {}
    for p in p_values:
        thr = np.array([scorer.threshold(p, float(v)) for v in n[ok]])
        out[p] = (int((total > thr).sum()), int(ok.sum()))
    return out


SCORE_TEXT = (
    "max over unit levels of -log10(min unit p-value) - log10(units in level); unit "
    "p-value: the better (x2) of a scaled chi2 of the unit's summed Poisson deviance and a "
    "Gaussian test of its counts against the reconstruction: the whitened (C^-1 sqrt(mu)) "
    "sum over the unit's cells for levels in unit_null.whiten (covariance measured on good "
    "lumisections), else the summed-count pull with the good-data bias and overdispersion")


# --------------------------------------------------------------------------- evaluation

@dataclass
class MethodResult:
    efficiency: float
    top1: float
    top3: float
    n: int
    n_detected: int


@dataclass
class EvalRow:
    geometry: str
    fault: str
    size: float
    level: str
    methods: dict[str, MethodResult] = field(default_factory=dict)


@dataclass
class Evaluation:
    rows: list[EvalRow]
    thresholds: dict[str, dict[str, float]]  #: geometry -> method -> threshold
    false_alarm: dict[str, dict[str, float]]  #: geometry -> method -> rate on independent good
    timing_ms: dict[str, float]  #: geometry -> ms per map (conv-AE, single-map call)
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [{"geometry": r.geometry, "fault": r.fault, "size": r.size,
                      "level": r.level, "methods": {k: vars(v) for k, v in r.methods.items()}}
                     for r in self.rows],
            "thresholds": self.thresholds, "false_alarm": self.false_alarm,
            "timing_ms": self.timing_ms, "settings": self.settings,
        }


def _method_scores(scorer: ConvAEScorer, ref: Reference, counts: np.ndarray,
                   n_events: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"conv_ae": scorer.score(counts, n_events)}
    for b in available_baselines():
        out[b] = get_baseline(b)(counts, ref)
    return out


def evaluate(
    geometries: list[str],
    trials: int = 200,
    n_good: int = 4000,
    registry: str | Path | None = None,
    seed: int = 7,
    events_per_lumi: int | None = None,
    progress: bool = True,
) -> Evaluation:
    """Detection efficiency and localisation per fault kind/size, conv-AE vs baselines."""
    from hotline.detectors.occupancy_faults import available_fault_kinds

    rows: list[EvalRow] = []
    thresholds: dict[str, dict[str, float]] = {}
    false_alarm: dict[str, dict[str, float]] = {}
    timing: dict[str, float] = {}
    for gname in geometries:
        geo = get_geometry(gname)
        scorer = ConvAEScorer.from_registry(model_name(geo), registry=registry)
        tr = scorer.card.get("training", {})
        epl = scorer.card.get("calibration", {}).get("events_per_lumi") or tr.get(
            "events_per_lumi", 20_000)
        kw = dict(events_per_lumi=events_per_lumi or int(epl),
                  lumi_spread=float(tr.get("lumi_spread", 0.3)),
                  pileup=tuple(tr.get("pileup", (20.0, 60.0))))
        # the reference run for the baselines: 100 good lumisections of another run
        rr = synthesize_lumis(geo, 100, seed=seed, run=200, **kw)
        ref = Reference.from_maps(geo, rr.counts, rr.n_events, "run 200, 100 lumisections")
        good = synthesize_lumis(geo, n_good, seed=seed, run=201, **kw)
        indep = synthesize_lumis(geo, n_good, seed=seed, run=202, **kw)
        gs = _method_scores(scorer, ref, good.counts, good.n_events)
        thr = {m: float(np.quantile(r.total, 1.0 - FALSE_ALARM)) for m, r in gs.items()}
        thresholds[gname] = thr
        ind = _method_scores(scorer, ref, indep.counts, indep.n_events)
        false_alarm[gname] = {m: float((r.total > thr[m]).mean()) for m, r in ind.items()}
        one, ne1 = good.counts[:1], good.n_events[:1]
        t, _ = _best_of(lambda sc=scorer, one=one, ne1=ne1: sc.score(one, ne1), 50)
        timing[gname] = t * 1e3
        kinds = [get_fault_kind(k) for k in available_fault_kinds()]
        configs = [(k, s) for k in kinds for s in k.sizes]
        bar = _progress(len(configs), f"evaluate {gname}", progress)
        for ci, (kind, size) in enumerate(configs):
            base = synthesize_lumis(geo, trials, seed=seed + 1000 + ci, run=300 + ci, **kw)
            counts = np.empty_like(base.counts)
            truth = []
            for i in range(trials):
                c, inj = inject(base.counts[i], geo, [Fault(kind.name, size, seed=i)],
                                seed=seed + ci)
                counts[i] = c
                truth.append(inj[0])
            level = truth[0].level
            judge = geo.level(kind.judge_role).name if kind.judge_role else level
            row = EvalRow(gname, kind.name, float(size), judge)
            for m, r in _method_scores(scorer, ref, counts, base.n_events).items():
                det = r.total > thr[m]
                ls = r.level_scores(judge)
                order = np.argsort(-ls, axis=1, kind="stable")[:, :3]
                hit1 = np.array([order[i, 0] in truth[i].units for i in range(trials)])
                hit3 = np.array([bool(set(order[i].tolist()) & set(truth[i].units))
                                 for i in range(trials)])
                nd = int(det.sum())
                row.methods[m] = MethodResult(
                    float(det.mean()), float(hit1[det].mean()) if nd else float("nan"),
                    float(hit3[det].mean()) if nd else float("nan"), trials, nd)
            rows.append(row)
            bar.update(1)
        bar.close()
    return Evaluation(rows, thresholds, false_alarm, timing,
                      {"trials": trials, "n_good": n_good, "seed": seed,
                       "false_alarm_target": FALSE_ALARM})


def _best_of(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


METHODS = ("conv_ae", "poisson_pull", "chi2_unit", "beta_binomial")


def format_table(ev: Evaluation) -> str:
    """Aligned text table: per fault kind/size, eff / top1 / top3 per method."""
    head = f"{'subsystem':<13} {'fault':<13} {'size':>5} {'judged at':<9}"
    for m in METHODS:
        head += f" | {m + ' eff/top1/top3':>31}"
    lines = [head, "-" * len(head)]

    def pct(v: float) -> str:
        return "  -  " if v != v else f"{100 * v:5.1f}"

    for r in ev.rows:
        line = f"{r.geometry:<13} {r.fault:<13} {r.size:>5g} {r.level:<9}"
        for m in METHODS:
            x = r.methods.get(m)
            line += (f" | {pct(x.efficiency):>9} {pct(x.top1):>10} {pct(x.top3):>10}"
                     if x else f" | {'':>31}")
        lines.append(line)
    lines.append("")
    for g in ev.thresholds:
        fa = ev.false_alarm[g]
        lines.append(f"{g}: false-alarm rate on independent good lumisections "
                     + ", ".join(f"{m} {100 * fa[m]:.2f} %" for m in METHODS)
                     + f"; conv-AE scoring {ev.timing_ms[g]:.2f} ms per map")
    return "\n".join(lines)


def plot_evaluation(ev: Evaluation, path: str | Path) -> Path:
    """Bar chart: detection efficiency per fault kind/size, methods side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    geos = list(dict.fromkeys(r.geometry for r in ev.rows))
    fig, axes = plt.subplots(len(geos), 1, figsize=(13, 4.2 * len(geos)), squeeze=False)
    width = 0.8 / len(METHODS)
    for ax, g in zip(axes[:, 0], geos):
        rows = [r for r in ev.rows if r.geometry == g]
        x = np.arange(len(rows))
        for k, m in enumerate(METHODS):
            eff = [r.methods[m].efficiency for r in rows]
            t1 = [r.methods[m].top1 for r in rows]
            bars = ax.bar(x + (k - 1.5) * width, eff, width, label=m)
            for b, t in zip(bars, t1):
                if t == t:
                    ax.text(b.get_x() + b.get_width() / 2, 0.02, f"{100 * t:.0f}",
                            rotation=90, ha="center", va="bottom", fontsize=6, color="white")
        ax.set_xticks(x, [f"{r.fault}\n{r.size:g}" for r in rows], fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("detection efficiency")
        ax.set_title(f"{g}: detection at {ev.settings['false_alarm_target']:g} false alarms "
                     "per good lumisection (white: top-1 localisation %)")
        ax.axhline(0.99, color="grey", lw=0.5, ls="--")
        ax.axhline(0.90, color="grey", lw=0.5, ls=":")
        ax.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
