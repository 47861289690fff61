"""The demo run shipped in ``data/archive/``: how it is made, and a command to remake it.

``python -m hotline.training.demo_run [--archive data/archive] [--work DIR] [--jobs 2]``

Recipe (all seeds fixed, so the result is reproducible with the same versions):

1. generate with ``training.generate`` (resumable, in ``--work``), **data-like**
   (``data_like="auto"``: the QCD component is generated without its pTHat bias, so the
   events occur with the frequencies of their physical weights and every ``genWeight`` is
   1, as in real data; a replay applies no weight and each AE threshold fires at its
   calibrated p-value): ``sm_mix`` (seed 1001), ``sm_mix_<fault>`` (seed 1002) and each
   signal ``a_4l``, ``lq_btau``, ``h0_tautau``, ``hplus_taunu`` (seeds 1010..1013);
2. assemble run ``RUN`` (1): ``LUMIS`` lumisections of ``EVENTS_PER_LUMI`` events;
   lumisections ``FAULT_LUMIS`` are taken from the fault sample (the detector is
   faulty during that period), the others from ``sm_mix``; ``SIGNAL_EVENTS``
   events of each signal replace background events at random positions outside
   the fault period;
3. write the files NanoAOD-style with floats rounded to ``MANTISSA_BITS``
   mantissa bits (as NanoAOD does) and LZMA compression, to stay below 5 MB,
   with a ``run.json`` card recording all of the above, including the effective
   statistics of each ingredient (events generated per event kept, acceptance).

Cost: data-like QCD passes the single-lepton filter in ~0.2 % of generated events
(~500 generated, ~0.4 CPU s, per kept event), so the run takes ~45 CPU minutes, against
~5 for the weighted ingredients it replaces (``--jobs 2`` halves the wall time).

The ``sample`` branch says which process each event is (code -> name in the card)
and ``fault`` which detector fault was active (0 = none).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np

from hotline.stream.archive import run_dir_name

log = logging.getLogger(__name__)

#: run number 1: ``hotline replay 1``, the docker-compose replay profile and the broker tests
#: replay run 1 of the bundled archive
RUN = 1
LUMIS = 40
EVENTS_PER_LUMI = 500
FAULT = "hot_cell"
FAULT_LUMIS = (25, 32)  #: inclusive range of lumisections with the detector fault
SIGNALS = ("a_4l", "lq_btau", "h0_tautau", "hplus_taunu")
SIGNAL_EVENTS = 25
SEEDS = {"sm_mix": 1001, f"sm_mix_{FAULT}": 1002,
         **{s: 1010 + i for i, s in enumerate(SIGNALS)}}
MANTISSA_BITS = 12
ASSEMBLY_SEED = 1100


def _plan() -> dict[str, int]:
    n_fault = (FAULT_LUMIS[1] - FAULT_LUMIS[0] + 1) * EVENTS_PER_LUMI
    return {"sm_mix": LUMIS * EVENTS_PER_LUMI - n_fault, f"sm_mix_{FAULT}": n_fault,
            **{s: SIGNAL_EVENTS for s in SIGNALS}}


def _round_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Keep ``bits`` mantissa bits of float32 values (round to nearest)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    drop = 23 - bits
    u = ((u + np.uint32(1 << (drop - 1))) >> np.uint32(drop)) << np.uint32(drop)
    return u.view(np.float32)


def _compact(arrays: ak.Array) -> ak.Array:
    out = {}
    for f in arrays.fields:
        a = arrays[f]
        if a.ndim == 1:
            np_a = ak.to_numpy(a)
            out[f] = _round_mantissa(np_a, MANTISSA_BITS) if np_a.dtype == np.float32 else np_a
        else:
            flat = ak.to_numpy(ak.flatten(a))
            if flat.dtype == np.float32:
                flat = _round_mantissa(flat, MANTISSA_BITS)
            out[f] = ak.unflatten(flat, ak.num(a))
    return ak.Array(out)


def build(archive: Path, work: Path, jobs: int = 1, progress: bool = True) -> Path:
    """Generate (or resume) the ingredients in ``work`` and write run ``RUN`` into ``archive``."""
    import uproot

    from hotline.stream.archive_writer import to_tree_dict, write_tree
    from hotline.training.generate import GenerateRequest, _ordered, generate, versions
    from hotline.training.processes import get_process, sample_codes

    plan = _plan()
    reqs = [GenerateRequest(p, n, SEEDS[p], work / f"run_{900 + i:06d}", chunk_size=2000,
                            events_per_lumi=EVENTS_PER_LUMI, data_like="auto")
            for i, (p, n) in enumerate(plan.items())]
    cards = generate(reqs, jobs=jobs, progress=progress)
    parts = {r.process: ak.concatenate([uproot.open(f)["Events"].arrays()
                                        for f in sorted(r.out.glob("nano_*.root"))])
             for r in reqs}
    rng = np.random.default_rng(ASSEMBLY_SEED)
    lumi = np.repeat(np.arange(1, LUMIS + 1), EVENTS_PER_LUMI)
    in_fault = (lumi >= FAULT_LUMIS[0]) & (lumi <= FAULT_LUMIS[1])
    bkg, bad = parts["sm_mix"], parts[f"sm_mix_{FAULT}"]
    drop = {"run", "luminosityBlock", "event"}
    fields = [f for f in bkg.fields if f not in drop]
    # slot i of the run -> (source array, index)
    src = np.where(in_fault, 1, 0)
    idx = np.zeros(len(lumi), np.int64)
    idx[~in_fault] = np.arange((~in_fault).sum())
    idx[in_fault] = np.arange(in_fault.sum())
    pools = [bkg[fields], bad[fields]]
    normal_slots = np.flatnonzero(~in_fault)
    chosen = rng.choice(normal_slots, size=SIGNAL_EVENTS * len(SIGNALS), replace=False)
    for k, sig in enumerate(SIGNALS):
        slots = chosen[k * SIGNAL_EVENTS:(k + 1) * SIGNAL_EVENTS]
        src[slots] = 2 + k
        idx[slots] = np.arange(SIGNAL_EVENTS)
        pools.append(parts[sig][fields])
    pieces = [pools[s][idx[src == s]] for s in range(len(pools))]
    order = np.argsort(np.concatenate([np.flatnonzero(src == s) for s in range(len(pools))]),
                       kind="stable")
    events = ak.concatenate(pieces)[order]
    n = len(events)
    events = ak.with_field(events, np.full(n, RUN, np.uint32), "run")
    events = ak.with_field(events, lumi.astype(np.uint32), "luminosityBlock")
    events = ak.with_field(events, np.arange(1, n + 1, dtype=np.uint64), "event")
    events = _compact(_ordered(events))

    folder = archive / run_dir_name(RUN)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    per_file = n // 2
    for k, start in enumerate(range(0, n, per_file)):
        with uproot.recreate(folder / f"nano_{k:04d}.root", compression=uproot.LZMA(9)) as f:
            write_tree(f, "Events", to_tree_dict(events[start:start + per_file]))
    codes = sample_codes()
    used = sorted(set(np.unique(ak.to_numpy(events.sample)).tolist()))
    card = {
        "description": (f"generated demo run: ADC2021 single-lepton stream SM mixture, "
                        f"{SIGNAL_EVENTS} events of each of {', '.join(SIGNALS)} mixed in, "
                        f"detector fault '{FAULT}' in lumisections {FAULT_LUMIS[0]}-"
                        f"{FAULT_LUMIS[1]}"),
        "run": RUN, "events": n, "lumisections": LUMIS, "events_per_lumi": EVENTS_PER_LUMI,
        "fault": {"name": FAULT, "lumisections": list(FAULT_LUMIS),
                  "description": get_process(f"sm_mix_{FAULT}").description},
        "signals": {s: SIGNAL_EVENTS for s in SIGNALS},
        "sample_codes": {str(c): codes[c] for c in used},
        "fault_codes": {"0": "none", str(int(np.max(ak.to_numpy(events.fault)))): FAULT},
        "sample": "data-like",
        "effective_statistics": {
            "events": n, "kish": float(n),
            "note": "every event weighs 1 (data-like): the run is worth its event count",
            "ingredients": {p: c["effective_statistics"]
                            for p, c in zip(plan, cards.values(), strict=True)}},
        "ingredients": {p: {"events": c["events"], "seed": c["seed"], "mpi": c["mpi"],
                            "chunk_size": c["chunk_size"], "settings_hash": c["settings_hash"],
                            "data_like": c.get("data_like"),
                            "cpu_seconds": c.get("cpu_seconds"),
                            "unweighting": c.get("unweighting", {}),
                            "filter_efficiency": c["filter_efficiency"],
                            "pythia_settings": c["pythia_settings"],
                            "component_settings": c["component_settings"],
                            "regenerate": c["regenerate"]}
                        for p, c in zip(plan, cards.values(), strict=True)},
        "assembly_seed": ASSEMBLY_SEED,
        "float_precision": f"float32 rounded to {MANTISSA_BITS} mantissa bits, LZMA(9)",
        "versions": versions(),
        "fastsim": "detectors/fastsim_params.toml defaults (FastSimParams()), no pileup",
        "mpi": False,
        "command": "python -m hotline.training.demo_run --archive data/archive --jobs 2",
        "recipe": "see the docstring of training/demo_run.py",
        "caveats": ("data-like: qcd events (sample 2) are generated without the pTHat bias of "
                    "the training runs (PhaseSpace:bias2Selection = off), so every genWeight "
                    "is 1 and the SM components keep the ADC2021 fractions by event count, "
                    "as the models' physical weights define them; QCD is still heavy-flavour "
                    "only with pTHat > 20 GeV (no light-flavour fakes); the "
                    f"{SIGNAL_EVENTS * len(SIGNALS)} signal events sit in clean "
                    "lumisections (they are anomalies, not background); MPI off, no pileup"),
    }
    (folder / "run.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate the Hotline demo run (run 1).")
    p.add_argument("--archive", default="data/archive", help="archive to write run_000001 into")
    p.add_argument("--work", default=str(Path.home() / ".cache/hotline/demo-work-datalike"),
                   help="folder for the generated ingredients (resumable)")
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    folder = build(Path(args.archive), Path(args.work), jobs=args.jobs)
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"wrote {folder} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
