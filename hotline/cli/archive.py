"""``hotline archive import``: re-pack NanoAOD files into an archive run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from hotline.cli.common import config_from
from hotline.errors import SourceError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("archive", help="manage the run archive (import files as a run)")
    asub = p.add_subparsers(dest="archive_command", metavar="ACTION")
    imp = asub.add_parser(
        "import",
        help="copy the branches Hotline reads from NanoAOD files into archive run RUN",
        description="Read the object and id branches of NanoAOD files and write them as "
        "archive run RUN (run_<RUN>/nano_XXXX.root). With --events-per-lumi the events get new "
        "consecutive ids in run RUN; otherwise their own ids are kept.",
    )
    imp.add_argument("run", type=int)
    imp.add_argument("files", nargs="+")
    imp.add_argument("--archive", metavar="DIR")
    imp.add_argument("--events-per-lumi", type=int, default=None)
    imp.add_argument("--description", default="", help="how the run was made (kept in run.json)")
    imp.set_defaults(handler=handle_import)


def handle_import(args: argparse.Namespace) -> int:
    import awkward as ak
    import uproot

    from hotline.stream.archive_writer import relabel, write_run
    from hotline.stream.pipeline import PipelineContext

    cfg = config_from(args, source={"archive": args.archive})
    wanted = set(PipelineContext().branches()) | {"run", "luminosityBlock", "event"}
    wanted |= {f"Photon_{f}" for f in ("pt", "eta", "phi")}
    parts = []
    for f in args.files:
        try:
            with uproot.open(f) as fh:
                t = fh[cfg.source.tree]
                keys = [k for k in t.keys() if k in wanted]
                parts.append(t.arrays(keys, library="ak"))
        except (OSError, ValueError, KeyError) as exc:
            raise SourceError(f"cannot import {f}: {exc}", f) from None
    common = set.intersection(*(set(p.fields) for p in parts))
    arrays = ak.concatenate([p[sorted(common)] for p in parts])
    if args.events_per_lumi:
        arrays = relabel(arrays, args.run, args.events_per_lumi)
    card = {"description": args.description or f"imported from {len(args.files)} file(s)",
            "sources": [Path(f).name for f in args.files], "events": len(arrays)}
    folder = write_run(cfg.source.archive, args.run, arrays, card=card)
    print(f"wrote {len(arrays):,} events to {folder}")
    return 0
