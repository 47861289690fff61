"""``hotline reference``: set or show the reference run the run status compares with."""

from __future__ import annotations

import argparse
import datetime
import json

from rich.console import Console
from rich.table import Table

from hotline.cli.common import actor_from, add_store_option, config_from, store_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reference",
        help="set or show the reference run of the run status",
        description="The run status compares every classic rule, the input rate, the "
        "quarantined fraction and the DQM alert rate with a reference run chosen by the "
        "expert (AE thresholds are compared with their calibrated p-values). `set RUN` "
        "measures them on that run's stored summaries and DQM alerts and stores them with "
        "their provenance; `show` prints the current reference and the earlier ones; "
        "`show --json` writes it as a card that `load FILE` stores in another store (how "
        "the demo ships its reference).",
    )
    rs = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = rs.add_parser("set", help="measure RUN and make it the current reference")
    s.add_argument("run", type=int, metavar="RUN")
    s.add_argument("--source", help="data stream name of the run (default: the run's only "
                   "or largest one)")
    s.add_argument("--lumis", metavar="RANGES", help="only these lumisections, e.g. 1-20,25-40")
    s.add_argument("--comment", default="", help="why this run (kept with the reference)")
    s.add_argument("--user", default=None, help="who sets it (default: the OS login name)")
    add_store_option(s)
    s.set_defaults(handler=handle_set)
    sh = rs.add_parser("show", help="the current reference and the earlier ones")
    sh.add_argument("--source", help="only references of this data stream")
    sh.add_argument("--json", action="store_true", help="print the current reference as JSON")
    add_store_option(sh)
    sh.set_defaults(handler=handle_show)
    ld = rs.add_parser("load", help="store a reference card (JSON from `show --json`) as the "
                       "current reference")
    ld.add_argument("file", metavar="FILE")
    ld.add_argument("--source", help="data stream it is the reference of (default: the card's)")
    add_store_option(ld)
    ld.set_defaults(handler=handle_load)


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def handle_set(args: argparse.Namespace) -> int:
    from hotline.alerts.reference import compute_reference, parse_lumi_ranges, save_reference

    lumis = parse_lumi_ranges(args.lumis) if args.lumis else None
    cfg = config_from(args)
    with store_from(cfg, create=False) as store:
        actor = actor_from(store, args)
        from hotline.alerts.access import require

        require(actor, "set_reference")
        ref = compute_reference(store, args.run, args.source, lumis, actor.user, args.comment)
        ref = save_reference(store, ref, actor=actor)
    _print(ref, Console(soft_wrap=True), "reference set")
    return 0


def handle_load(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hotline.alerts.reference import Reference, save_reference
    from hotline.errors import HotlineError

    path = Path(args.file)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "run" not in data:
            raise ValueError("not a reference card (no 'run')")
        source = args.source or data.get("source")
        if not source:
            raise ValueError("the card names no source: give --source")
        ref = Reference.from_dict({**data, "source": source})
    except (OSError, ValueError, TypeError) as exc:
        raise HotlineError(f"reference card {path}: {exc}") from exc
    cfg = config_from(args)
    with store_from(cfg) as store:
        ref = save_reference(store, ref)
    _print(ref, Console(soft_wrap=True), f"reference loaded from {path}")
    return 0


def handle_show(args: argparse.Namespace) -> int:
    from hotline.alerts.reference import reference_history

    cfg = config_from(args)
    with store_from(cfg, create=False) as store:
        hist = reference_history(store, args.source)
    if args.json:
        print(json.dumps(hist[0].to_dict() if hist else None, sort_keys=True, indent=1))
        return 0
    console = Console(soft_wrap=True)
    if not hist:
        console.print("no reference set: the status compares each run with its own other "
                      "lumisections (hotline reference set RUN)")
        return 0
    _print(hist[0], console, "current reference")
    if len(hist) > 1:
        t = Table(title="earlier references")
        for col in ("#", "source", "run", "lumisections", "set by", "when", "comment"):
            t.add_column(col)
        for r in hist[1:]:
            t.add_row(str(r.seq), r.source, str(r.run), str(r.n_lumis), r.set_by,
                      _when(r.set_at), r.comment)
        console.print(t)
    return 0


def _print(ref, console: Console, title: str) -> None:  # type: ignore[no-untyped-def]
    lumis = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ref.lumis)
    console.print(f"[bold]{title}[/]: run {ref.run} of source '{ref.source}', lumisections "
                  f"{lumis} ({ref.n_lumis} LS, {ref.events:,} events, {ref.good_events:,} "
                  f"good); set by {ref.set_by} on {_when(ref.set_at)} with {ref.code_version}"
                  + (f"; comment: {ref.comment}" if ref.comment else ""))
    t = Table(title="expectations")
    for col, just in (("quantity", "left"), ("expected", "right"), ("measured on", "right"),
                      ("overdispersion", "right")):
        t.add_column(col, justify=just)
    if ref.input:
        t.add_row("events per lumisection", f"{ref.input['mean']:.1f}",
                  f"{int(ref.input['n_lumis'])} LS", f"var {ref.input['var']:.1f}")
    if ref.quarantine:
        q = ref.quarantine
        t.add_row("quarantined events", f"{q['k'] / max(q['n'], 1):.2e}",
                  f"{int(q['k'])} / {int(q['n']):,}", f"{q['phi']:.2f}")
    for rule, d in sorted(ref.rules.items()):
        t.add_row(f"rule {rule}", f"{d['k'] / max(d['n'], 1):.2e}",
                  f"{int(d['k'])} / {int(d['n']):,}", f"{d['phi']:.2f}")
    for sub, d in sorted(ref.dqm.items()):
        t.add_row(f"DQM {sub} (LS with alerts)", f"{d['k'] / max(d['n'], 1):.3f}",
                  f"{int(d['k'])} / {int(d['n'])} LS", "")
    for rule, d in sorted(ref.ae.items()):
        t.add_row(f"AE {rule} (tested against p)", f"{d['k'] / max(d['n'], 1):.2e}",
                  f"{int(d['k'])} / {int(d['n']):,}", "")
    console.print(t)
