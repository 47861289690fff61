"""``hotline samples make`` and ``hotline samples list``: the sample recipe and the cache.

Thin glue over ``training.recipe``: ``list`` compares the recipe (``training/samples.toml``
or ``--recipe``) with the sample archive (the user cache, or ``--archive``); ``make``
builds the missing and partial runs (resumable), skips complete ones and reports runs made
with other parameters without touching them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hotline.cli.common import add_processes_option
from hotline.errors import ConfigError

_STYLE = {"complete": "green", "partial": "yellow", "missing": "red", "differs": "magenta"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "samples",
        help="the sample recipe: list what the sample cache holds, make what is missing",
        description=(
            "The generated samples every training, calibration, evaluation, attribution and "
            "firmware configuration reads are described by the sample recipe "
            "(training/samples.toml: process, events, seed, chunking, fault and weighting of "
            "each run). 'list' compares it with the sample cache; 'make' builds the missing "
            "runs with Pythia8 + the fast simulation (needs the 'sim' extra)."),
        epilog="examples:\n"
               "  hotline samples list\n"
               "  hotline samples make --only default          # what default.toml reads\n"
               "  hotline samples make --model ae_default:5    # what a model card records\n"
               "  hotline samples make --only sm_mix_203 --jobs 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = p.add_subparsers(dest="samples_command", metavar="ACTION")
    for name, helptext in (("list", "show which recipe runs are complete, partial, missing or "
                                    "different in the archive"),
                           ("make", "build the missing runs (resumable; complete runs are "
                                    "skipped, different ones reported)")):
        a = ssub.add_parser(name, help=helptext, description=helptext)
        a.add_argument("--recipe", metavar="TOML", default=None,
                       help="sample recipe (default: the shipped training/samples.toml)")
        a.add_argument("--archive", metavar="DIR", default=None,
                       help="sample archive (default: the user cache, "
                            "~/.cache/hotline/samples/archive)")
        a.add_argument("--only", nargs="+", default=[], metavar="NAME",
                       help="runs by name, run number, process or configuration "
                            "(e.g. sm_mix_200, 203, a_4l, default)")
        a.add_argument("--model", metavar="MODEL[:VERSION]", default=None,
                       help="the runs a registered model's card records")
        a.add_argument("--registry", metavar="DIR", default=None,
                       help="model registry folder (for --model)")
        add_processes_option(a)
        if name == "make":
            a.add_argument("--jobs", type=int, default=1,
                           help="worker processes (chunks of all runs are shared; default 1)")
            a.add_argument("--no-progress", action="store_true", help="no progress display")
        a.set_defaults(handler=handle_make if name == "make" else handle_list)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _archive(args: argparse.Namespace) -> Path:
    from hotline.stream.samples import SAMPLES_DIR

    return Path(args.archive).expanduser() if args.archive else SAMPLES_DIR


def _selection(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from hotline.cli.common import load_processes
    from hotline.training.recipe import card_entries, load_recipe

    load_processes(args)  # the recipe may name processes defined in TOML
    recipe = load_recipe(args.recipe)
    entries = recipe.select(args.only)
    if args.model:
        from hotline.cli.common import config_from, parse_model_ref
        from hotline.models.registry import load_model

        name, version = parse_model_ref(args.model)
        reg = config_from(args, model={"registry": args.registry}).model.registry
        card = load_model(name, version, reg).card
        from_card, lacking = card_entries(card, recipe)
        if lacking:
            raise ConfigError(f"model {args.model}: runs {lacking} of its card are not in the "
                              f"recipe {recipe.source}")
        if not from_card:
            raise ConfigError(f"model {args.model} records no generated runs (source: "
                              f"{(card.get('training') or {}).get('source')})")
        wanted = {e.run for e in from_card}
        entries = [e for e in entries if e.run in wanted] if args.only else from_card
    return recipe, entries


def _console() -> Console:
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # a log file or a pipe: room for the table's columns
        console.width = 160
    return console


def handle_list(args: argparse.Namespace) -> int:
    from hotline.training.recipe import statuses, unlisted_runs

    recipe, entries = _selection(args)
    archive = _archive(args)
    console = _console()
    t = Table(title=f"sample recipe {recipe.source} (hash {recipe.hash()}) vs {archive}")
    for c in ("run", "name", "process", "events", "seed", "chunk", "sample", "state", "detail",
              "used by"):
        t.add_column(c, justify="right" if c in ("run", "events", "seed", "chunk") else "left",
                     overflow="fold")
    counts: dict[str, int] = {}
    for st in statuses(entries, archive):
        e = st.entry
        counts[st.state] = counts.get(st.state, 0) + 1
        t.add_row(str(e.run), e.name, e.process, f"{e.events:,}", str(e.seed),
                  str(e.chunk_size), e.sample + ("" if e.fault == "none" else f", {e.fault}"),
                  f"[{_STYLE[st.state]}]{st.state}[/]", st.detail, ", ".join(e.used_by))
    console.print(t)
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    extra = unlisted_runs(recipe, archive)
    if extra:
        console.print(f"not in the recipe: runs {', '.join(map(str, extra))}")
    if counts.get("missing") or counts.get("partial"):
        console.print("build the missing runs: hotline samples make"
                      + (f" --only {' '.join(args.only)}" if args.only else "")
                      + (f" --model {args.model}" if args.model else "")
                      + (f" --archive {archive}" if args.archive else ""))
    return 0


def handle_make(args: argparse.Namespace) -> int:
    from hotline.extras import missing_for_command
    from hotline.training.recipe import make

    needs = missing_for_command("generate")
    if needs is not None:
        raise ConfigError(needs)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    recipe, entries = _selection(args)
    archive = _archive(args)
    console = _console()
    total = sum(e.events for e in entries)
    console.print(f"sample recipe {recipe.source} (hash {recipe.hash()}): {len(entries)} runs, "
                  f"{total:,} events -> {archive}", highlight=False)
    report = make(entries, archive, jobs=args.jobs, console=console,
                  progress=not args.no_progress)
    if report.skipped:
        console.print(f"complete already: runs {', '.join(map(str, report.skipped))}")
    if report.built:
        console.print(f"built runs {', '.join(map(str, report.built))}: {report.events:,} "
                      f"events in {report.seconds:,.0f} s", highlight=False)
    for st in report.refused:
        console.print(f"[magenta]run {st.entry.run} ({st.entry.name}) differs from the recipe, "
                      f"left as it is[/]: {st.detail}; remove {archive / st.entry.folder} to "
                      "rebuild it")
    return 1 if report.refused else 0
