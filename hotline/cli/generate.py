"""``hotline generate``: produce simulated runs (Pythia8 + fast detector simulation).

Thin glue over ``training.generate`` (production), ``training.processes`` (the
process list) and ``training.validate`` (validation plots).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import add_processes_option, load_processes
from hotline.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="simulate events (Pythia8 + fast detector simulation) into an archived run",
        description=(
            "Generate events of a physics process with Pythia8, pass them through Hotline's "
            "fast detector simulation and the single-lepton stream filter (>= 1 e or mu with "
            "pT > 23 GeV), and write them as an archived run (NanoAOD-style ROOT files, one per "
            "chunk, plus a run.json card saying how it was made). An interrupted job resumes "
            "where it stopped when run again with the same options. Use --list to see the "
            "processes (Standard Model mixture, signals, detector-fault variants) and "
            "--validate for plots of the key distributions."),
        epilog="examples:\n"
               "  hotline generate --list\n"
               "  hotline generate sm_mix --events 20000 --seed 1 --out data/mc/run_000200\n"
               "  hotline generate sm_mix --data-like --events 20000 --seed 2 "
               "--out data/mc/run_000230\n"
               "  hotline generate w_lnu z_ll --events 5000 --seed 7 --out data/mc --jobs 2\n"
               "  hotline generate --validate --events 1000 --plots validation/\n"
               "  hotline generate --processes defs.toml --list   (processes defined in TOML, "
               "see docs/examples/processes/)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("process", nargs="*", metavar="PROCESS",
                   help="process name(s), see --list; with several, --out is an archive folder "
                        "and runs are numbered from --first-run")
    p.add_argument("--list", action="store_true", help="list the processes and exit")
    p.add_argument("--events", type=int, default=1000,
                   help="events passing the filter per process (default: 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="ARCHIVE/run_XXXXXX for one process, or an ARCHIVE folder for several")
    p.add_argument("--first-run", type=int, default=200,
                   help="run number of the first process when --out is an archive (default 200)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes (chunks of all runs are shared among them)")
    p.add_argument("--mpi", action="store_true",
                   help="switch multi-parton interactions on (off by default: ~5x faster)")
    p.add_argument("--pileup", type=float, default=0.0, metavar="MU",
                   help="mean pileup interactions (parametric soft particles; default 0)")
    p.add_argument("--fault-size", type=float, default=None, metavar="SIZE",
                   help="strength of the detector fault of a sm_mix_<fault> process (default: "
                        "the fault's own; e.g. muon_scale: pT factor 1.3, hot_cell: mean "
                        "fake-jet pT 60 GeV); see --list for what each size means")
    p.add_argument("--data-like", nargs="?", const="auto", default="", metavar="METHOD",
                   choices=("auto", "unbiased", "accept-reject"),
                   help="write an unweighted, data-like sample: weighted components (the "
                        "pTHat-biased QCD) are drawn with the frequencies of their physical "
                        "weights, every genWeight is 1. METHOD: unbiased (generate without "
                        "the bias; the default where the process declares how: cheapest), "
                        "accept-reject (keep each passing event with probability "
                        "w / max weight); auto picks unbiased when it can. The effective "
                        "statistics are printed and recorded in run.json")
    p.add_argument("--chunk-size", type=int, default=2000,
                   help="events per file / resumable unit (default 2000)")
    p.add_argument("--events-per-lumi", type=int, default=1000,
                   help="events per lumisection (default 1000)")
    p.add_argument("--params", metavar="TOML", default=None,
                   help="fast-simulation parameters (default: detectors/fastsim_params.toml)")
    p.add_argument("--validate", action="store_true",
                   help="generate --events per process in memory and write validation plots "
                        "(lepton pT, Z mass, W mT, MET, jet multiplicity, HT) and an "
                        "efficiency / speed table")
    p.add_argument("--plots", metavar="DIR", default="validation",
                   help="folder for --validate plots (default: ./validation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_processes_option(p)
    p.set_defaults(handler=handle)


def _list(console: Console) -> int:
    from hotline.detectors.event_faults import available_event_faults, get_event_fault
    from hotline.training.processes import available_processes, get_process

    t = Table(title="Processes for 'hotline generate'")
    for c in ("name", "code", "kind", "truth type", "description", "defined in"):
        t.add_column(c, overflow="fold")
    for name in available_processes():
        pr = get_process(name)
        t.add_row(name, str(pr.code), pr.kind, pr.anomalous_type() or "-", pr.description,
                  Path(pr.source).name if pr.source else "built in")
    console.print(t)
    f = Table(title="Detector faults of the fault processes (--fault-size)")
    for c in ("fault", "code", "object type", "size means", "default", "allowed", "defined in"):
        f.add_column(c, overflow="fold")
    for name in available_event_faults():
        ef = get_event_fault(name)
        f.add_row(name, str(ef.code), ef.faulty_type, ef.size_help, f"{ef.default_size:g}",
                  ef.size_rule, Path(ef.source).name if ef.source else "built in")
    console.print(f)
    return 0


def handle(args: argparse.Namespace) -> int:
    from hotline.detectors.fastsim import FastSimParams

    console = Console(soft_wrap=True)
    if not console.is_terminal:  # a log file or a pipe: room for the tables' columns
        console.width = 160
    load_processes(args)
    if args.list:
        return _list(console)
    params = FastSimParams.from_toml(args.params) if args.params else FastSimParams.from_toml()
    if args.validate:
        from hotline.training.processes import available_processes, get_process
        from hotline.training.validate import validate

        for name in args.process:
            get_process(name)
        procs = args.process or [p for p in available_processes()
                                 if get_process(p).kind != "fault"]
        table = validate(procs, events=args.events, seed=args.seed, out=Path(args.plots),
                         params=params, mpi=args.mpi, progress=not args.no_progress)
        console.print(table)
        console.print(f"plots written to {args.plots}/")
        return 0
    if not args.process:
        raise ConfigError("name a process to generate (see 'hotline generate --list')")
    if not args.out:
        raise ConfigError("--out is required (ARCHIVE/run_XXXXXX, or an ARCHIVE for several)")
    from hotline.training.generate import GenerateRequest, generate
    from hotline.training.processes import get_process

    for name in args.process:
        get_process(name)
    out = Path(args.out)
    if len(args.process) == 1 and out.name.startswith("run_"):
        outs = [out]
    else:
        outs = [out / f"run_{args.first_run + i:06d}" for i in range(len(args.process))]
    reqs = [GenerateRequest(name, args.events, args.seed, o, chunk_size=args.chunk_size,
                            events_per_lumi=args.events_per_lumi, mpi=args.mpi,
                            pileup=args.pileup, fault_size=args.fault_size,
                            data_like=args.data_like)
            for name, o in zip(args.process, outs, strict=True)]
    extra = f" --params {shlex.quote(args.params)}" if args.params else ""
    cards = generate(reqs, jobs=args.jobs, params=params, progress=not args.no_progress,
                     command_suffix=extra)
    t = Table(title="generated runs")
    for c in ("run", "process", "component", "passed", "generated", "filter eff.",
              "pass ev/s/core", "fastsim ev/s"):
        t.add_column(c, justify="right" if c not in ("process", "component", "run") else "left")
    for folder, card in cards.items():
        for comp, s in card["speed"].items():
            t.add_row(str(folder), card["process"], comp, str(s["passed"]), str(s["generated"]),
                      f"{s['filter_efficiency']:.4f}", str(s["passing_events_per_cpu_s"]),
                      str(s["fastsim_events_per_cpu_s"]))
    console.print(t)
    console.print(effective_table(cards))
    return 0


def effective_table(cards: dict[Path, dict]) -> Table:
    """The effective statistics of generated runs (``run.json`` ``effective_statistics``)."""
    t = Table(title="effective statistics (data-like: every event weighs 1)")
    for c in ("run", "sample", "run Kish", "component", "method", "generated", "kept",
              "gen. per kept", "acceptance", "weighted input (Kish)", "Kish"):
        t.add_column(c, justify="left" if c in ("run", "sample", "component", "method")
                     else "right")
    for folder, card in cards.items():
        eff = card.get("effective_statistics") or {}
        for i, (comp, r) in enumerate((eff.get("components") or {}).items()):
            inp = (f"{r['input_events']:,} ({r['input_kish']:,.0f})"
                   if "input_events" in r else "-")
            t.add_row(folder.name if i == 0 else "", eff.get("sample", "") if i == 0 else "",
                      _num(eff.get("kish")) if i == 0 else "", comp, r["method"],
                      f"{r['generated']:,}", f"{r['kept']:,}", _num(r["generated_per_kept"], 1),
                      _num(r["acceptance"], 4), inp, _num(r["kish"]))
    return t


def _num(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"
