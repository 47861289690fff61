"""Training: data loading, the training loop, and the ``hotline train`` driver.

A training configuration (TOML, see ``training/configs/``) names the data (``[data] spec``:
a named feature layout of ``detectors.spec``, default ADC2021), the
normalisation, one or more models (``[[model]]`` tables: kind, variant, layer
sizes) and the loop settings. ``run_training(config)`` then, for each model:

1. loads the background features (archived runs via ``stream.replay.ReplaySource``
   + ``detectors.features.extract_features``, or the built-in ``synthetic`` toy
   generator for tests and for when no generated samples exist), drops events
   flagged bad, and splits train / validation / test with a fixed seed;
2. fits the normalisation on the training split (the first pass);
3. trains on CPU (one thread) with Adam, the masked MSE (padded objects masked
   out; + beta * KL for a VAE), early stopping on the validation loss, and a
   checkpoint of the best weights in the run folder;
4. exports the ONNX scoring graph, calibrates thresholds on the held-out
   background (a ``[[model]]`` with ``type_score``: first the per-type references of
   ``models.type_evidence`` with its ``type_statistics``, and for ``weighted`` /
   ``budget`` its ``type_total_weight`` and ``type_tail_p``, then the thresholds of that
   combined score), evaluates on the signal / fault samples (``training.evaluate``)
   and writes the plots and the comparison table (``training.report``);
5. registers the model in the run folder's registry (and in the shipped
   registry with ``--register``).

Everything is seeded (numpy, torch), so a run is reproducible on one machine.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.config import read_toml
from hotline.detectors.features import FeatureMatrix
from hotline.detectors.spec import named_spec
from hotline.errors import ConfigError, ModelError, SourceError
from hotline.models.kinds import kind_of
from hotline.stream.samples import (
    SAMPLES_DIR,
    load_sample,
    sample_runs,
)
from hotline.training.provenance import code_version

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """A parsed training configuration (see training/configs/default.toml)."""

    name: str = "ae_default"
    out: str = "runs/training"
    data: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=lambda: {"scheme": "custom"})
    models: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_toml(path, "training configuration"), source=str(path))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "") -> TrainConfig:
        known = {"name", "out", "data", "normalisation", "model", "training", "calibration",
                 "evaluation"}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"training configuration {source}: unknown keys "
                              f"{', '.join(sorted(extra))}; known: {', '.join(sorted(known))}")
        models = d.get("model", [])
        if isinstance(models, dict):
            models = [models]
        if not models:
            raise ConfigError(f"training configuration {source}: no [[model]] table")
        for i, m in enumerate(models):
            m.setdefault("name", f"model{i}")
        names = [m["name"] for m in models]
        if len(set(names)) != len(names):
            raise ConfigError(f"training configuration {source}: model names must be unique")
        return cls(name=d.get("name", "ae_default"), out=d.get("out", "runs/training"),
                   data=d.get("data", {}), normalisation=d.get("normalisation",
                                                               {"scheme": "custom"}),
                   models=models, training=d.get("training", {}),
                   calibration=d.get("calibration", {}), evaluation=d.get("evaluation", {}),
                   source=source)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "data": self.data, "normalisation": self.normalisation,
                "model": self.models, "training": self.training,
                "calibration": self.calibration, "evaluation": self.evaluation}


# --------------------------------------------------------------------------- synthetic data

# --------------------------------------------------------------------------- the training loop


@dataclass
class TrainResult:
    model: Any
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    seconds: float
    stopped_early: bool


def train_model(
    arch: dict[str, Any],
    xn_train: np.ndarray, m_train: np.ndarray, xn_val: np.ndarray, m_val: np.ndarray,
    settings: dict[str, Any], checkpoint: Path | None = None, progress: bool = True,
    w_train: np.ndarray | None = None, w_val: np.ndarray | None = None,
) -> TrainResult:
    """Train one model on normalised inputs (padded slots zero) with early stopping.

    ``w_train``/``w_val``: physical event weights; the loss is then the weighted mean.
    """
    import torch

    from hotline.models.nets import feature_mask

    torch.set_num_threads(int(settings.get("threads", 1)))
    seed = int(settings.get("seed", 1))
    torch.manual_seed(seed)
    model = kind_of(arch).build_model(arch)
    epochs = int(settings.get("epochs", 20))
    bs = int(settings.get("batch_size", 1024))
    patience = int(settings.get("patience", 4))
    opt = torch.optim.Adam(model.parameters(), lr=float(settings.get("lr", 1e-3)),
                           weight_decay=float(settings.get("weight_decay", 0.0)))
    xt, mt = torch.from_numpy(xn_train), feature_mask(torch.from_numpy(m_train), xn_train.shape[1])
    xv, mv = torch.from_numpy(xn_val), feature_mask(torch.from_numpy(m_val), xn_val.shape[1])
    wt = None if w_train is None else torch.from_numpy(np.asarray(w_train, np.float32))
    wv = None if w_val is None else torch.from_numpy(np.asarray(w_val, np.float32))
    gen = torch.Generator().manual_seed(seed)

    def loss_of(x, m, w=None):
        loss = model.loss(x, m)  # per event: the kind's training loss
        return loss.mean() if w is None else (loss * w).sum() / w.sum()

    history: dict[str, list[float]] = {"train": [], "val": []}
    best, best_state, best_epoch, bad_epochs = float("inf"), None, -1, 0
    t0 = time.perf_counter()
    stopped = False
    from tqdm import tqdm

    bar = tqdm(range(epochs), desc=f"train {arch.get('name', model.kind)}", disable=not progress,
               leave=False)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        tot, cnt = 0.0, 0
        for i in range(0, len(xt), bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:
                continue
            loss = loss_of(xt[idx], mt[idx], None if wt is None else wt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
            cnt += len(idx)
        model.eval()
        with torch.no_grad():
            val = float(loss_of(xv, mv, wv))
        history["train"].append(tot / max(cnt, 1))
        history["val"].append(val)
        bar.set_postfix(train=f"{tot / max(cnt, 1):.4g}", val=f"{val:.4g}")
        if val < best - 1e-7:
            best, best_epoch, bad_epochs = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                torch.save(best_state, checkpoint)
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                stopped = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, len(history["val"]),
                       time.perf_counter() - t0, stopped)


def train_ensemble(
    arch: dict[str, Any], xn_train: np.ndarray, m_train: np.ndarray, xn_val: np.ndarray,
    m_val: np.ndarray, settings: dict[str, Any], folder: Path, progress: bool = True,
    w_train: np.ndarray | None = None, w_val: np.ndarray | None = None,
) -> TrainResult:
    """A seed ensemble: ``members`` networks of the ensemble kind's member kind (the rest
    of ``arch``) trained with seeds seed, seed + 1, ...; on the same data split, each with
    its own early stopping, then joined by the kind's ``assemble`` handler."""
    kind = kind_of(arch)
    if kind.members is None:
        raise ConfigError(f"model kind '{kind.name}' is not an ensemble of members")
    n = int(arch.get("members", 3))
    if n < 2:
        raise ConfigError(f"an ensemble needs >= 2 members, got {n}")
    member_arch = {k: v for k, v in arch.items() if k != "members"} | {"kind": kind.members}
    seed = int(settings.get("seed", 1))
    results = []
    for i in range(n):
        results.append(train_model(
            member_arch, xn_train, m_train, xn_val, m_val,
            {**settings, "seed": seed + i, "name": f"{settings.get('name', 'ens')}[{i}]"},
            checkpoint=folder / f"checkpoint_{i}.pt", progress=progress,
            w_train=w_train, w_val=w_val))
    first = results[0]
    return TrainResult(kind.assemble_members([r.model for r in results]), first.history,
                       first.best_epoch, max(r.epochs_run for r in results),
                       sum(r.seconds for r in results), all(r.stopped_early for r in results))


