"""``hotline replay``: replay an archived run (or ROOT files) through the embedded pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hotline.cli.common import add_store_option, config_from, store_from
from hotline.config import Config
from hotline.errors import SourceError

if TYPE_CHECKING:
    from hotline.stream.h5source import H5Source
    from hotline.stream.pipeline import RunReport
    from hotline.stream.replay import ReplaySource


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay an archived run through the hotline rules and store the alerts",
        description="Replay an archived run (by number, from the archive) or explicit ROOT files "
        "through the hotline rules; alerts and per-lumisection summaries go to the alert store. "
        "Replaying the same run twice stores each alert once.",
    )
    p.add_argument("run", nargs="?", type=int,
                   help="run number in the archive (see 'hotline runs')")
    p.add_argument("--files", nargs="+", metavar="FILE",
                   help="replay these ROOT files instead (or ADC2021 .h5 files; RUN then "
                        "labels them)")
    p.add_argument("--archive", metavar="DIR", help="archive folder (env: HOTLINE_SOURCE_ARCHIVE)")
    p.add_argument("--rate", type=float, default=None,
                   help="events per second (default: as fast as possible)")
    p.add_argument("--from-lumi", type=int, default=None, metavar="LS",
                   help="start at this lumisection")
    p.add_argument("--step-size", type=int, default=None, help="events per batch")
    p.add_argument("--tree", default=None, help="TTree name (default Events)")
    p.add_argument("--rules", metavar="TOML", default=None,
                   help="rule menu file (default: built-in Exotica Hotline menu)")
    p.add_argument("--to", metavar="URL", default=None,
                   help="publish to a Kafka broker (kafka://HOST:PORT) instead of processing here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_store_option(p)
    p.set_defaults(handler=handle)


def make_source(
    cfg: Config, args: argparse.Namespace, branches: list[str]
) -> ReplaySource | H5Source:
    from hotline.stream.archive import find_run
    from hotline.stream.h5source import H5Source
    from hotline.stream.replay import ReplaySource

    if args.files:
        files = [Path(f) for f in args.files]
        if all(f.suffix in (".h5", ".hdf5") for f in files):
            return H5Source(files, run=args.run or 1, step_size=cfg.source.step_size,
                            source=cfg.source.name)
    elif args.run is not None:
        files = find_run(cfg.source.archive, args.run).files
    else:
        raise SourceError("say which run to replay (a run number, or --files FILE ...)")
    return ReplaySource(
        files=files,
        branches=branches,
        tree=cfg.source.tree,
        step_size=cfg.source.step_size,
        rate=args.rate,
        start_lumi=args.from_lumi,
        source=cfg.source.name,
        progress=not args.no_progress,
    )


MAX_LUMI_ROWS = 40


def print_ae_pointers(store: Any, console: Console, limit: int = 100_000) -> None:
    """One line per AE rule: which object types its alerts point to (``explained_by``)."""
    from collections import Counter

    from hotline.alerts.subscriptions import alert_object_type

    by_rule: dict[str, Counter] = {}
    for a in store.alerts(kind="ae", limit=limit):
        by_rule.setdefault(a.rule, Counter())[alert_object_type(a.payload) or "?"] += 1
    for rule, c in sorted(by_rule.items()):
        console.print(f"{rule} alerts point to: "
                      + ", ".join(f"{t} {n:,}" for t, n in c.most_common()))


def print_report(
    report: RunReport, source: ReplaySource | H5Source, console: Console
) -> None:
    console.print(
        f"replayed {report.events:,} events in {report.batches} batches "
        f"({report.seconds:.2f} s, {report.rate:,.0f} events/s); "
        f"{report.alerts_seen:,} alerts ({report.alerts_new:,} new in the store), "
        f"{report.deadletters} dead letters"
    )
    if report.per_rule or report.unavailable:
        t = Table(title="alerts per rule")
        t.add_column("rule")
        t.add_column("alerts", justify="right")
        for rule, n in sorted(report.per_rule.items(), key=lambda kv: -kv[1]):
            t.add_row(rule, f"{n:,}")
        for rule, missing in sorted(report.unavailable.items()):
            t.add_row(rule, f"unavailable (no {', '.join(missing)})")
        console.print(t)
    if report.per_lumi:
        t = Table(title="alerts per lumisection")
        t.add_column("run", justify="right")
        t.add_column("lumisection", justify="right")
        t.add_column("alerts", justify="right")
        rows = sorted(report.per_lumi.items())
        for (run, ls), n in rows[:MAX_LUMI_ROWS]:
            t.add_row(str(run), str(ls), f"{n:,}")
        if len(rows) > MAX_LUMI_ROWS:
            t.add_row("...", f"{len(rows) - MAX_LUMI_ROWS} more", "(hotline alerts --run N)")
        console.print(t)
    for err in source.errors:
        console.print(f"[yellow]warning:[/] {err}")


def handle(args: argparse.Namespace) -> int:
    from hotline.stream.pipeline import PipelineContext, run_embedded

    source_cli = {"archive": args.archive, "step_size": args.step_size, "tree": args.tree}
    cfg = config_from(args, source=source_cli, alerts={"rules": args.rules})
    ctx = PipelineContext.from_config(cfg)
    if args.to:
        from hotline.cli import kafka_replay  # distributed path (optional module)

        return kafka_replay.publish(cfg, args, make_source(cfg, args, ctx.branches()))
    source = make_source(cfg, args, ctx.branches())
    console = Console(soft_wrap=True)
    with store_from(cfg) as store:
        report = run_embedded(source, ctx, store)
        print_report(report, source, console)
        if report.alerts_seen:
            print_ae_pointers(store, console)
    if report.events == 0:
        raise SourceError(
            "no events were replayed"
            + (f": {'; '.join(str(e) for e in source.errors)}" if source.errors else "")
        )
    return 0
