"""``hotline replay``: replay an archived run (or ROOT files) through the embedded pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hotline.cli.common import (
    add_emulation_options,
    add_model_options,
    add_store_option,
    authorise,
    config_from,
    emulation_section,
    model_section,
    store_from,
    with_default_model,
)
from hotline.config import Config
from hotline.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from hotline.stream.h5source import H5Source
    from hotline.stream.pipeline import RunReport
    from hotline.stream.replay import ReplaySource


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay an archived run through the hotline rules and store the alerts",
        description="Replay an archived run (by number, from the archive) or explicit ROOT files "
        "through the hotline rules and the registered default anomaly model (--model to "
        "choose another, --no-model for the classic rules only); alerts and per-lumisection "
        "summaries go to the alert store. "
        "Replaying the same run twice stores each alert once. Exit status: 0 when every file "
        "was read, 1 when some failed (listed per file), 2 when nothing was replayed.",
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
    p.add_argument("--schema", metavar="NAME|TOML", default=None,
                   help="read files of another schema through an alias spec mapping its "
                        "branch names onto NanoAOD names (bundled: run3_scouting; "
                        "env: HOTLINE_SOURCE_SCHEMA)")
    p.add_argument("--step-size", type=int, default=None, help="events per batch")
    p.add_argument("--tree", default=None, help="TTree name (default Events)")
    p.add_argument("--rules", metavar="TOML", default=None,
                   help="rule menu file (default: built-in Exotica Hotline menu)")
    p.add_argument("--to", metavar="URL", default=None,
                   help="publish to a Kafka broker (kafka://HOST:PORT) instead of processing here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_options(p, default="the registered default model (ae_default)")
    add_emulation_options(p)
    add_store_option(p)
    p.set_defaults(handler=handle)


def make_source(
    cfg: Config, args: argparse.Namespace, branches: list[str]
) -> ReplaySource | H5Source:
    from hotline.detectors.schemas import load_aliases
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
        aliases=load_aliases(cfg.source.schema) if cfg.source.schema else None,
    )


MAX_LUMI_ROWS = 40


def model_line(cfg: Config) -> str:
    """Which anomaly model scores (or that none does), in one line."""
    if not cfg.model.name:
        return "anomaly model: none (classic rules only)"
    return (f"anomaly model: {cfg.model.name}:{cfg.model.version} at p = "
            f"{cfg.model.p_value:g} (--no-model: classic rules only)")


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


def rule_rows(report: RunReport) -> list[tuple[str, str]]:
    """(rule, alerts column) once per rule: its count, ``unavailable (no X)`` when it never
    ran, or its count plus a note when it was unavailable for part of the data."""
    rows = []
    names = sorted(set(report.per_rule) | set(report.unavailable),
                   key=lambda r: (-report.per_rule.get(r, 0), r))
    for rule in names:
        n = report.per_rule.get(rule, 0)
        missing = report.unavailable.get(rule)
        if missing is None:
            rows.append((rule, f"{n:,}"))
        elif rule in report.available:
            rows.append((rule, f"{n:,} (unavailable for part of the data: no "
                               f"{', '.join(missing)})"))
        else:
            rows.append((rule, f"unavailable (no {', '.join(missing)})"))
    return rows


def print_report(
    report: RunReport, source: ReplaySource | H5Source, console: Console
) -> None:
    """The replay summary line, alerts per rule and per lumisection (file problems are
    printed once, by ``print_files``)."""
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
        for rule, text in rule_rows(report):
            t.add_row(rule, text)
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


def print_files(
    source: ReplaySource | H5Source, console: Console, only_problems: bool = False
) -> None:
    """Per-file summary (file, events, status) when several files were given or one failed
    (``only_problems``: only when one failed); each problem is printed here once."""
    outcomes = getattr(source, "files_report", None)
    if outcomes is None:  # HDF5 source: its errors only
        for err in source.errors:
            console.print(f"[yellow]warning:[/] {err}")
        return
    if not any(o.failed for o in outcomes) and (only_problems or len(outcomes) < 2):
        return
    failed = sum(o.failed for o in outcomes)
    console.print(f"files: {len(outcomes)} given"
                  + (f", [yellow]{failed} failed[/]" if failed else ", all read"))
    width = max(len(f"{o.events:,}") for o in outcomes)
    for o in outcomes:  # one line per file, the reason on the same line (grep-able)
        state = "[red]FAILED[/]" if o.failed else "ok    "
        tail = f": {o.status}" if o.status != "ok" else ""
        console.print(f"  {state} {o.events:>{width},} events  {o.path}{tail}",
                      highlight=False, markup=True, overflow="ignore", crop=False)


def check_options(args: argparse.Namespace) -> None:
    """Refuse impossible option values in one line naming the option, before any file is read."""
    from hotline.stream.replay import check_rate, check_start_lumi

    check_rate(args.rate, "--rate")
    check_start_lumi(args.from_lumi, "--from-lumi")
    if args.to and (args.emulate or args.emulate_fraction is not None):
        raise ConfigError("--emulate runs where the events are scored: give it to "
                          "'hotline worker', not to 'hotline replay --to'")


def nothing_replayed(source: ReplaySource | H5Source) -> SourceError:
    """The one-line error of a replay that produced no events, saying why."""
    start = getattr(source, "start_lumi", None)
    last = getattr(source, "last_lumi", None)
    errors = "; ".join(str(e) for e in source.errors)
    if start is not None and last is not None and last < start:
        return SourceError(f"no events at or after lumisection {start}; the files end at "
                           f"lumisection {last}" + (f"; {errors}" if errors else ""))
    return SourceError("no events were replayed" + (f": {errors}" if errors else ""))


def handle(args: argparse.Namespace) -> int:
    from hotline.stream.pipeline import PipelineContext, run_embedded

    check_options(args)
    source_cli = {"archive": args.archive, "step_size": args.step_size, "tree": args.tree,
                  "schema": args.schema}
    cfg = with_default_model(config_from(args, source=source_cli, alerts={"rules": args.rules},
                                         model=model_section(args),
                                         firmware=emulation_section(args)))
    ctx = PipelineContext.from_config(cfg)
    if args.to:
        from hotline.cli import kafka_replay  # distributed path (optional module)

        source = make_source(cfg, args, ctx.branches())
        rc = kafka_replay.publish(cfg, args, source)
        print_files(source, Console(soft_wrap=True))
        return 1 if source.errors else rc
    source = make_source(cfg, args, ctx.branches())
    console = Console(soft_wrap=True)
    with store_from(cfg) as store:
        authorise(store, args, "replay_start", f"run {args.run}" if args.run else "files",
                  {"files": [str(f) for f in getattr(source, "files", [])][:20],
                   "model": cfg.model.name})
        report = run_embedded(source, ctx, store)
        if report.events == 0:
            raise nothing_replayed(source)
        console.print(model_line(cfg), highlight=False)
        print_report(report, source, console)
        if report.alerts_seen:
            print_ae_pointers(store, console)
    print_files(source, console)
    return 1 if source.errors else 0
