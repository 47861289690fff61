"""``hotline demo``: replay the bundled demo run through the embedded pipeline, no broker.

The demo tells the run's story the way a shift would learn it: the events go through the
rules and the default anomaly model, the occupancy maps through the DQM conv-AEs, then the
status engine (``alerts.run_status``) assesses every lumisection against the demo's
reference (the bundled reference card, ``data/references/``) and the verdict names the bad
lumisection range, what is wrong and where -- found by the status and DQM, never read from
the run's card. The lumisections are certified (``alerts.certification``: golden JSON) and
the run report (``dashboard.run_report``, with the ``dashboard`` extra) is written beside the
demo's alert store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from hotline.cli.common import (
    add_model_options,
    authorise,
    config_from,
    model_section,
    store_from,
    with_default_model,
)
from hotline.errors import HotlineError, SourceError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="replay the bundled demo run end to end (no broker, nothing to download)",
        description="Replay the demo run shipped with Hotline through the embedded pipeline, "
        "store the alerts in a fresh SQLite file (kept in the user's state folder, so "
        "`hotline alerts --store URL` can look at them afterwards) and print what was found.",
    )
    p.add_argument("--store", metavar="URL", default=None,
                   help="alert store (default: a fresh demo/alerts.db in the user's state "
                        "folder, replaced by the next demo)")
    p.add_argument("--rate", type=float, default=None, help="events per second (default: max)")
    p.add_argument("--serve", action="store_true",
                   help="also serve the dashboard on http://127.0.0.1:5006 and replay the run "
                        "there with the DQM monitoring (runs until Ctrl-C; prints a one-off "
                        "login for replay control)")
    add_model_options(p, default="the registered default model (ae_default)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from hotline.cli.replay import print_ae_pointers, print_files, print_report
    from hotline.stream.replay import check_rate

    check_rate(args.rate, "--rate")
    from hotline.stream.archive import list_runs
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    if not args.store:
        args.store = f"sqlite:///{fresh_demo_store()}"
    # [source] archive: the bundled demo archive unless configured
    cfg = config_from(args, model=model_section(args))
    runs = list_runs(cfg.source.archive, scan=False)
    if not runs:
        raise SourceError(f"the demo archive {cfg.source.archive} holds no runs")
    run = runs[0]
    cfg = with_default_model(cfg)  # the shipped default anomaly model joins the classic rules
    if getattr(args, "serve", False):  # dashboard + replay in the background, blocks
        from hotline.cli.dashboard import demo_password, run_dashboard

        console = Console(soft_wrap=True)
        if not cfg.dashboard.basic_auth:
            cfg = cfg.with_overrides({"dashboard": {"basic_auth": demo_password()}})
            console.print(f"demo login: any user name, password {cfg.dashboard.basic_auth}")
        with store_from(cfg) as store:  # the status light measures against the reference
            install_reference(store, cfg.source.name)
        return run_dashboard(cfg, autostart=(run.files, run.run, args.rate), console=console,
                             dqm=True)
    ctx = PipelineContext.from_config(cfg)
    console = Console(soft_wrap=True)
    console.print(f"Hotline demo: run {run.run} from {run.path} "
                  f"({run.card.get('description', 'no description')})")
    source = ReplaySource(files=run.files, branches=ctx.branches(), source=cfg.source.name,
                          rate=args.rate, progress=True)
    with store_from(cfg) as store:
        authorise(store, None, "replay_start", f"demo run {run.run}", None)
        ref = install_reference(store, cfg.source.name)
        monitor = dqm_monitor(store)
        report = run_embedded(source, ctx, store, on_result=monitor)
        if monitor is not None:
            monitor.finish()
        print_report(report, source, console)
        print_ae_pointers(store, console)
        print_files(source, console, only_problems=True)
        if report.events:
            tell_verdict(store, run.run, cfg, console, ref)
        url = cfg.store.resolved_url()
        console.print(f"alert store: {url}  (look at it: hotline alerts --store {url})")
    return 0


def install_reference(store: Any, source: str) -> Any:
    """Store the bundled demo reference card (``data/references/demo.json``) as the current
    reference of ``source`` in the demo's fresh store; None when none is bundled."""
    import json

    from hotline.alerts.reference import Reference, save_reference
    from hotline.config import package_path

    path = package_path("hotline.data", "references") / "demo.json"
    if not path.is_file():
        return None
    ref = Reference.from_dict({**json.loads(path.read_text()), "source": source})
    return save_reference(store, ref)


def dqm_monitor(store: Any) -> Any:
    """The occupancy monitoring of the registered DQM models, as a replay hook (or None)."""
    from hotline.stream.dqm_pipeline import DQMContext, DQMMonitor

    try:
        ctx = DQMContext.from_registry()
    except HotlineError:
        return None
    return DQMMonitor(ctx, store) if ctx.scorers else None


def tell_verdict(store: Any, run: int, cfg: Any, console: Console, ref: Any) -> None:
    """Assess, certify and report ``run``; print the verdict and where the products are."""
    from hotline.alerts import certification
    from hotline.alerts.run_status import assess_run

    status = assess_run(store, run, source=cfg.source.name, model=cfg.model.name or None,
                        registry=cfg.model.registry)
    flags = certification.record_assessment(store, status)
    folder = demo_folder(cfg.store.resolved_url())
    golden = folder / f"run{run}-golden.json"
    golden.write_text(json.dumps(certification.golden_json(flags)) + "\n")
    colour = {"green": "green", "amber": "yellow", "red": "red"}.get(status.level, "white")
    console.print(f"\n[bold {colour}]Verdict: run {run} is {status.level.upper()}[/] - "
                  + escape(status.reason))
    for r in status.ranges:
        console.print(f"  {r.label()}: {r.level} - " + escape(r.reason))
    if ref is not None:
        console.print(f"expectations: {ref.label()} (bundled demo reference)")
    good = sum(f.good for f in flags)
    console.print(f"certified good: {good} of {len(flags)} lumisections -> {golden}")
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:  # the report's plots are Bokeh
        console.print("run report: needs the dashboard extra (pip install 'hotline[dashboard]')")
        return
    from hotline.dashboard.model_info import load_model_info
    from hotline.dashboard.run_report import write_report

    thresholds, _, _ = load_model_info(cfg.model.name, cfg.model.registry, cfg.model.version)
    out = folder / f"run{run}-report.html"
    write_report(out, store, status, certification.flags(store, run, status.source),
                 thresholds=thresholds)
    console.print(f"run report: {out}")


def demo_folder(store_url: str) -> Path:
    """Where the demo's products go: beside its SQLite store, else the demo state folder."""
    from hotline.config import default_state_dir

    if store_url.startswith("sqlite:///"):
        return Path(store_url.removeprefix("sqlite:///")).parent
    folder = default_state_dir() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fresh_demo_store() -> Path:
    """``demo/alerts.db`` in the user's state folder, emptied (the previous demo's is removed)."""
    from hotline.config import default_state_dir

    path = default_state_dir() / "demo" / "alerts.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, path.with_name("alerts.db-wal"), path.with_name("alerts.db-shm")):
        old.unlink(missing_ok=True)
    return path
