"""``hotline demo``: replay the bundled demo run through the embedded pipeline, no broker."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hotline.cli.common import config_from, store_from
from hotline.errors import SourceError


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
                        "there (runs until Ctrl-C; prints a one-off login for replay control)")
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
    cfg = config_from(args)  # [source] archive: the bundled demo archive unless configured
    runs = list_runs(cfg.source.archive, scan=False)
    if not runs:
        raise SourceError(f"the demo archive {cfg.source.archive} holds no runs")
    run = runs[0]
    if not cfg.model.name:  # the shipped default anomaly model joins the classic rules
        from hotline.models.registry import DEFAULT_MODEL

        cfg = cfg.with_overrides({"model": {"name": DEFAULT_MODEL}})
    if getattr(args, "serve", False):  # dashboard + replay in the background, blocks
        from hotline.cli.dashboard import demo_password, run_dashboard

        console = Console(soft_wrap=True)
        if not cfg.dashboard.basic_auth:
            cfg = cfg.with_overrides({"dashboard": {"basic_auth": demo_password()}})
            console.print(f"demo login: any user name, password {cfg.dashboard.basic_auth}")
        return run_dashboard(cfg, autostart=(run.files, run.run, args.rate), console=console)
    ctx = PipelineContext.from_config(cfg)
    console = Console(soft_wrap=True)
    console.print(f"Hotline demo: run {run.run} from {run.path} "
                  f"({run.card.get('description', 'no description')})")
    source = ReplaySource(files=run.files, branches=ctx.branches(), source=cfg.source.name,
                          rate=args.rate, progress=True)
    with store_from(cfg) as store:
        report = run_embedded(source, ctx, store)
        print_report(report, source, console)
        print_ae_pointers(store, console)
        print_files(source, console, only_problems=True)
        url = cfg.store.resolved_url()
        console.print(f"alert store: {url}  (look at it: hotline alerts --store {url})")
    return 0


def fresh_demo_store() -> Path:
    """``demo/alerts.db`` in the user's state folder, emptied (the previous demo's is removed)."""
    from hotline.config import default_state_dir

    path = default_state_dir() / "demo" / "alerts.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, path.with_name("alerts.db-wal"), path.with_name("alerts.db-shm")):
        old.unlink(missing_ok=True)
    return path
