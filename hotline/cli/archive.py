"""``hotline archive import``: re-pack NanoAOD files into an archive run folder."""

from __future__ import annotations

import argparse

from hotline.cli.common import config_from
from hotline.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("archive", help="manage the run archive (import files as a run)")
    asub = p.add_subparsers(dest="archive_command", metavar="ACTION")
    imp = asub.add_parser(
        "import",
        help="copy the branches Hotline reads from NanoAOD files into archive run RUN",
        description="Read the object and id branches of NanoAOD files and write them as "
        "archive run RUN (run_<RUN>/nano_XXXX.root, one or more files per input, each with "
        "the collections its input has). Every event gets run number RUN (the output says "
        "how many were relabelled); with --events-per-lumi the events also get new "
        "consecutive lumisection and event numbers, otherwise they keep theirs. Inputs are "
        "checked before anything is written: an unreadable file, a file without known "
        "physics collections, events given twice, or relabelling that would merge events "
        "of different runs is refused. An existing run is replaced only with --force.",
    )
    imp.add_argument("run", type=int)
    imp.add_argument("files", nargs="+")
    imp.add_argument("--archive", metavar="DIR")
    imp.add_argument("--tree", default=None, help="TTree name (default Events)")
    imp.add_argument("--events-per-lumi", type=int, default=None)
    imp.add_argument("--force", action="store_true",
                     help="replace run RUN if the archive has it (its old files are removed)")
    imp.add_argument("--description", default="", help="how the run was made (kept in run.json)")
    imp.set_defaults(handler=handle_import)


def import_branches(cfg: Config) -> list[str]:
    """What an import copies: the branches of the configured rule menu and the default
    feature spec, plus the collections the DQM geometries read."""
    from hotline.alerts.menu import load_menu
    from hotline.detectors.geometry import available_geometries, get_geometry
    from hotline.stream.pipeline import PipelineContext

    out = PipelineContext(rules=load_menu(cfg.alerts.rules)).branches()
    out += [f"{c}_pt" for g in available_geometries() for c in get_geometry(g).collections]
    out.append("Photon_pt")
    return list(dict.fromkeys(out))


def handle_import(args: argparse.Namespace) -> int:
    from hotline.stream.archive_writer import import_run

    cfg = config_from(args, source={"archive": args.archive, "tree": args.tree})
    rep = import_run(cfg.source.archive, args.run, args.files, import_branches(cfg),
                     tree=cfg.source.tree, events_per_lumi=args.events_per_lumi,
                     force=args.force, description=args.description)
    if rep.replaced:
        print(f"replaced run {rep.run}: removed its {len(rep.replaced)} old file(s)")
    if args.events_per_lumi:
        print(f"gave {rep.events:,} events new ids: run {rep.run}, {args.events_per_lumi:,} "
              "events per lumisection")
    elif rep.relabelled:
        runs = ", ".join(str(r) for r in rep.from_runs)
        print(f"relabelled {rep.relabelled:,} events from run(s) {runs} to {rep.run}")
    collections = {c for i in rep.inputs for c in i.collections}
    for i in rep.inputs:
        lacks = sorted(collections - set(i.collections))
        if lacks:
            print(f"note: {i.path.name} has no {', '.join(lacks)}; its events have none "
                  "(rules reading them are unavailable there)")
    print(f"wrote {rep.events:,} events from {len(rep.inputs)} file(s) to {rep.folder} "
          f"({len(rep.files)} file(s))")
    return 0
