"""``hotline attribution``: paired (counterfactual) fault-attribution study of a model.

Thin glue over ``training.attribution.run_study``: prints one table row per fault and
size; the numbers and the plot are written to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import P_VALUE_MEANING, add_deprecated_option, add_processes_option
from hotline.errors import ConfigError

DEFAULT_ARCHIVE = "~/.cache/hotline/samples/archive"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attribution",
        help="which object type does a model blame for the alerts a detector fault causes?",
        description=(
            "Counterfactual fault-attribution study. Clean background events of archived runs "
            "are scored, then the same events are passed through a simulated detector fault "
            "(at several strengths), re-triggered and scored again. The alerts the fault "
            "CAUSED are the events above the alert threshold after the fault and not before. "
            "For each fault and strength the table shows the alert rate before and after, the "
            "number of caused alerts and how often the model names the faulty object type as "
            "the top contribution (raw largest contribution 'argmax', largest excess over the "
            "background reference 'excess'), among caused alerts and among all alerted "
            "events. Writes attribution.json and attribution.png into --out."),
        epilog="examples:\n"
               "  hotline attribution ae_default --runs 202 --out /tmp/attribution\n"
               "  hotline attribution ae_default:3 --runs 202 --faults hot_cell:60,300 "
               "--max-events 10000 --out att/\n"
               "fault sizes (what each means): hotline generate --list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="NAME[:VERSION]",
                   help="registered model, e.g. ae_default or ae_default:3 (default version: "
                        "latest)")
    p.add_argument("--archive", metavar="DIR", default=DEFAULT_ARCHIVE,
                   help=f"archive of the clean runs (default {DEFAULT_ARCHIVE})")
    p.add_argument("--runs", type=int, nargs="+", required=True, metavar="RUN",
                   help="runs holding clean background events (events with a fault code "
                        "and signal events are skipped)")
    p.add_argument("--faults", nargs="+", default=["all"], metavar="FAULT[:SIZES]",
                   help="detector faults to study: 'all' (default), or names, optionally with "
                        "the sizes to scan, e.g. hot_cell:20,60,300 muon_scale")
    p.add_argument("--p-value", type=float, default=1e-3, metavar="P",
                   help=f"{P_VALUE_MEANING}; default 1e-3 for this study (must be calibrated "
                        "in the model card)")
    add_deprecated_option(p, "--p", "--p-value", "p_value", type=float, metavar="P")
    p.add_argument("--max-events", type=int, default=30_000, metavar="N",
                   help="at most this many clean events (default 30000)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the JSON and PNG")
    p.add_argument("--seed", type=int, default=0, help="random seed of the faults (default 0)")
    p.add_argument("--registry", metavar="DIR", default=None,
                   help="model registry folder (env: HOTLINE_MODEL_REGISTRY)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_processes_option(p)
    p.set_defaults(handler=handle)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1e}"


def handle(args: argparse.Namespace) -> int:
    from hotline.cli.common import check_p_value, config_from, load_processes, parse_model_ref
    from hotline.models.scorer import Scorer
    from hotline.training.attribution import run_study

    name, version = parse_model_ref(args.model, "MODEL")
    if args.max_events is not None and args.max_events < 1:
        raise ConfigError(f"--max-events must be >= 1, got {args.max_events}")
    check_p_value(args.p_value)
    cfg = config_from(args, model={"registry": args.registry})
    load_processes(args, cfg)  # faults defined in TOML
    scorer = Scorer.from_registry(name, version, cfg.model.registry)
    res = run_study(scorer, Path(args.archive).expanduser(), args.runs, args.faults, args.p_value,
                    args.max_events, args.out, seed=args.seed, progress=not args.no_progress)
    from rich import box

    src = res["source"]
    console = Console(soft_wrap=True)
    console.print(f"[bold]paired fault attribution[/]: {scorer.name} v{scorer.version}, "
                  f"p = {args.p_value:g} (threshold {res['threshold']:.4g}); "
                  f"{src['n_clean']:,} clean events of runs {src['runs']} in {src['archive']}")
    first = next(iter(res["faults"].values()))
    console.print(f"clean alert rate {_rate(first['alert_fraction_clean'])} "
                  f"({first['n_clean_alerted']} events)")
    for fname, r in res["faults"].items():
        t = Table(title=f"{fname} -> {r['faulty_type']}   (size: {r['size_help']})",
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                  collapse_padding=True)
        for c in ("size", "trig.eff", "rate", "caused", "argmax", "excess", "expl.", "alerts",
                  "argmax ", "expl. "):
            t.add_column(c, justify="right", no_wrap=True)
        for s in r["sizes"]:
            c, a = s["caused"], s["alerted"]
            t.add_row(f"{s['size']:g}", f"{s['trigger_efficiency']:.3f}",
                      _rate(s["alert_fraction_faulted"]), str(s["n_caused"]),
                      _pct(c["argmax"]["faulty_fraction"]),
                      _pct(c.get("excess", {}).get("faulty_fraction")),
                      _pct(c.get("attribute", {}).get("faulty_fraction")), str(s["n_alerted"]),
                      _pct(a["argmax"]["faulty_fraction"]),
                      _pct(a.get("attribute", {}).get("faulty_fraction")))
        console.print(t)
    console.print("rate: weighted alert fraction after the fault; caused: alerts after the "
                  "fault and not before; argmax / excess / expl.: share of the caused (then of "
                  "all alerted) events whose top type is the faulty type, by the raw largest "
                  "contribution / the largest excess over the background reference / the type "
                  "alerts name (explained_by: the largest contribution, a derived MET followed "
                  "to the anomalous visible type)")
    console.print("rates and fractions are weighted with the physical event weights")
    for cav in res["caveats"]:
        console.print(f"[yellow]caveat:[/] {cav}")
    console.print(f"written: {res['outputs']['json']}, {res['outputs']['png']}")
    return 0