# --------------------------------------------------------------------------- the driver


def check_runs_present(cfg: TrainConfig) -> None:
    """``ModelError`` naming the ``hotline samples make`` command when runs that the
    configuration pins in ``[data.runs]`` are absent or incomplete in the sample archive."""
    from hotline.training.recipe import load_recipe, run_status

    data = cfg.data
    if data.get("source", "synthetic") != "archive" or not data.get("runs"):
        return
    from hotline.training.processes import available_processes

    named = [*data["runs"], *([data["background"]] if data.get("background") else []),
             *data.get("signals", []), *data.get("faults", [])]
    strange = [n for n in dict.fromkeys(named) if n not in available_processes()]
    if strange:  # a typo, or a TOML process whose definition file is not on the search path
        raise ConfigError(f"training configuration {cfg.source}: [data] names unknown process "
                          f"'{strange[0]}'; known: {', '.join(available_processes())} (load "
                          "definition files with --processes FILE or [processes] paths)")
    archive = Path(data.get("archive", str(SAMPLES_DIR))).expanduser()
    recipe = load_recipe(data.get("recipe"))
    absent, unknown = [], []
    for rs in data["runs"].values():
        for r in rs:
            entry = recipe.get(int(r))
            if entry is None:
                if not (archive / f"run_{int(r):06d}").is_dir():
                    unknown.append(int(r))
                continue
            st = run_status(entry, archive)
            if st.state in ("missing", "partial"):
                absent.append(entry)
            elif st.state == "differs":  # usable, but not what the recipe makes: say so
                log.warning("run %s in %s differs from the sample recipe: %s", entry.run,
                            archive, st.detail)
    if unknown:
        raise ModelError(f"training configuration {cfg.source}: runs {sorted(unknown)} are "
                         f"neither in {archive} nor in the sample recipe "
                         f"({recipe.source})")
    if absent:
        only = " ".join(e.name for e in absent)
        raise ModelError(f"training configuration {cfg.source}: runs "
                         f"{', '.join(str(e.run) for e in absent)} are missing or incomplete in "
                         f"{archive}; build them with: hotline samples make --only {only}"
                         + (f" --archive {archive}" if archive != SAMPLES_DIR else "")
                         + (f" --recipe {data['recipe']}" if data.get("recipe") else ""))


