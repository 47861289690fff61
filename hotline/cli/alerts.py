"""``hotline alerts``: list, filter and export stored alerts."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from hotline.cli.common import add_store_option, config_from, store_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts",
        help="list, filter or export stored alerts",
        description="Show stored hotline alerts, newest first. Filter by rule, kind, run, "
        "lumisection or significance; --json writes them as JSON lines for other tools.",
    )
    p.add_argument("--rule", action="append", help="only this rule (repeatable)")
    p.add_argument("--kind", choices=["classic", "ae", "dqm"], help="only this kind of alert")
    p.add_argument("--run", type=int, help="only this run")
    p.add_argument("--lumi", type=int, help="only this lumisection")
    p.add_argument("--min-significance", type=float, metavar="Z",
                   help="only alerts at least this significant (Gaussian sigma)")
    p.add_argument("--max-p", type=float, metavar="P", help="only alerts with p-value <= P")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--summary", action="store_true", help="counts per rule instead of alerts")
    add_store_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    filters = dict(rule=args.rule, kind=args.kind, run=args.run, lumi=args.lumi,
                   min_significance=args.min_significance, max_p=args.max_p)
    with store_from(cfg) as store:
        if args.summary:
            counts = store.rule_counts(**filters)
            if args.json:
                print(json.dumps(counts, sort_keys=True))
                return 0
            t = Table(title="alerts per rule")
            t.add_column("rule")
            t.add_column("alerts", justify="right")
            for rule, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                t.add_row(rule, f"{n:,}")
            Console().print(t)
            return 0
        rows = store.alerts(limit=args.limit or None, **filters)
    if args.json:
        for r in rows:
            sys.stdout.write(json.dumps(asdict(r), sort_keys=True) + "\n")
        return 0
    t = Table(title=f"{len(rows)} alert(s), newest first")
    for col in ("id", "kind", "rule", "run", "ls", "event", "score", "p-value", "Z"):
        t.add_column(col, justify="left" if col in ("id", "kind", "rule") else "right")
    for r in rows:
        t.add_row(r.id[:12], r.kind, r.rule, str(r.run), str(r.lumi), str(r.event),
                  "" if r.score is None else f"{r.score:.4g}",
                  "" if r.p_value is None else f"{r.p_value:.2e}",
                  "" if r.significance is None else f"{r.significance:.2f}")
    Console().print(t)
    return 0
