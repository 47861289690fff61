"""``hotline runs``: list the runs of an archive."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from hotline.cli.common import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list the archived runs that can be replayed",
        description="List the runs of an archive folder: files, events, lumisections, size, "
        "and how each was made when its run.json card says so.",
    )
    p.add_argument("--archive", metavar="DIR", help="archive folder (env: HOTLINE_SOURCE_ARCHIVE)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from hotline.stream.archive import list_runs

    cfg = config_from(args, source={"archive": args.archive})
    runs = list_runs(cfg.source.archive, tree=cfg.source.tree)
    console = Console(soft_wrap=True)
    if not runs:
        console.print(f"no runs in {cfg.source.archive}")
        return 0
    t = Table(title=f"runs in {cfg.source.archive}")
    for col, just in (("run", "right"), ("files", "right"), ("events", "right"),
                      ("lumisections", "right"), ("size", "right"), ("made by", "left")):
        t.add_column(col, justify=just)
    for r in runs:
        ls = f"{r.first_lumi}-{r.last_lumi}" if r.first_lumi is not None else "-"
        made = r.card.get("description") or r.card.get("process") or ""
        if r.problems:
            made = f"[yellow]{len(r.problems)} unreadable file(s)[/] " + made
        t.add_row(str(r.run), str(len(r.files)), f"{r.events:,}", ls,
                  f"{r.size_bytes / 1e6:.1f} MB", made)
    console.print(t)
    for r in runs:
        for prob in r.problems:
            console.print(f"[yellow]run {r.run}:[/] {prob}")
    return 0
