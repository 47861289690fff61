"""``hotline report``: write a run's report, one self-contained HTML page for the shift e-log.

Assesses the run (``alerts.run_status.assess_run``), reads its stored certification flags
(``alerts.certification.flags``; ``hotline certify`` stores them) and renders the page
with ``dashboard.run_report``; the AE thresholds drawn are those of the configured model,
else of the model named by the run's AE alerts. Needs the ``dashboard`` extra (Bokeh).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hotline.cli.common import add_store_option, config_from, store_from
from hotline.errors import StoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a run's report: one HTML page for the shift e-log",
        description="Write one self-contained HTML page (plots embedded, opens without "
        "network) for the shift e-log: the run's status and its reasons, the status per "
        "lumisection, rates against their expectation, the non-green lumisections, the top "
        "alerts with their loss contributions, DQM findings, dead letters and the "
        "certification (golden JSON, bad lumisections, expert overrides).",
    )
    p.add_argument("run", type=int, metavar="RUN", help="run number")
    p.add_argument("--source", default=None,
                   help="data-stream name of the run (default: the one with most of its events)")
    p.add_argument("--model", metavar="NAME[:VERSION]", default=None,
                   help="anomaly model whose thresholds are drawn (env: HOTLINE_MODEL_NAME; "
                        "default: the model, at the version, of the run's AE alerts)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="the HTML file to write (default: run<RUN>-report.html here)")
    add_store_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from hotline.cli.common import model_section
    from hotline.dashboard.model_info import load_model_info
    from hotline.dashboard.run_report import ae_model_of_run, write_report

    cfg = config_from(args, model=model_section(args))
    run = args.run
    out = Path(args.out or f"run{run}-report.html")
    with store_from(cfg, create=False) as store:
        if not store.summaries(source=args.source, run=run):
            of = f" of source '{args.source}'" if args.source else ""
            raise StoreError(f"run {run}{of} has no lumisection summaries in "
                             f"{cfg.store.resolved_url()}: replay it first "
                             f"(hotline replay {run}), or give --store / --source")
        from hotline.alerts import certification
        from hotline.alerts.run_status import assess_run

        # no model configured: the engine takes the one the run's AE alerts name
        ae = None
        if cfg.model.name:
            from hotline.alerts.reference import load_ae_model

            ae = load_ae_model(cfg.model.name, cfg.model.version, cfg.model.registry)
        status = assess_run(store, run, source=args.source, model=ae,
                            registry=cfg.model.registry)
        flags = certification.flags(store, run, status.source)
        model, version = cfg.model.name, cfg.model.version
        if not model:
            model, version = ae_model_of_run(store, status.source, run) or ("", "")
        thresholds, _, _ = load_model_info(model, cfg.model.registry, version)
        write_report(out, store, status, flags, thresholds=thresholds)
    console = Console(soft_wrap=True)
    console.print(status.verdict(), markup=False, highlight=False)
    console.print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)", markup=False)
    return 0
