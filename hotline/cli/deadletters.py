"""``hotline deadletters``: list, export and re-drive the dead letters of the alert store."""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hotline.cli.common import (
    add_store_option,
    authorise,
    config_from,
    of_total,
    store_from,
    write_json_lines,
)
from hotline.errors import StoreError

if TYPE_CHECKING:
    from hotline.alerts.records import DeadLetter
    from hotline.alerts.store import AlertStore
    from hotline.stream.redrive import Redriven

TABLE_LIMIT = 50  #: rows a table shows unless --limit says otherwise
STATES = {"open": False, "resolved": True, "all": None}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deadletters",
        help="list dead letters (input that could not be read or scored) and re-drive them",
        description="Show the dead letters of the alert store, newest first: when, where "
        "from (file or Kafka record), run, lumisection, how many events and why. Each "
        "failure is stored once (stable id), however often it was replayed. --json writes "
        "every matching one as JSON lines (payload base64). --redrive processes the inputs "
        "of the open ones again - files that now read are replayed through the pipeline, "
        "kept Kafka payloads are decoded and scored again - and marks resolved what now "
        "goes through; it reports what still fails and why (exit 1 if anything does).",
    )
    p.add_argument("--run", type=int, help="only this run")
    p.add_argument("--lumi", type=int, help="only this lumisection")
    p.add_argument("--id", action="append", metavar="ID",
                   help="only this dead letter (an id or its first characters; repeatable)")
    p.add_argument("--state", choices=sorted(STATES), default="open",
                   help="open (default), resolved (re-driven) or all")
    p.add_argument("--limit", type=int, default=None,
                   help="at most this many (table default 50, --json default all; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--redrive", action="store_true",
                   help="re-process the inputs of the matching open dead letters")
    p.add_argument("--dry-run", action="store_true",
                   help="with --redrive: show what would be re-driven, change nothing")
    p.add_argument("--rules", metavar="TOML", default=None,
                   help="rule menu for --redrive (default: the configured one)")
    add_store_option(p)
    p.set_defaults(handler=handle)


def _matching(store: AlertStore, args: argparse.Namespace,
              resolved: bool | None) -> Iterator[DeadLetter]:
    rows = store.iter_deadletters(run=args.run, lumi=args.lumi, resolved=resolved)
    if not args.id:
        return rows
    prefixes = [i.lower() for i in args.id]
    return (d for d in rows if any(d.id.startswith(p) for p in prefixes))


