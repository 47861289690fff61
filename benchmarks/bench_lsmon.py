"""Benchmark (skeleton): lumisection distribution monitoring, issue 17's ``bench_lsmon`` table.

Per row (a fault at a size, at an events-per-lumisection), ``--trials`` runs of simulated
events (``tests.conftest.make_events``: electrons, muons, jets, photons, MET) of
``--lumis`` lumisections, clean for the first ``--start``, faulty after; each assessed by
the run-status engine (``alerts.run_status.assess_lumis``) against a clean reference run
(``alerts.reference.reference_from_summaries``) with every quantity it tests (the
distribution checks of ``alerts.distribution_checks`` among them). Reported per row:

- detected within 3 and within 5 faulty lumisections (a non-green lumisection whose
  worst finding is a distribution finding);
- object type top-1: the first such finding names the faulty type; region reported: it
  names an eta-phi cell;
- clean rows: non-green lumisections per 1000 (the issue's limit: 1 / 1000 overall at red;
  amber is the engine's 1 / 100 "worth a look" level, both printed).

Rows: muon pT scale x1.3 and x1.1 (everywhere, and the built-in ``muon_scale`` box),
jet response x0.85 in one eta-phi quadrant, electron phi +0.2 rad in one region, a
gradual muon efficiency loss of 3 % per lumisection, clean. Not yet here (see the
issue): the generated runs of the sample cache and the demo run (real statistics per
lumisection), the efficiency loss's cumulative loss at first flag, the DQM conv-AE rows.

``python -m benchmarks.bench_lsmon [--trials 20] [--events 20000 100000] [--lumis 8]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import header, save

Fault = Callable[[Any, np.random.Generator, int], Any]


def _faults() -> dict[str, tuple[str, Fault]]:
    from hotline.detectors.event_faults import apply_fault
    from hotline.detectors.regional_faults import Box, rotate_phi, scale_pt

    def drop_muons(a: Any, rng: np.random.Generator, k: int) -> Any:
        import awkward as ak

        keep = ak.unflatten(rng.random(int(ak.sum(ak.num(a["Muon_pt"])))) > 0.03 * k,
                            ak.num(a["Muon_pt"]))
        for f in [f for f in a.fields if f.startswith("Muon_")]:
            a = ak.with_field(a, a[f][keep], f)
        return a

    quadrant = Box(0.0, 4.7, 0.0, np.pi / 2)
    region = Box(0.0, 2.5, 0.0, np.pi / 2)
    return {
        "muon pT x1.3": ("muons", lambda a, rng, k: scale_pt(a, "Muon", 1.3)),
        "muon pT x1.1": ("muons", lambda a, rng, k: scale_pt(a, "Muon", 1.1)),
        "muon_scale box x1.3": ("muons", lambda a, rng, k: apply_fault(a, "muon_scale", rng,
                                                                       1.3)),
        "jet response x0.85, one quadrant": ("jets", lambda a, rng, k: scale_pt(
            a, "Jet", 0.85, quadrant)),
        "electron phi +0.2 rad, one region": ("electrons", lambda a, rng, k: rotate_phi(
            a, "Electron", 0.2, region)),
        "muon efficiency -3 %/LS": ("muons", drop_muons),
        "clean": ("", lambda a, rng, k: a),
    }


def _summaries(arrays: Any) -> list[Any]:
    from hotline.stream.batch import EventBatch
    from hotline.stream.pipeline import PipelineContext, process_batch

    res = process_batch(EventBatch(arrays, source="bench"), PipelineContext())
    return sorted(res.summaries.values(), key=lambda s: s.lumi)


def _trial(fault: Fault, faulty_type: str, reference: Any, epl: int, lumis: int, start: int,
           seed: int) -> dict[str, Any]:
    import awkward as ak

    from hotline.alerts.run_status import assess_lumis
    from tests.conftest import make_events

    rng = np.random.default_rng(seed)
    a = make_events(epl * lumis, seed=seed, events_per_lumi=epl)
    ls = ak.to_numpy(a["luminosityBlock"])
    parts = [a[ls <= start]] + [fault(a[ls == k], rng, k - start)
                                for k in range(start + 1, lumis + 1)]
    st = assess_lumis(_summaries(ak.concatenate(parts)), reference=reference)
    first, top, where = None, "", ""
    bad = {"amber": 0, "red": 0}
    for s in st.lumis:
        if s.level in bad:
            bad[s.level] += 1
        if s.lumi <= start or s.level == "green" or first is not None:
            continue
        dist = [f for f in s.findings if f.kind == "dist" and f.level != "green"]
        if dist:
            first = s.lumi - start
            top, where = dist[0].quantity, dist[0].where
    return {"first": first, "type_ok": bool(faulty_type) and top.startswith(
        f"dist:{faulty_type}/"), "region": " in eta " in where, "amber": bad["amber"],
        "red": bad["red"], "lumis": lumis}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="runs per row (issue: 200)")
    ap.add_argument("--events", type=int, nargs="+", default=[20000, 100000],
                    help="events per lumisection")
    ap.add_argument("--lumis", type=int, default=8)
    ap.add_argument("--start", type=int, default=2, help="clean lumisections first")
    ap.add_argument("--only", nargs="*", default=None, help="rows whose name contains these")
    args = ap.parse_args(argv)
    from hotline.alerts.reference import reference_from_summaries
    from tests.conftest import make_events

    header("bench_lsmon: lumisection distribution monitoring")
    rows: list[dict[str, Any]] = []
    for epl in args.events:
        reference = reference_from_summaries(_summaries(make_events(epl * 20, seed=1,
                                                                    events_per_lumi=epl)))
        for name, (typ, fault) in _faults().items():
            if args.only and not any(o in name for o in args.only):
                continue
            t0 = time.perf_counter()
            res = [_trial(fault, typ, reference, epl, args.lumis, args.start, 1000 + i)
                   for i in range(args.trials)]
            firsts = [r["first"] for r in res]
            row = {"fault": name, "events_per_lumi": epl, "trials": args.trials,
                   "within_3": float(np.mean([f is not None and f <= 3 for f in firsts])),
                   "within_5": float(np.mean([f is not None and f <= 5 for f in firsts])),
                   "type_top1": float(np.mean([r["type_ok"] for r in res if r["first"]]
                                              or [0.0])),
                   "region": float(np.mean([r["region"] for r in res if r["first"]] or [0.0])),
                   "seconds": time.perf_counter() - t0}
            if name == "clean":
                n = sum(r["lumis"] for r in res)
                row["amber_per_1000"] = 1000 * sum(r["amber"] for r in res) / n
                row["red_per_1000"] = 1000 * sum(r["red"] for r in res) / n
            rows.append(row)
            print(f"{epl:>7} ev/LS  {name:<36} " + (
                f"amber {row['amber_per_1000']:.1f}/1000 red {row['red_per_1000']:.1f}/1000"
                if name == "clean" else
                f"<=3 LS {row['within_3']:.0%}  <=5 LS {row['within_5']:.0%}  type "
                f"{row['type_top1']:.0%}  region {row['region']:.0%}")
                + f"  ({row['seconds']:.0f} s)", flush=True)
    save("lsmon", {"rows": rows, "args": vars(args)})


if __name__ == "__main__":
    main()
