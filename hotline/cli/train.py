"""``hotline train``, ``hotline calibrate``, ``hotline models``: anomaly-model commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import (
    add_deprecated_option,
    add_processes_option,
    check_p_value,
    load_processes,
    parse_model_ref,
)
from hotline.errors import ConfigError, ModelError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train anomaly models (AE / VAE) and write the evaluation report",
        description="Train the models of a training configuration (TOML, see "
        "training/configs/), export them to ONNX, calibrate thresholds on held-out "
        "background, evaluate them on the signal and fault samples, and write plots and a "
        "comparison table into a run folder. --register copies the models marked "
        "'register = true' into the model registry.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", dest="train_config", metavar="TOML",
                      help="training configuration file")
    what.add_argument("--reproduce", metavar="MODEL:VERSION",
                      help="retrain a registered model from its card (recorded runs, settings, "
                           "architecture), calibrate it and report the difference to the "
                           "shipped one: scores on its test split, thresholds against their "
                           "bootstrap uncertainty, AUCs against the seed spread; nothing is "
                           "registered (samples: hotline samples make --model MODEL:VERSION)")
    p.add_argument("--archive", metavar="DIR", default=None,
                   help="with --reproduce: sample archive (default: the card's)")
    p.add_argument("--seed-spread", type=int, default=2, metavar="N",
                   help="with --reproduce: N extra seeds trained to measure the AUC seed "
                        "spread when neither the card nor a sibling version records one "
                        "(default 2; 0: none)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="parent folder of the run folder (default: the config's 'out')")
    p.add_argument("--register", action="store_true",
                   help="register the models marked 'register = true' in the registry")
    p.add_argument("--registry", metavar="DIR", default=None,
                   help="model registry folder (env: HOTLINE_MODEL_REGISTRY)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_processes_option(p)
    p.set_defaults(handler=handle_train)

    c = sub.add_parser(
        "calibrate",
        help="compute alert thresholds of a model from a background reference sample",
        description="Score a background reference sample with a registered model and store "
        "thresholds for background p-values (default 0.05, 0.01, 1e-3, 1e-4, 1e-5) in its "
        "card. Where the reference is too small for a p-value the tail is extrapolated with "
        "a generalised-Pareto fit (its uncertainty is recorded), or the p-value is refused. "
        "--rate/--input-rate adds the p-value giving a target alert rate.",
    )
    c.add_argument("model", metavar="NAME[:VERSION]",
                   help="registered model, version latest unless given (see 'hotline models')")
    add_deprecated_option(c, "--version", "NAME:VERSION", "version")
    c.add_argument("--registry", metavar="DIR", default=None, help="model registry folder")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--runs", type=int, nargs="+", metavar="RUN",
                     help="reference runs from the sample archive")
    src.add_argument("--process", metavar="NAME",
                     help="reference process from the sample archive (e.g. sm)")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="N events of the built-in toy background (for tests)")
    c.add_argument("--archive", metavar="DIR", default=None,
                   help="sample archive (default ~/.cache/hotline/samples/archive)")
    c.add_argument("--events", type=int, default=None, help="at most this many events")
    c.add_argument("--p-value", type=float, nargs="+", default=None, metavar="P",
                   help="background p-values to calibrate alert thresholds for (default 0.05 "
                        "0.01 1e-3 1e-4 1e-5)")
    add_deprecated_option(c, "--p", "--p-value", "p_value", type=float, nargs="+",
                          metavar="P")
    c.add_argument("--rate", type=float, default=None, metavar="PER_DAY",
                   help="target alert rate, alerts per day (needs --input-rate)")
    c.add_argument("--input-rate", type=float, default=None, metavar="HZ",
                   help="background input rate, events per second")
    c.add_argument("--bootstrap", type=int, default=100, metavar="N",
                   help="bootstrap resamples of the tail fit for the uncertainty (default 100)")
    c.add_argument("--unweighted", action="store_true",
                   help="ignore the reference's event weights (genWeight of biased samples); "
                        "by default thresholds are weighted p-values")
    c.set_defaults(handler=handle_calibrate)

    m = sub.add_parser("models", help="list the registered anomaly models",
                       description="List the models in the registry with their thresholds.")
    m.add_argument("--registry", metavar="DIR", default=None, help="model registry folder")
    m.set_defaults(handler=handle_models)


def _registry(args: argparse.Namespace) -> str:
    from hotline.cli.common import config_from

    cfg = config_from(args, model={"registry": getattr(args, "registry", None)})
    return cfg.model.registry


def handle_train(args: argparse.Namespace) -> int:
    from hotline.training.report import best_vs_baseline
    from hotline.training.train import TrainConfig, run_training

    load_processes(args)  # processes defined in TOML may be named in [data]
    if args.reproduce:
        return handle_reproduce(args)
    cfg = TrainConfig.from_toml(args.train_config)
    console = Console(soft_wrap=True)
    if not args.no_progress:
        logging.getLogger("training").setLevel(logging.INFO)
    res = run_training(cfg, out=args.out, register=args.register, registry=_registry(args),
                       progress=not args.no_progress, plots=not args.no_plots)
    t = Table(title=f"run {res['run_dir']}")
    for col in ("model", "epochs", "val loss", "signal", "AUC", "TPR@1e-3", "TPR@1e-5"):
        t.add_column(col, justify="left" if col in ("model", "signal") else "right")
    for mname, r in res["models"].items():
        for sname, s in r["metrics"]["signals"].items():
            tp = s["tpr_at_fpr"]
            cell = [("refused" if tp.get(f, {}).get("tpr") is None else
                     f"{tp[f]['tpr']:.4f}" + (" (gpd)" if tp[f]["method"] == "gpd" else ""))
                    for f in ("0.001", "1e-05")]
            t.add_row(mname, str(r["training"]["epochs_run"]),
                      f"{r['training']['val_loss']:.5f}", sname, f"{s['auc']:.4f}", *cell)
    console.print(t)
    bvb = best_vs_baseline(res)
    if len(res["models"]) > 1 and bvb:
        console.print(f"best: {bvb['best']} (mean AUC {bvb['mean_auc_best']:.4f}) vs baseline "
                      f"{bvb['baseline']} ({bvb['mean_auc_baseline']:.4f}); beats it on "
                      f"{bvb['wins_auc']}/{bvb['signals']} signals (AUC)")
    for mname, r in res["models"].items():
        if "registered" in r:
            console.print(f"registered {mname}: {r['registered']}")
    console.print(f"report: {res['run_dir']}")
    return 0


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def handle_reproduce(args: argparse.Namespace) -> int:
    from hotline.training.reproduce import PULL_OK, parse_model_ref, reproduce

    name, version = parse_model_ref(args.reproduce)
    if args.seed_spread < 0:
        raise ConfigError(f"--seed-spread must be >= 0, got {args.seed_spread}")
    if not args.no_progress:
        logging.getLogger("training").setLevel(logging.INFO)
    rep = reproduce(name, version, registry=_registry(args), out=args.out, archive=args.archive,
                    seed_spread=args.seed_spread, progress=not args.no_progress)
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 140
    ok = {True: "[green]yes[/]", False: "[red]no[/]"}
    d = rep["data"]
    console.print(f"{name} v{rep['version']} retrained from its card in {rep['train_seconds']:.0f}"
                  f" s ({rep['run_dir']}); data identical to the card's: "
                  f"{ok[rep['data_identical']]} (n_train {d['n_train']['retrained']}, "
                  f"Kish size {d['n_background_eff']['retrained']} vs shipped "
                  f"{d['n_background_eff']['shipped']}: events identical "
                  f"{ok[rep['events_identical']]}; "
                  f"n_test {d['n_test']['retrained']}); epochs {rep['epochs']['retrained']} "
                  f"(shipped {rep['epochs']['shipped']})")
    sc = rep["scores"]
    console.print(f"scores on the card's test split ({sc['n_events']:,} events): Pearson "
                  f"{sc['pearson']:.4f}, Spearman {sc['spearman']:.4f}, median relative "
                  f"difference {sc['median_relative_difference']:.3f}; decision agreement "
                  + ", ".join(f"p={p}: {100 * v['agreement']:.3f} %"
                              for p, v in sc["decisions"].items()))
    t = Table(title=f"thresholds (within: |diff| <= {PULL_OK:g} x combined bootstrap "
                    "uncertainty)")
    for c in ("p", "shipped", "retrained", "diff", "uncertainty", "pull", "within"):
        t.add_column(c, justify="right")
    for th in rep["thresholds"]:
        t.add_row(f"{th['p']:g}", f"{th['shipped']:.5g}", _f(th.get("retrained"), ".5g"),
                  _f(th.get("diff"), "+.2g"), _f(th.get("sigma"), ".2g"),
                  _f(th.get("pull"), "+.2f"), ok[th["within"]])
    console.print(t)
    t = Table(title=f"AUC (within: |diff| <= {PULL_OK:g} x seed spread; spread: "
                    f"{rep['seed_spread']['based_on']})")
    for c in ("signal", "shipped", "retrained", "diff", "seed spread", "pull", "within",
              "stat. error", "pull (seed+stat)", "within (seed+stat)"):
        t.add_column(c, justify="left" if c == "signal" else "right")
    for a in rep["aucs"]:
        t.add_row(a["signal"], f"{a['shipped']:.4f}", _f(a.get("retrained"), ".4f"),
                  _f(a.get("diff"), "+.4f"), _f(a.get("spread"), ".4f"),
                  _f(a.get("pull"), "+.2f"), ok[a["within"]], _f(a.get("stat"), ".4f"),
                  _f(a.get("pull_stat"), "+.2f"), ok[a.get("within_stat", False)])
    console.print(t)
    console.print(f"reproduced: {ok[rep['reproduced']]} (thresholds and AUCs within the seed "
                  f"spread); within statistics: {ok[rep['reproduced_within_statistics']]} "
                  f"(seed spread + sampling error of the AUCs) (report: "
                  f"{rep['run_dir']}/reproduce.json)")
    return 0 if rep["reproduced"] else 1


def handle_calibrate(args: argparse.Namespace) -> int:
    from hotline.detectors.features import extract_features
    from hotline.models.registry import load_model, update_card
    from hotline.models.scorer import Scorer
    from hotline.models.thresholds import (
        DEFAULT_P_VALUES,
        calibrate,
        p_for_rate,
        reference_contributions,
    )
    from hotline.stream.samples import (
        SAMPLES_DIR,
        features_from_runs,
        sample_runs,
        synthetic_events,
    )

    name, version = parse_model_ref(args.model, "MODEL")
    if getattr(args, "version", None):  # the deprecated --version
        if ":" in args.model:
            raise ConfigError(f"{args.model} and --version {args.version}: give the version "
                              "once (NAME:VERSION)")
        version = args.version
    model = load_model(name, version, _registry(args))
    spec = model.feature_spec()
    for p in args.p_value or ():
        check_p_value(p)
    p_values = list(args.p_value or DEFAULT_P_VALUES)
    if (args.rate is None) != (args.input_rate is None):
        raise ConfigError("--rate and --input-rate go together")
    if args.rate is not None:
        p_values.append(p_for_rate(args.rate, args.input_rate))
    archive = Path(args.archive or SAMPLES_DIR)
    if args.synthetic:
        fm = extract_features(synthetic_events("sm", args.synthetic, seed=12345), spec)
        fm.x, fm.mask = fm.x[~fm.bad], fm.mask[~fm.bad]
        source = {"synthetic": "sm", "events": args.synthetic}
    else:
        runs = args.runs or sample_runs(archive).get(args.process)
        if not runs:
            raise ModelError(f"no runs of process '{args.process}' in {archive}")
        fm = features_from_runs(runs, archive, spec, max_events=args.events)
        source = {"archive": str(archive), "runs": runs, "recipe": _recipe_of(runs)}
    res = Scorer(model).score_arrays(fm.x, fm.mask)
    scores = res.total
    weights = None if args.unweighted else fm.weights
    cal = calibrate(scores, p_values, n_boot=args.bootstrap, weights=weights)
    cal["reference_contributions"] = reference_contributions(
        res.per_type, res.per_object, res.type_labels, res.object_labels, weights=weights)
    from hotline.training.provenance import code_version

    model = update_card(model, **cal, calibration={"reference": source, "n_ref": len(scores),
                                                    "code": code_version(),
                                                    "weighted": weights is not None,
                                                    "rate": args.rate,
                                                    "input_rate": args.input_rate})
    console = Console(soft_wrap=True)
    eff = (f" (weighted, Kish effective size {cal['thresholds'][0].get('n_eff', 0):,.0f})"
           if weights is not None and cal["thresholds"] else "")
    t = Table(title=f"{model.name} v{model.version}: thresholds from {len(scores):,} events{eff}")
    for col in ("p-value", "threshold", "uncertainty", "method"):
        t.add_column(col, justify="right")
    for th in cal["thresholds"]:
        t.add_row(f"{th['p']:g}", f"{th['threshold']:.5g}", f"{th['uncertainty']:.2g}",
                  th["method"])
    for r in cal["refused"]:
        t.add_row(f"{r['p']:g}", "refused", "", r["reason"])
    console.print(t)
    return 0


def _recipe_of(runs: list[int]) -> dict[str, object]:
    """The sample-recipe entries of calibration reference runs (and their hash)."""
    from hotline.training.recipe import entries_hash, load_recipe

    recipe = load_recipe()
    found = [e for e in (recipe.get(int(r)) for r in runs) if e is not None]
    return {"entries": [e.to_dict() for e in found], "entries_hash": entries_hash(found),
            "not_in_recipe": [int(r) for r in runs if recipe.get(int(r)) is None]}


def handle_models(args: argparse.Namespace) -> int:
    from hotline.models.registry import available_models

    reg = _registry(args)
    models = available_models(reg)
    console = Console(soft_wrap=True)
    if not models:
        console.print(f"no models in {reg}")
        return 0
    t = Table(title=f"models in {reg}")
    for col in ("name", "version", "kind", "score", "reference events", "p-values"):
        t.add_column(col)
    for m in models:
        score = str(m["score"])
        score = score if len(score) < 24 else score[:22] + "…"
        t.add_row(m["name"], m["version"], m["kind"], score, str(m["n_ref"] or "-"),
                  ", ".join(f"{p:g}" for p in m["thresholds"]) or "not calibrated")
    console.print(t)
    return 0