def _utc(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def as_json(d: DeadLetter) -> dict[str, Any]:
    return {"id": d.id, "source": d.source, "origin": d.origin, "reason": d.reason,
            "run": d.run, "lumi": d.lumi, "events": list(d.events), "n_events": len(d.events),
            "created": d.created, "resolved": d.resolved, "resolution": d.resolution,
            "payload": base64.b64encode(d.payload).decode() if d.payload else None}


def handle(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise StoreError(f"--limit must be >= 0, got {args.limit}")
    if args.dry_run and not args.redrive:
        raise StoreError("--dry-run goes with --redrive")
    cfg = config_from(args, alerts={"rules": args.rules})
    resolved = STATES[args.state]
    with store_from(cfg, create=False) as store:
        if args.redrive:
            if args.state != "open":
                raise StoreError("--redrive re-drives open dead letters; leave out --state")
            return _redrive(cfg, store, args)
        if args.json:
            rows = _matching(store, args, resolved)
            write_json_lines(as_json(d) for d in (islice(rows, args.limit) if args.limit
                                                  else rows))
            return 0
        limit = TABLE_LIMIT if args.limit is None else (args.limit or None)
        if args.id:
            matching = list(_matching(store, args, resolved))
            shown, total = matching[:limit] if limit else matching, len(matching)
        else:
            shown = store.deadletters(limit=limit, run=args.run, lumi=args.lumi,
                                      resolved=resolved)
            total = (len(shown) if limit is None or len(shown) < limit
                     else store.count_deadletters(run=args.run, lumi=args.lumi,
                                                  resolved=resolved))
        other = (store.count_deadletters(run=args.run, lumi=args.lumi, resolved=True)
                 if resolved is False else 0)
    noun = "dead letter" if resolved is None else f"{args.state} dead letter"
    title = f"{of_total(len(shown), total, noun)}, newest first"
    notes = []
    if len(shown) < total:
        notes.append("--limit 0 shows all, --json exports all")
    if other:
        notes.append(f"{other:,} resolved not shown: --state all")
    if notes:
        title += f" ({'; '.join(notes)})"
    t = Table(title=title)
    cols = ["time (UTC)", "id", "origin", "run", "ls", "events", "reason"]
    if resolved is not False:
        cols.append("resolved")
    for col in cols:
        t.add_column(col, justify="right" if col in ("run", "ls", "events") else "left",
                     no_wrap=col not in ("origin", "reason"),
                     min_width={"origin": 16, "reason": 24}.get(col),
                     overflow="fold" if col == "origin" else "ellipsis")
    for d in shown:
        row = [_utc(d.created), d.id[:12], d.origin, "" if d.run is None else str(d.run),
               "" if d.lumi is None else str(d.lumi), f"{len(d.events):,}", d.reason]
        if resolved is not False:
            row.append("open" if d.resolved is None else _utc(d.resolved)[5:16])
        t.add_row(*row)
    Console(width=max(Console().width, 200)).print(t)  # origins are long paths: no folding
    return 0


def _redrive(cfg: Any, store: AlertStore, args: argparse.Namespace) -> int:
    from hotline.stream.pipeline import PipelineContext
    from hotline.stream.redrive import plan_redrive, redrive
    from hotline.stream.topics import topics_for

    rows = _matching(store, args, False)
    plan = plan_redrive(islice(rows, args.limit) if args.limit else rows)
    console = Console(soft_wrap=True)
    if not plan:
        console.print("no open dead letters match; nothing to re-drive")
        return 0
    n = sum(len(i.deadletters) for i in plan)
    if args.dry_run:
        console.print(f"would re-drive {n:,} open dead letter(s) from {len(plan)} input(s):",
                      highlight=False)
        for item in plan:
            how = {"file": "replay the file through the pipeline",
                   "payload": "decode and process the kept Kafka payload again",
                   "none": f"cannot: {item.why_not}"}[item.kind]
            console.print(f"  {item.origin} ({len(item.deadletters)} dead letter(s)): {how}",
                          highlight=False, markup=False)
        return 0
    authorise(store, args, "deadletter_redrive", f"{n} dead letter(s)",
              {"inputs": [i.origin for i in plan][:20], "deadletters": n})
    ctx = PipelineContext.from_config(cfg)
    results = redrive(plan, ctx, store, topics=topics_for(cfg.stream), tree=cfg.source.tree,
                      step_size=cfg.source.step_size)
    _print_results(results, console)
    return 0 if all(r.ok for r in results) else 1


def _print_results(results: list[Redriven], console: Console) -> None:
    """One line per input (greppable, never wrapped), then the totals."""
    for r in results:
        n = len(r.item.deadletters)
        done = (f"{r.events:,} events, {r.alerts_new:,} new alerts"
                + (f", {r.new_deadletters} new dead letter(s)" if r.new_deadletters else ""))
        if r.ok:
            console.print(f"resolved {n} of {n}: {r.item.origin} ({done})", highlight=False,
                          markup=False)
            continue
        reasons = list(dict.fromkeys(r.failing.values()))
        why = "; ".join(reasons[:3]) + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3
                                        else "")
        ran = f" ({done})" if r.item.kind == "file" and r.events else ""
        console.print(f"still failing {len(r.failing)} of {n}: {r.item.origin}{ran}: {why}"
                      + (f"; {len(r.resolved)} resolved" if r.resolved else ""),
                      highlight=False, markup=False)
    resolved = sum(len(r.resolved) for r in results)
    failing = sum(len(r.failing) for r in results)
    console.print(f"re-drive: {resolved:,} dead letter(s) resolved, {failing:,} still failing, "
                  f"from {len(results)} input(s)", highlight=False)
