"""``hotline alerts``: list, filter and export stored alerts."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from itertools import islice

from rich.console import Console
from rich.table import Table

from hotline.cli.common import (
    add_store_option,
    config_from,
    of_total,
    store_from,
    write_json_lines,
)
from hotline.errors import StoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts",
        help="list, filter or export stored alerts",
        description="Show stored hotline alerts, newest first. Filter by rule, kind, run, "
        "lumisection or significance; --json writes every matching alert as JSON lines for "
        "other tools (streamed from the store page by page).",
    )
    p.add_argument("--rule", action="append", help="only this rule (repeatable)")
    p.add_argument("--kind", choices=["classic", "ae", "dqm"], help="only this kind of alert")
    p.add_argument("--run", type=int, help="only this run")
    p.add_argument("--lumi", type=int, help="only this lumisection")
    p.add_argument("--min-significance", type=float, metavar="Z",
                   help="only alerts at least this significant (Gaussian sigma)")
    p.add_argument("--max-p", type=float, metavar="P",
                   help="a filter on stored alerts: only those whose p-value is <= P (not the "
                        "alert threshold: that is --p-value of replay / worker)")
    p.add_argument("--limit", type=int, default=None,
                   help="at most this many (table default 50, --json default all; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--summary", action="store_true", help="counts per rule instead of alerts")
    add_store_option(p)
    p.set_defaults(handler=handle)


TABLE_LIMIT = 50  #: rows a table shows unless --limit says otherwise


def handle(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    filters = dict(rule=args.rule, kind=args.kind, run=args.run, lumi=args.lumi,
                   min_significance=args.min_significance, max_p=args.max_p)
    if args.limit is not None and args.limit < 0:
        raise StoreError(f"--limit must be >= 0, got {args.limit}")
    with store_from(cfg, create=False) as store:
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
        if args.json:
            rows = store.iter_alerts(**filters)
            write_json_lines(asdict(r) for r in (islice(rows, args.limit) if args.limit
                                                 else rows))
            return 0
        limit = TABLE_LIMIT if args.limit is None else (args.limit or None)
        shown = store.alerts(limit=limit, **filters)
        total = len(shown) if limit is None or len(shown) < limit else store.count_alerts(
            **filters)
    t = Table(title=f"{of_total(len(shown), total, 'alert')}, newest first"
              + (" (--limit 0 shows all, --json exports all)" if len(shown) < total else ""))
    for col in ("id", "kind", "rule", "run", "ls", "event", "score", "p-value", "Z"):
        t.add_column(col, justify="left" if col in ("id", "kind", "rule") else "right")
    for r in shown:
        t.add_row(r.id[:12], r.kind, r.rule, str(r.run), str(r.lumi), str(r.event),
                  "" if r.score is None else f"{r.score:.4g}",
                  "" if r.p_value is None else f"{r.p_value:.2e}",
                  "" if r.significance is None else f"{r.significance:.2f}")
    Console().print(t)
    return 0
