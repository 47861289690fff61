"""``hotline certify``: lumisection certification of a run: golden JSON, bad list, overrides."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import actor_from, add_store_option, config_from, store_from
from hotline.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "certify",
        help="certify a run's lumisections: golden JSON of the good ones, the bad ones",
        description="Assess the run (as `hotline status`), store a quality flag per "
        "lumisection (green: good; red: bad; amber: good, listed for review unless "
        "--amber-bad), apply expert overrides (--set 25-32=bad --comment ...; kept with who "
        "and when, never lost by re-running) and write the CMS golden JSON "
        '{"RUN": [[first, last], ...]} of the good lumisections plus a JSON of the bad ones '
        "with their reasons.",
    )
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("--source", help="data stream name (default: the run's only or largest)")
    p.add_argument("--out", metavar="FILE", help="write the golden JSON here")
    p.add_argument("--bad", metavar="FILE", help="write the bad (and review) lumisections here")
    p.add_argument("--set", action="append", default=[], metavar="RANGES=good|bad",
                   help="expert override, e.g. 25-32=bad or 7,9-10=good (repeatable)")
    p.add_argument("--comment", default="", help="why (required with --set)")
    p.add_argument("--user", default=None,
                   help="who overrides (default: the OS login name; another name only on a "
                        "store without roles, see `hotline access`)")
    p.add_argument("--amber-bad", action="store_true",
                   help="certify amber lumisections bad instead of good-for-review")
    p.add_argument("--no-reference", action="store_true",
                   help="ignore the stored reference run (leave-one-out expectations)")
    add_store_option(p)
    p.set_defaults(handler=handle)


def parse_set(text: str) -> tuple[list[int], bool]:
    """``"25-32=bad"`` -> ([25, ..., 32], False); ``ConfigError`` naming the text."""
    from hotline.alerts.reference import parse_lumi_ranges

    m = re.fullmatch(r"\s*([\d,\s-]+)=\s*(good|bad)\s*", text)
    if not m:
        raise ConfigError(f"--set {text!r}: expected RANGES=good or RANGES=bad, e.g. 25-32=bad")
    lumis = [ls for a, b in parse_lumi_ranges(m.group(1)) for ls in range(a, b + 1)]
    return lumis, m.group(2) == "good"


def handle(args: argparse.Namespace) -> int:
    from hotline.alerts.access import require
    from hotline.alerts.certification import (
        bad_json,
        golden_json,
        override,
        record_assessment,
    )
    from hotline.alerts.reference import run_source
    from hotline.alerts.run_status import assess_run

    sets = [parse_set(s) for s in args.set]
    if sets and not args.comment.strip():
        raise ConfigError("--set needs --comment saying why (kept with the override)")
    cfg = config_from(args)
    with store_from(cfg, create=False) as store:
        actor = actor_from(store, args)
        require(actor, "assess_run")
        if sets:  # refused before anything is written
            require(actor, "override_flags")
        source = run_source(store, args.run, args.source)
        st = assess_run(store, args.run, source, False if args.no_reference else None,
                        registry=cfg.model.registry or None)
        flags = record_assessment(store, st, amber_good=not args.amber_bad, actor=actor)
        for lumis, good in sets:
            known = {f.lumi for f in flags}
            unknown = sorted(set(lumis) - known)
            if unknown:
                raise ConfigError(f"--set: run {args.run} has no lumisection "
                                  + ", ".join(map(str, unknown[:5]))
                                  + (" ..." if len(unknown) > 5 else ""))
            flags = override(store, source, args.run, lumis, good, args.comment, actor.user,
                             actor=actor)
    golden, bad = golden_json(flags), bad_json(flags)
    for path, data in ((args.out, golden), (args.bad, bad)):
        if path:
            Path(path).write_text(json.dumps(data, indent=1) + "\n")
    console = Console(soft_wrap=True)
    n_good = sum(f.good for f in flags)
    console.print(f"run {args.run}: {n_good} of {len(flags)} lumisections certified good; "
                  f"golden JSON: {json.dumps(golden)}")
    if bad["bad"] or bad["review"]:
        t = Table(title=f"run {args.run}: bad lumisections and amber ones for review")
        for col in ("lumisections", "flag", "level", "decided by", "reason / comment"):
            t.add_column(col, overflow="fold")
        for kind, rows in (("bad", bad["bad"]), ("review", bad["review"])):
            for g in rows:
                ls = f"{g['first']}" if g["first"] == g["last"] else f"{g['first']}-{g['last']}"
                why = g["comment"] or g["reason"]
                t.add_row(ls, kind, g["level"], g["decided_by"], why)
        console.print(t)
    for path, what in ((args.out, "golden JSON"), (args.bad, "bad lumisections")):
        if path:
            console.print(f"{what} written to {path}")
    return 0
