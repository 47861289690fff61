"""Benchmark: sample production speed, passing events per CPU second per process.

Full chain per process (Pythia8 nextBatch, generator pre-filter, fast detector
simulation with fastjet, detector fault if any, single-lepton filter, 19x3
features): passing events per CPU second of one core (``time.process_time``, so
other load on the shared machine does not count), MPI off unless stated, versus
the issue's probe numbers (Pythia 8.317, one core: W 226 / Z 118 / ttbar 121
with MPI off, W 41 with MPI on, QCD 7.5 through the lepton filter) and its targets
(>= 200 for W, Z, ttbar, >= 30 for QCD). Also the fast simulation alone
(events/s over all generated events, no pre-filter) on W and ttbar events.

``python -m benchmarks.bench_generate [--events N] [--qcd-events N] [--mpi]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import header, peak_rss_mb, save

PROBE = {"w_lnu": 226.0, "z_ll": 118.0, "ttbar": 121.0, "qcd": 7.5}
TARGET = {"w_lnu": 200.0, "z_ll": 200.0, "ttbar": 200.0, "qcd": 30.0}


def bench_process(name: str, events: int, seed: int, mpi: bool = False) -> dict[str, float]:
    from hotline.detectors.features import extract_features
    from hotline.training.generate import GenerateRequest, generate_chunk

    req = GenerateRequest(name, events, seed, Path("run_000000"), chunk_size=events, mpi=mpi)
    t0 = time.process_time()
    arrays, stats = generate_chunk(req, 0)
    extract_features(arrays)
    cpu = time.process_time() - t0
    s = stats.summary()
    comp = s[name] if name in s else next(iter(s.values()))
    return {"events": len(arrays), "cpu_s": cpu, "rate": len(arrays) / cpu,
            "eff": comp["filter_efficiency"], "eff_w": comp["filter_efficiency_weighted"],
            "generated": comp["generated"], "gen_cpu": sum(stats.cpu_gen.values()),
            "sim_cpu": sum(stats.cpu_sim.values())}


def bench_fastsim(process: str, events: int, seed: int) -> float:
    from hotline.detectors.fastsim import FastSimParams, final_state, simulate
    from hotline.training.generate import make_pythia
    from hotline.training.processes import get_process

    py = make_pythia(get_process(process), seed)
    batch = py.nextBatch(events)
    fs = final_state(batch.prt)
    params = FastSimParams.from_toml()
    simulate(fs[:50], params, np.random.default_rng(0))  # warm up (fastjet import)
    t0 = time.process_time()
    simulate(fs, params, np.random.default_rng(1))
    return len(fs) / (time.process_time() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000, help="passing events for W, Z, ttbar")
    ap.add_argument("--qcd-events", type=int, default=1000, help="passing QCD events")
    ap.add_argument("--mpi", action="store_true", help="also W with MPI on")
    args = ap.parse_args(argv)
    header("sample production: passing events per CPU second (one core)")
    print(f"sizes: {args.events} passing events (W, Z, ttbar), {args.qcd_events} (QCD), "
          "one chunk each incl. Pythia init; MPI off")
    rows = {}
    for name in ("w_lnu", "z_ll", "ttbar", "qcd"):
        n = args.qcd_events if name == "qcd" else args.events
        rows[name] = bench_process(name, n, seed=11)
    if args.mpi:
        rows["w_lnu (MPI on)"] = bench_process("w_lnu", max(args.events // 4, 100), 11, True)
    print(f"{'process':<16}{'passed':>8}{'generated':>11}{'filter eff':>12}{'CPU s':>9}"
          f"{'pass ev/s':>11}{'probe':>8}{'x probe':>9}{'target':>8}{'ok':>5}")
    for name, r in rows.items():
        key = name.split()[0]
        probe = 41.0 if "MPI on" in name else PROBE[key]
        target = TARGET.get(key, 0.0) if "MPI" not in name else 0.0
        ok = "yes" if r["rate"] >= target else "NO"
        print(f"{name:<16}{r['events']:>8}{r['generated']:>11}{r['eff']:>12.4f}"
              f"{r['cpu_s']:>9.1f}{r['rate']:>11.1f}{probe:>8.1f}{r['rate'] / probe:>9.2f}"
              f"{target:>8.0f}{ok:>5}")
    q = rows["qcd"]
    print(f"qcd: weighted (unbiased) filter efficiency {q['eff_w']:.2e}; unweighted "
          f"{q['eff']:.4f} (biased pTHat sampling, see training/processes.py)")
    mix = 1.0 / sum(f / rows[c]["rate"] for c, f in
                    (("w_lnu", 0.592), ("qcd", 0.338), ("z_ll", 0.067), ("ttbar", 0.003)))
    print(f"sm_mix (by fractions): {mix:.1f} passing events/s/core -> 200k background in "
          f"{200_000 / mix / 3600 / 2:.2f} h on 2 cores")
    fs = {p: bench_fastsim(p, 2000, 3) for p in ("w_lnu", "ttbar")}
    for p, r in fs.items():
        print(f"fast simulation alone ({p}, all events, no pre-filter): {r:,.0f} events/s")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    path = save("generate", {"rows": rows, "fastsim_events_per_s": fs, "sm_mix_rate": mix})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
