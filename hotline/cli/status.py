"""``hotline status``: the green / amber / red verdict of a stored run, per lumisection range."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from hotline.cli.common import add_store_option, config_from, store_from

STYLE = {"green": "green", "amber": "yellow", "red": "bold red", "idle": "dim"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="green / amber / red verdict of a stored run, with reasons",
        description="Assess a run from the alert store: exact tail probabilities per "
        "lumisection and quantity (AE thresholds against their calibrated p-values, the "
        "rest against the reference run of `hotline reference`, else the run's other "
        "lumisections), a multiple-testing correction and a CUSUM across lumisections. "
        "Prints the ranges that are not green with their reasons and where the alerts "
        "point.",
    )
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("--source", help="data stream name (default: the run's only or largest)")
    p.add_argument("--model", metavar="NAME[:VERSION]",
                   help="AE model whose card holds the thresholds (default: the one, at the "
                        "version, the run's AE alerts name)")
    p.add_argument("--no-reference", action="store_true",
                   help="ignore the stored reference run (leave-one-out expectations)")
    p.add_argument("--lumis", action="store_true", help="also list every lumisection")
    p.add_argument("--json", action="store_true", help="print the RunStatus as JSON")
    add_store_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from hotline.alerts.run_status import assess_run

    cfg = config_from(args)
    model = None
    if args.model:
        from hotline.alerts.reference import load_ae_model
        from hotline.cli.common import parse_model_ref

        model = load_ae_model(*parse_model_ref(args.model), cfg.model.registry or None)
    with store_from(cfg, create=False) as store:
        st = assess_run(store, args.run, args.source, False if args.no_reference else None,
                        model, registry=cfg.model.registry or None)
    if args.json:
        print(json.dumps(st.to_dict(), sort_keys=True, default=float))
        return 0
    print_status(st, Console(soft_wrap=True), lumis=args.lumis)
    return 0


def print_status(st, console: Console, lumis: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The run verdict, its non-green ranges and (optionally) every lumisection."""
    console.print(f"run {st.run} ({st.source}): [{STYLE[st.level]}]{st.level.upper()}[/] - "
                  f"{st.reason}")
    ref = st.reference.get("reference")
    model = st.reference.get("model")
    console.print("expectations: " + (f"reference run {ref['run']} ({ref['n_lumis']} LS, set "
                                      f"by {ref['set_by']})" if ref else
                                      "no reference run: the run's other lumisections")
                  + (f"; AE thresholds of {model['model']} v{model['version']}" if model
                     else "") + (f"; {st.reference['model_note']}"
                                 if st.reference.get("model_note") else ""))
    if st.ranges:
        t = Table(title=f"run {st.run}: lumisections not green")
        t.add_column("lumisections")
        t.add_column("level")
        t.add_column("reason", overflow="fold")
        for r in st.ranges:
            t.add_row(r.label(), f"[{STYLE[r.level]}]{r.level}[/]", r.reason)
        console.print(t)
    if lumis:
        t = Table(title=f"run {st.run}: every lumisection")
        for col in ("LS", "events", "level", "reason"):
            t.add_column(col, overflow="fold")
        for ls in st.lumis:
            t.add_row(str(ls.lumi), f"{ls.n_events:,}", f"[{STYLE[ls.level]}]{ls.level}[/]",
                      ls.reason)
        console.print(t)
