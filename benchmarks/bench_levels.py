"""Benchmark: what each monitoring level sees of each fault class (issue 17, item 5).

Three levels watch a run: **event alerts** (the classic menu and the anomaly model score
every event; the status engine tests their rates per lumisection: findings of kind
``ae``, ``rule`` and their rate trends), the **lumisection distributions**
(``alerts.distribution_checks``: kind ``dist``) and the **DQM occupancy maps** (the
conv-AEs: kind ``dqm``). Which one catches a fault depends on what the fault does to the
events: a fake object makes alerting events, a scale or angle error only moves
distributions, a lost region empties cells of the maps.

**Runs.** The recipe's clean data-like runs 231-233 (40 lumisections of 500 events each,
``hotline samples make --only status``), replayed exactly as ``hotline demo`` does
(classic menu, the default anomaly model, the DQM conv-AEs, embedded, one SQLite store),
with the fault applied to the events of lumisections 21-40 (``detectors.event_faults``
and the TOML fault kinds of ``detectors.fault_kinds``, as a ``[[fault]]`` table defines
them; MET kept consistent), each against the reference of the clean run 230
(``alerts.reference``) and assessed by the status engine (``alerts.run_status``). These
runs are never used to train or calibrate a model (training reads runs 200-224).

**Printed per fault and level**: the share of faulty lumisections the level flags (amber
or red), and the share of the clean lumisections 1-20 of the same runs it flags (the
level's false alarms there: nominal about 1 % for the rate quantities' amber, 1e-3 for
the distribution family and the DQM alert p-value); the clean row replays the runs
untouched.

``python -m benchmarks.bench_levels [--runs 231 232 233] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_status import has_run, replay
from benchmarks.common import RESULTS, header, save

FIRST_FAULTY = 21  #: lumisections from here on are faulty
LEVELS = ("event alerts", "distributions", "DQM maps")
QUADRANT = ((0.0, 4.7), (0.0, np.pi / 2))  #: jets: eta > 0, phi in (0, pi/2)
REGION = ((0.0, 2.5), (0.0, np.pi / 2))  #: electrons: one barrel-endcap eta-phi region
SECTOR = ((-1.2, 1.2), (0.0, np.pi / 6))  #: muons: one barrel sector (30 degrees)


def level_of_finding(f: Any) -> str | None:
    """The level a finding belongs to (None: input and quarantine counts)."""
    if f.kind == "dist":
        return "distributions"
    if f.kind == "dqm":
        return "DQM maps"
    if f.kind in ("ae", "rule", "trend"):
        return "event alerts"
    return None


Fault = Callable[[Any, np.random.Generator], Any]


def faults() -> list[tuple[str, Fault | None]]:
    """(name, fault(events, rng) -> events); the clean row has None."""
    from hotline.detectors.event_faults import get_event_fault
    from hotline.detectors.fault_kinds import region_fault

    def builtin(name: str) -> Fault:
        f = get_event_fault(name)
        return lambda a, rng: f.apply(a, rng, f.default_size)

    def kind(k: str, coll: str, size: float, box: Any = (None, None)) -> Fault:
        f = region_fault(k, coll, *box)
        size = f.check_size(size)
        return lambda a, rng: f.apply(a, rng, size)

    return [
        ("clean", None),
        ("hot calorimeter cell (fake jets, 40 % of events)", builtin("hot_cell")),
        ("dead calorimeter region (jets, electrons lost)", builtin("dead_calo")),
        ("muon sector dead (muons lost in 30 deg of barrel)", kind("lose", "Muon", 1.0,
                                                                    SECTOR)),
        ("muon pT x1.3 in one barrel region", builtin("muon_scale")),
        ("muon pT x1.1 everywhere", kind("scale_pt", "Muon", 1.1)),
        ("jet response -20 % in one quadrant", kind("scale_pt", "Jet", 0.8, QUADRANT)),
        ("electron phi +0.2 rad in one region", kind("rotate_phi", "Electron", 0.2, REGION)),
        ("electron phi +0.6 rad everywhere", builtin("electron_phi")),
    ]


def with_fault(batches: Any, fault: Fault | None, seed: int) -> Iterator[Any]:
    """``batches`` with ``fault`` applied to the events of lumisections >= FIRST_FAULTY
    (their order kept)."""
    import awkward as ak

    rng = np.random.default_rng(seed)
    for b in batches:
        bad = b.lumi >= FIRST_FAULTY
        if fault is None or not bad.any():
            yield b
            continue
        a = b.arrays
        idx = np.concatenate([np.flatnonzero(~bad), np.flatnonzero(bad)])
        merged = ak.concatenate([a[~bad], fault(a[bad], rng)])
        yield dataclasses.replace(b, arrays=merged[np.argsort(idx, kind="stable")])


def object_branches(path: Any) -> list[str]:
    """The object and MET branches of a file (what the faults read and rewrite)."""
    import uproot

    with uproot.open(path) as f:
        tree = f["Events"]
        return [k for k in tree.keys()
                if k.split("_")[0] in ("Jet", "Electron", "Muon", "Photon", "MET")]


def run_row(store: Any, name: str, fault: Fault | None, runs: Sequence[tuple[int, list]],
            reference: Any, source: str) -> dict[str, Any]:
    """Replay ``runs`` with ``fault``; per level the faulty and clean lumisections flagged."""
    from hotline.alerts.run_status import assess_run

    flagged = {lv: {"faulty": 0, "clean": 0} for lv in LEVELS}
    n_faulty = n_clean = 0
    events = 0
    for run, files in runs:
        events += replay(store, files, source, dqm=True,
                         wrap=lambda src, r=run: with_fault(src, fault, seed=r),
                         extra_branches=object_branches(files[0]))[0]
        st = assess_run(store, run, source=source, reference=reference)
        for ls in st.lumis:
            part = "faulty" if ls.lumi >= FIRST_FAULTY and fault is not None else "clean"
            if part == "faulty":
                n_faulty += 1
            else:
                n_clean += 1
            for lv in {level_of_finding(f) for f in ls.findings if f.level != "green"}:
                if lv is not None:
                    flagged[lv][part] += 1
    return {"fault": name, "events": events, "faulty_lumis": n_faulty,
            "clean_lumis": n_clean, "flagged": flagged}


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from hotline.alerts.backends import open_store
    from hotline.alerts.reference import compute_reference
    from hotline.stream.archive import find_run
    from hotline.stream.samples import SAMPLES_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", default=str(SAMPLES_DIR), help="sample archive")
    ap.add_argument("--reference", type=int, default=230)
    ap.add_argument("--runs", type=int, nargs="+", default=[231, 232, 233])
    ap.add_argument("--only", nargs="*", default=None, help="rows whose name contains these")
    args = ap.parse_args(argv)
    header("bench_levels: what each level sees of each fault class (issue 17)")
    archive = Path(args.archive).expanduser()
    missing = [r for r in [args.reference, *args.runs] if not has_run(archive, r)]
    if args.reference in missing or len(missing) == len(args.runs) + 1:
        print(f"runs {missing} not in {archive}: hotline samples make --only status")
        return 1
    runs = [(r, find_run(archive, r).files) for r in args.runs if r not in missing]
    if missing:
        print(f"runs {missing} not in {archive} (hotline samples make --only status): left out")
    RESULTS.mkdir(parents=True, exist_ok=True)
    db = RESULTS / "levels.db"
    for old in (db, db.with_name("levels.db-wal"), db.with_name("levels.db-shm")):
        old.unlink(missing_ok=True)
    t0 = time.perf_counter()
    rows = [r for r in faults() if not args.only or r[0] == "clean"
            or any(o in r[0] for o in args.only)]
    out = []
    with open_store(f"sqlite:///{db}") as store:
        replay(store, find_run(archive, args.reference).files, "ref", dqm=True)
        reference = compute_reference(store, args.reference, "ref",
                                      comment=f"recipe run {args.reference} (bench_levels)")
        print(f"reference: run {args.reference}, {reference.n_lumis} LS; runs "
              f"{[r for r, _ in runs]}, faulty LS {FIRST_FAULTY}-40")
        for k, (name, fault) in enumerate(rows):
            res = run_row(store, name, fault, runs, reference, source=f"lv{k}")
            out.append(res)
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    console = Console(soft_wrap=True)
    tab = Table(title="lumisections flagged per level: faulty (LS 21-40) | clean (LS 1-20) "
                      f"of runs {[r for r, _ in runs]}")
    tab.add_column("fault")
    for lv in LEVELS:
        tab.add_column(lv, justify="right")
    for r in out:
        cells = []
        for lv in LEVELS:
            f, c = r["flagged"][lv]["faulty"], r["flagged"][lv]["clean"]
            fa = f"{c}/{r['clean_lumis']}"
            cells.append(f"{fa} clean" if not r["faulty_lumis"] else
                         f"{100 * f / r['faulty_lumis']:.0f} % | {fa}")
        tab.add_row(r["fault"], *cells)
    console.print(tab)
    secs = time.perf_counter() - t0
    print(f"{secs:.0f} s")
    print(f"saved {save('levels', {'rows': out, 'runs': [r for r, _ in runs], 'seconds': secs})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