def recipe_record(runs: dict[str, list[int]], archive: Path,
                  recipe_path: str | Path | None = None) -> dict[str, Any]:
    """What a model card records of the sample recipe: the entries of the runs it used, the
    hash of those entries and of the whole recipe, runs the recipe lacks, and runs whose
    folder differs from their entry (made with other parameters)."""
    from hotline.training.recipe import entries_hash, load_recipe, run_status

    recipe = load_recipe(recipe_path)
    used = sorted({int(r) for rs in runs.values() for r in rs})
    entries = [recipe.get(r) for r in used]
    found = [e for e in entries if e is not None]
    return {"file": str(recipe_path or "training/samples.toml"), "hash": recipe.hash(),
            "entries_hash": entries_hash(found),
            "entries": [e.to_dict() for e in found],
            "not_in_recipe": [r for r, e in zip(used, entries) if e is None],
            "differs": {str(e.run): run_status(e, archive).detail for e in found
                        if run_status(e, archive).state == "differs"}}


def split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    """Shuffled train / val / test indices (val and test fractions given)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(fractions[0] * n), int(fractions[1] * n)
    return perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test]


def run_training(
    cfg: TrainConfig, out: str | Path | None = None, register: bool = False,
    registry: str | Path | None = None, progress: bool = True, plots: bool = True,
) -> dict[str, Any]:
    """Train, export, calibrate, evaluate and register every model of ``cfg``.

    Returns a summary dict (also written to ``<run folder>/summary.json``).
    """
    import onnx
    import torch

    from hotline.models.normalise import fit_normaliser
    from hotline.models.registry import register_model
    from hotline.models.scorer import Scorer
    from hotline.models.thresholds import DEFAULT_P_VALUES, calibrate, reference_contributions
    from hotline.models.weights import kish
    from hotline.training.evaluate import evaluate_model

    data = cfg.data
    spec = named_spec(data.get("spec"))  # [data] spec: the feature layout (default ADC2021)
    seed = int(cfg.training.get("seed", 1))
    np.random.seed(seed)
    run_dir = Path(out or cfg.out) / time.strftime(f"{cfg.name}-%Y%m%dT%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    n_bkg = int(data.get("n_background", 20_000))
    bkg_proc = data.get("background", "sm")
    log.info("loading %d background events (%s)", n_bkg, bkg_proc)
    check_runs_present(cfg)
    bkg = load_sample(bkg_proc, data, n_bkg, seed, spec)
    # physical event weights (QCD: biased pTHat sampling) unless [training] weighted = false
    weighted = bool(cfg.training.get("weighted", True)) and bkg.weights is not None
    w_all = bkg.weights if weighted else None

    def w_of(idx: np.ndarray) -> np.ndarray | None:
        return None if w_all is None else w_all[idx]
    tr, va, te = split_indices(len(bkg), (float(data.get("val_fraction", 0.15)),
                                          float(data.get("test_fraction", 0.35))), seed)
    norm_cfg = dict(cfg.normalisation)
    scheme = norm_cfg.pop("scheme", "custom")
    chunk = 50_000
    norm = fit_normaliser(((bkg.x[tr[i:i + chunk]], bkg.mask[tr[i:i + chunk]])
                           for i in range(0, len(tr), chunk)), scheme,
                          pt_a=float(norm_cfg.get("a", 1.0)), pt_b=float(norm_cfg.get("b", 1.0)),
                          eta_weight=float(norm_cfg.get("eta_weight", 1.0)),
                          phi_weight=float(norm_cfg.get("phi_weight", 1.0)),
                          phi_frame=str(norm_cfg.get("phi_frame", "lab")))
    xn = norm.transform(bkg.x, bkg.mask)
    n_sig = int(data.get("n_signal", 5_000))
    missing: dict[str, str] = {}

    def optional(names: list[str], s: int) -> dict[str, FeatureMatrix]:
        out = {}
        for p in names:
            try:
                out[p] = load_sample(p, data, n_sig, s, spec)
            except (ModelError, SourceError) as exc:  # evaluate what exists, say what not
                missing[p] = str(exc)
                log.warning("sample %s unavailable, not evaluated: %s", p, exc)
        return out

    signals = optional(data.get("signals", ["A4l", "LQ_btau", "h0_tautau", "hplus_taunu"]),
                       seed + 1)
    faults = optional(data.get("faults", ["fault_muon_scale", "fault_hot_jet"]), seed + 2)
    if not weighted:
        for fm in faults.values():
            fm.weights = None
    p_values = tuple(cfg.calibration.get("p_values", DEFAULT_P_VALUES))
    n_cal = len(te) // 2
    cal_idx, test_idx = te[:n_cal], te[n_cal:]
    data_summary = {
        "source": data.get("source", "synthetic"),
        "archive": data.get("archive") if data.get("source") == "archive" else None,
        "background": bkg_proc, "n_background": len(bkg), "n_train": len(tr),
        "n_val": len(va), "n_calibration": int(n_cal), "n_test": len(test_idx),
        "signals": {k: len(v) for k, v in signals.items()},
        "faults": {k: len(v) for k, v in faults.items()}, "seed": seed,
        "unavailable": missing, "weighted": weighted,
        "n_background_eff": round(kish(w_all, len(bkg)), 1),
    }
    if data_summary["source"] == "archive":  # how to regenerate: runs, processes, seeds
        from hotline.stream.archive import find_run

        arch = Path(data.get("archive", str(SAMPLES_DIR))).expanduser()
        used = [bkg_proc, *signals, *faults]
        configured = data.get("runs") or {}  # [data.runs] pins runs; else every run found
        runs = {p: ([int(x) for x in configured[p]] if p in configured else r)
                for p, r in sample_runs(arch).items() if p in used}
        def card_of(r: int) -> dict[str, Any]:
            try:
                return find_run(arch, r).card
            except SourceError:
                return {"note": "no files when training ran"}

        data_summary["runs"] = {
            p: [{"run": r, "seed": card_of(r).get("seed"),
                 "regenerate": card_of(r).get("regenerate")} for r in rs]
            for p, rs in runs.items()}
        data_summary["recipe"] = recipe_record(runs, arch, data.get("recipe"))
    data_summary["code"] = code_version()
    results: dict[str, Any] = {"run_dir": str(run_dir), "models": {}, "data": data_summary}
    for mcfg in cfg.models:
        mname = mcfg["name"]
        arch = {k: v for k, v in mcfg.items()
                if k not in ("name", "register", "description", "seed", "type_score",
                             "type_statistics", "type_total_weight", "type_tail_p")}
        arch.setdefault("n_inputs", spec.n_features)  # the layout's width ([data] spec)
        type_score = mcfg.get("type_score")  # per-type calibrated score (type_evidence.METHODS)
        # a [[model]] table may set its own seed (seed studies: same data split, new init)
        settings = {**cfg.training, "name": mname,
                    **({"seed": int(mcfg["seed"])} if "seed" in mcfg else {})}
        mdir = run_dir / mname
        mdir.mkdir(exist_ok=True)
        wkw = ({"w_train": w_of(tr), "w_val": w_of(va)}
               if cfg.training.get("weighted_loss", True) else {})
        kind = kind_of(arch)
        if kind.members is not None:  # an ensemble: its members are trained one by one
            res = train_ensemble(arch, xn[tr], bkg.mask[tr], xn[va], bkg.mask[va], settings,
                                 mdir, progress, **wkw)
        else:
            res = train_model(arch, xn[tr], bkg.mask[tr], xn[va], bkg.mask[va],
                              settings, checkpoint=mdir / "checkpoint.pt",
                              progress=progress, **wkw)
        model = res.model
        torch.save(model.state_dict(), mdir / "weights.pt")
        onnx_path = kind.export_onnx(model, mdir / "model.onnx", normaliser=norm, spec=spec,
                                     name=mname)
        card = {
            "kind": model.kind, "description": mcfg.get("description", ""),
            "feature_spec": spec.to_dict(), "normalisation": norm.to_dict(),
            "architecture": model.arch, "score": model.arch["score"],
            "onnx": {"inputs": {"x": ["N", spec.n_features], "mask": ["N", spec.n_objects]},
                     "outputs": [o.name for o in onnx.load(str(onnx_path)).graph.output],
                     "normalisation": "baked into the graph"},
            "training": {**data_summary, "config": cfg.source,
                         "settings": {k: v for k, v in settings.items() if k != "name"},
                         "normalisation": cfg.normalisation, "calibration": cfg.calibration,
                         "evaluation": cfg.evaluation,
                         "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
                         "stopped_early": res.stopped_early, "seconds": round(res.seconds, 1),
                         "val_loss": res.history["val"][res.best_epoch],
                         "torch": torch.__version__},
            "regenerate": (f"hotline train --config {cfg.source or '<config>'}"
                           + (" --register" if mcfg.get("register") else "")),
        }
        reg_local = register_model(mname, mdir / "model.onnx", card, mdir / "weights.pt",
                                   registry=run_dir / "registry", version=1, overwrite=True)
        scorer = Scorer(reg_local)
        cal_res = scorer.score_arrays(bkg.x[cal_idx], bkg.mask[cal_idx])
        if type_score:
            # per-type references on the calibration background, then the combined score's
            # thresholds on the same events (models.type_evidence)
            from hotline.models.registry import update_card
            from hotline.models.type_evidence import calibrate_types, type_energy

            stats = tuple(mcfg.get("type_statistics", ("loss",)))
            energy = type_energy(bkg.x[cal_idx], bkg.mask[cal_idx], spec.object_type_index(),
                                 len(spec.object_types))
            evidence = calibrate_types(cal_res.per_type, cal_res.type_labels, str(type_score),
                                       weights=w_of(cal_idx), seed=seed, statistics=stats,
                                       energy=energy,
                                       total_weight=float(mcfg.get("type_total_weight", 0.5)),
                                       tail_p=mcfg.get("type_tail_p"))
            reg_local = update_card(reg_local, type_calibration=evidence.to_dict(),
                                    score=f"types_{type_score}")
            scorer = Scorer(reg_local)
            cal_res = scorer.score_arrays(bkg.x[cal_idx], bkg.mask[cal_idx])
        cal = calibrate(cal_res.total, p_values, seed=seed,
                        n_boot=int(cfg.calibration.get("n_boot", 100)), weights=w_of(cal_idx))
        cal["reference_contributions"] = reference_contributions(
            cal_res.per_type, cal_res.per_object, cal_res.type_labels, cal_res.object_labels,
            weights=w_of(cal_idx))
        from hotline.models.registry import update_card

        reg_local = update_card(reg_local, **cal)
        scorer = Scorer(reg_local)
        ev = evaluate_model(scorer, model, norm, bkg.x[test_idx], bkg.mask[test_idx],
                            signals, faults, out=mdir if plots else None,
                            attribution_p=float(cfg.evaluation.get("attribution_p", 1e-3)),
                            n_boot=int(cfg.calibration.get("n_boot", 100)) // 3 + 1,
                            w_bkg=w_of(test_idx))
        ev["history"] = res.history
        reg_local = update_card(reg_local, metrics={k: v for k, v in ev.items()
                                                    if k not in ("history", "scores", "roc")})
        results["models"][mname] = {"arch": model.arch, "metrics": ev,
                                    "registry": str(reg_local.path),
                                    "training": card["training"]}
        if register and mcfg.get("register"):
            reg = register_model(mname, reg_local.onnx_path,
                                 {k: v for k, v in reg_local.card.items()
                                  if k not in ("name", "version", "created")},
                                 reg_local.weights_path, registry=registry)
            results["models"][mname]["registered"] = str(reg.path)
            log.info("registered %s v%s in %s", mname, reg.version, reg.path)
    if plots:
        from hotline.training.report import write_report

        write_report(results, run_dir)
    (run_dir / "summary.json").write_text(json.dumps(
        {k: v for k, v in results.items()}, indent=1, default=_jsonable))
    return results


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
