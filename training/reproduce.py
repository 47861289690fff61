"""``hotline train --reproduce MODEL:VERSION``: retrain a registered model from its card and
measure how far the result is from the shipped model.

``reproduce_config(card)`` rebuilds the training configuration from what the card records:
its configuration file (``training.config``, for the split fractions and anything the card
does not hold) overridden by the card's own record: data source, background / signal / fault
processes, the runs (``training.runs``), the loop settings (``training.settings``, seed
included), the architecture (``architecture``: the exact built network), the normalisation
scheme and the calibration p-values. ``seed_spread`` extra copies of the model with other
seeds are trained on the same data to measure the seed spread of the AUCs, unless the card
(``metrics.seed_spread``) or a sibling version records one.

``reproduce(...)`` trains (``training.train.run_training``, nothing registered), then
compares the retrained model with the shipped one:

* scores on a common sample: the card's held-out test split (same data, same split seed),
  scored by both ONNX graphs: Pearson and Spearman correlation, median relative difference,
  trigger-decision agreement at each calibrated p-value (each model at its own threshold);
* thresholds: difference per p-value against the combined bootstrap uncertainty of the two
  (``uncertainty`` in each card), as a pull;
* AUCs per signal: difference against the seed spread (standard deviation over seeds), and
  against the seed spread combined with the statistical (Hanley-McNeil) error of two
  independent samples of the card's sizes: what applies when the rebuilt events differ from
  the ones the shipped model saw (``events_identical``: the Kish size of the background
  weights differs).

The report (a dict, also ``<run folder>/reproduce.json``) says for each figure whether it is
within (|pull| <= 2, |dAUC| <= 2 spread).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hotline.config import package_path
from hotline.errors import ConfigError, ModelError
from hotline.training.train import TrainConfig

#: |difference| / uncertainty up to which a figure counts as reproduced
PULL_OK = 2.0


def config_file(card: dict[str, Any]) -> Path | None:
    """The training configuration a card names, found as given or among the shipped ones."""
    name = (card.get("training") or {}).get("config")
    if not name:
        return None
    for cand in (Path(name), package_path("hotline.training", "configs", Path(name).name)):
        if cand.is_file():
            return cand
    return None


def _model_table(card: dict[str, Any]) -> dict[str, Any]:
    """The ``[[model]]`` table that builds the card's architecture."""
    arch = dict(card["architecture"])
    if isinstance(arch.get("members"), list):  # an ensemble records its built members
        member = {k: v for k, v in arch["members"][0].items() if k not in ("kind", "n_inputs")}
        table = {**member, "kind": arch["kind"], "members": len(arch["members"])}
    else:
        table = {k: v for k, v in arch.items() if k != "n_inputs"}
    return {"name": card.get("name", "model"), "description": card.get("description", ""),
            **table}


def _normalisation(card: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    recorded = (card.get("training") or {}).get("normalisation")
    if recorded:
        return dict(recorded)
    norm = card.get("normalisation") or {}
    out = dict(base)
    out["scheme"] = norm.get("scheme", out.get("scheme", "custom"))
    params = norm.get("params") or {}
    for k in ("a", "b"):
        if k in params:
            out[k] = params[k]
    out["phi_frame"] = norm.get("phi_frame", "lab")
    return out


def reproduce_config(card: dict[str, Any], archive: str | Path | None = None,
                     seed_spread: int = 2) -> TrainConfig:
    """The training configuration that retrains ``card``'s model (see the module docstring)."""
    from hotline.training.recipe import card_runs

    tr = card.get("training") or {}
    if not tr.get("settings"):
        raise ModelError(f"model card {card.get('name')} v{card.get('version')} records no "
                         "training settings (training.settings): it cannot be retrained")
    path = config_file(card)
    base = TrainConfig.from_toml(path) if path else TrainConfig(name=str(card.get("name")))
    data = dict(base.data)
    data["source"] = tr.get("source") or data.get("source", "synthetic")
    data["background"] = tr.get("background") or data.get("background")
    data["signals"] = list(tr.get("signals") or data.get("signals") or [])
    data["faults"] = list(tr.get("faults") or data.get("faults") or [])
    if data["source"] == "archive":
        runs = card_runs(card)
        if not runs:
            raise ModelError(f"model card {card.get('name')} v{card.get('version')} records no "
                             "runs (training.runs): nothing says which samples it saw")
        data["runs"] = runs
        recipe_file = (tr.get("recipe") or {}).get("file")
        if recipe_file and recipe_file != "training/samples.toml" and Path(recipe_file).is_file():
            data["recipe"] = recipe_file  # trained on runs of another recipe
        data["archive"] = str(archive or tr.get("archive") or data.get("archive"))
        data.setdefault("n_background", 1_000_000)
        data.setdefault("n_signal", 1_000_000)
    else:
        data.setdefault("n_background", int(tr.get("n_background", 20_000)))
    settings = dict(tr["settings"])
    if "weighted" not in settings:  # cards from before event weights trained unweighted
        settings["weighted"] = bool(tr.get("weighted", False))
    seed = int(settings.get("seed", 1))
    calibration = dict(tr.get("calibration") or base.calibration)
    if card.get("thresholds"):
        calibration["p_values"] = [float(t["p"]) for t in card["thresholds"]]
        calibration["p_values"] += [float(r["p"]) for r in card.get("refused", [])]
    evaluation = dict(tr.get("evaluation") or base.evaluation)
    model = _model_table(card)
    models = [model]
    step = int(model.get("members", 1))  # an ensemble's members use seed, seed + 1, ...
    for i in range(1, seed_spread + 1):
        models.append({**{k: v for k, v in model.items() if k != "description"},
                       "name": f"{model['name']}_seed{seed + i * step}",
                       "seed": seed + i * step})
    return TrainConfig(name=f"reproduce-{card.get('name')}-v{card.get('version')}",
                       out=base.out, data=data, normalisation=_normalisation(card,
                                                                             base.normalisation),
                       models=models, training=settings, calibration=calibration,
                       evaluation=evaluation, source=str(path or tr.get("config") or ""))


def recorded_seed_spread(card: dict[str, Any], registry: str | Path | None
                         ) -> tuple[dict[str, float], str] | None:
    """Seed spread of the AUCs recorded by the card or a sibling version, with its origin."""
    from hotline.models.registry import available_models, load_model

    own = (card.get("metrics") or {}).get("seed_spread")
    if own:
        return {k: float(v) for k, v in own.items()}, "the model card (metrics.seed_spread)"
    for m in available_models(registry):
        if m["name"] != card.get("name") or str(m["version"]) == str(card.get("version")):
            continue
        sib = (load_model(m["name"], m["version"], registry).card.get("metrics") or {})
        if sib.get("seed_spread"):
            return ({k: float(v) for k, v in sib["seed_spread"].items()},
                    f"sibling {m['name']} v{m['version']} (metrics.seed_spread)")
    return None


def _pull(diff: float, sigma: float | None) -> float | None:
    if sigma is None or not np.isfinite(sigma) or sigma <= 0:
        return None
    return diff / sigma


def compare_thresholds(shipped: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Per p-value: both thresholds, their bootstrap uncertainties and the pull."""
    mine = {float(t["p"]): t for t in new.get("thresholds", [])}
    out = []
    for t in shipped.get("thresholds", []):
        n = mine.get(float(t["p"]))
        if n is None:
            out.append({"p": t["p"], "shipped": t["threshold"], "retrained": None,
                        "within": False, "note": "refused by the retrained calibration"})
            continue
        sigma = float(np.hypot(t.get("uncertainty") or 0.0, n.get("uncertainty") or 0.0))
        diff = float(n["threshold"]) - float(t["threshold"])
        pull = _pull(diff, sigma)
        out.append({"p": t["p"], "shipped": t["threshold"], "retrained": n["threshold"],
                    "diff": diff, "sigma": sigma, "pull": pull, "method": n.get("method"),
                    "within": pull is not None and abs(pull) <= PULL_OK})
    return out


def auc_stat_error(auc: float, n_signal: float, n_background: float) -> float:
    """Hanley-McNeil standard error of an AUC from ``n_signal`` signal and ``n_background``
    (effective) background events: the spread another sample of the same size would give."""
    a = min(max(float(auc), 1e-9), 1 - 1e-9)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_signal - 1) * (q1 - a * a)
           + (n_background - 1) * (q2 - a * a)) / (n_signal * n_background)
    return float(np.sqrt(max(var, 0.0)))


def compare_aucs(shipped: dict[str, Any], aucs: dict[str, list[float]],
                 spread: dict[str, float] | None) -> list[dict[str, Any]]:
    """Per signal: the shipped AUC, the retrained one (first seed), the pull against the seed
    spread (``within``), and against the seed spread combined with the statistical error of
    two independent samples of the card's sizes (``within_stat``: what counts when the
    rebuilt events are not the shipped model's own)."""
    metrics = shipped.get("metrics") or {}
    n_bkg = float(metrics.get("n_background_test_eff") or metrics.get("n_background_test") or 0)
    out = []
    for sig, s in metrics.get("signals", {}).items():
        vals = aucs.get(sig)
        if not vals:
            out.append({"signal": sig, "shipped": s["auc"], "retrained": None, "within": False,
                        "within_stat": False, "note": "signal not evaluated by the retraining"})
            continue
        sd = None if spread is None else spread.get(sig)
        diff = float(vals[0]) - float(s["auc"])
        pull = _pull(diff, sd)
        stat = (auc_stat_error(s["auc"], float(s.get("n") or 0), n_bkg)
                if s.get("n") and n_bkg else None)
        both = (None if stat is None else float(np.hypot(sd or 0.0, np.sqrt(2) * stat)))
        pull_stat = _pull(diff, both)
        out.append({"signal": sig, "shipped": s["auc"], "retrained": vals[0], "diff": diff,
                    "spread": sd, "pull": pull, "seeds": vals,
                    "within": pull is not None and abs(pull) <= PULL_OK,
                    "stat": stat, "pull_stat": pull_stat,
                    "within_stat": pull_stat is not None and abs(pull_stat) <= PULL_OK})
    return out


def score_agreement(shipped: Any, new: Any, x: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Both models' scores on the same events: correlations, median relative difference,
    decision agreement at each p-value both calibrated (each at its own threshold)."""
    from scipy.stats import spearmanr

    from hotline.models.scorer import Scorer

    a = Scorer(shipped).score_arrays(x, mask).total.astype(np.float64)
    b = Scorer(new).score_arrays(x, mask).total.astype(np.float64)
    thr_a = {float(t["p"]): float(t["threshold"]) for t in shipped.card.get("thresholds", [])}
    thr_b = {float(t["p"]): float(t["threshold"]) for t in new.card.get("thresholds", [])}
    decisions = {}
    for p in sorted(set(thr_a) & set(thr_b), reverse=True):
        da, db = a > thr_a[p], b > thr_b[p]
        decisions[f"{p:g}"] = {"agreement": float(np.mean(da == db)),
                               "shipped_fires": int(da.sum()), "retrained_fires": int(db.sum()),
                               "both_fire": int((da & db).sum())}
    rel = np.abs(b - a) / np.maximum(np.abs(a), 1e-12)
    return {"n_events": len(a), "pearson": float(np.corrcoef(a, b)[0, 1]),
            "spearman": float(spearmanr(a, b).statistic),
            "median_relative_difference": float(np.median(rel)),
            "mean_shipped": float(a.mean()), "mean_retrained": float(b.mean()),
            "decisions": decisions}


def _common_sample(cfg: TrainConfig, card: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The card's held-out test split of the background (as run_training draws it)."""
    from hotline.detectors.spec import FeatureSpec
    from hotline.stream.samples import load_sample
    from hotline.training.train import split_indices

    spec = FeatureSpec.from_dict(card["feature_spec"])
    data = cfg.data
    seed = int(cfg.training.get("seed", 1))
    bkg = load_sample(data.get("background", "sm"), data, int(data.get("n_background", 20_000)),
                      seed, spec)
    _, _, te = split_indices(len(bkg), (float(data.get("val_fraction", 0.15)),
                                        float(data.get("test_fraction", 0.35))), seed)
    test = te[len(te) // 2:]
    return bkg.x[test], bkg.mask[test]


def reproduce(model: str, version: str = "latest", registry: str | Path | None = None,
              out: str | Path | None = None, archive: str | Path | None = None,
              seed_spread: int = 2, progress: bool = False) -> dict[str, Any]:
    """Retrain ``model:version`` from its card and compare (see the module docstring)."""
    from hotline.models.registry import load_model
    from hotline.training.provenance import code_version
    from hotline.training.recipe import card_entries, entries_hash, load_recipe
    from hotline.training.train import run_training

    shipped = load_model(model, version, registry)
    card = {**shipped.card, "name": shipped.name, "version": shipped.version}
    recorded = recorded_seed_spread(card, registry)
    n_spread = 0 if recorded is not None else seed_spread
    cfg = reproduce_config(card, archive=archive, seed_spread=n_spread)
    t0 = time.perf_counter()
    res = run_training(cfg, out=out, register=False, progress=progress, plots=False)
    seconds = time.perf_counter() - t0
    run_dir = Path(res["run_dir"])
    names = [m["name"] for m in cfg.models]
    retrained = load_model(names[0], "1", run_dir / "registry")
    aucs: dict[str, list[float]] = {}
    for n in names:
        for sig, s in res["models"][n]["metrics"]["signals"].items():
            aucs.setdefault(sig, []).append(float(s["auc"]))
    if recorded is not None:
        spread, spread_origin = recorded
    elif n_spread > 0:
        spread = {s: float(np.std(v, ddof=1)) for s, v in aucs.items() if len(v) > 1}
        seeds = [int(m.get("seed", cfg.training.get("seed", 1))) for m in cfg.models]
        spread_origin = (f"standard deviation of the AUCs of {len(names)} retrainings with "
                         f"seeds {', '.join(map(str, seeds))} on the card's data (this run)")
    else:
        spread, spread_origin = None, "none: no seed spread recorded and --seed-spread 0"
    x, mask = _common_sample(cfg, card)
    tr_card, tr_new = card.get("training") or {}, retrained.card.get("training") or {}
    data_keys = ("n_background", "n_train", "n_val", "n_calibration", "n_test",
                 "n_background_eff", "signals", "faults")
    recipe = load_recipe()
    entries, lacking = card_entries(card, recipe)
    report: dict[str, Any] = {
        "model": shipped.name, "version": shipped.version, "config": cfg.source,
        "run_dir": str(run_dir), "train_seconds": round(seconds, 1),
        "data": {k: {"shipped": tr_card.get(k), "retrained": tr_new.get(k)}
                 for k in data_keys},
        "data_identical": all(tr_card.get(k) == tr_new.get(k) for k in data_keys
                              if k != "n_background_eff"),
        # the Kish size of the background weights fingerprints the events themselves
        "events_identical": (tr_card.get("n_background_eff") is None
                             or tr_card.get("n_background_eff")
                             == tr_new.get("n_background_eff")),
        "recipe": {"entries_hash": entries_hash(entries), "runs_not_in_recipe": lacking,
                   "card": (tr_card.get("recipe") or {}).get("entries_hash")},
        "code": {"shipped": tr_card.get("code"), "retrained": code_version()},
        "epochs": {"shipped": tr_card.get("epochs_run"), "retrained": tr_new.get("epochs_run")},
        "scores": score_agreement(shipped, retrained, x, mask),
        "thresholds": compare_thresholds(card, retrained.card),
        "aucs": compare_aucs(card, aucs, spread),
        "seed_spread": {"values": spread, "based_on": spread_origin},
    }
    report["reproduced"] = (all(t["within"] for t in report["thresholds"])
                            and all(a["within"] for a in report["aucs"]))
    report["reproduced_within_statistics"] = (
        all(t["within"] for t in report["thresholds"])
        and all(a["within_stat"] for a in report["aucs"]))
    (run_dir / "reproduce.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``MODEL[:VERSION]`` -> (name, version or 'latest')."""
    name, _, version = ref.partition(":")
    if not name:
        raise ConfigError(f"--reproduce {ref!r}: give MODEL:VERSION, e.g. ae_default:5")
    return name, version or "latest"


__all__ = ["PULL_OK", "compare_aucs", "compare_thresholds", "config_file", "parse_model_ref",
           "recorded_seed_spread", "reproduce", "reproduce_config", "score_agreement"]
