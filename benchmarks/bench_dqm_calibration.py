"""DQM figure: false alarms of the conv-AEs at a run's real statistics, measured vs nominal.

Clean pseudo-lumisections made from GENERATED events (not synthetic maps): events of
archived runs drawn without replacement within a pseudo-lumisection (data-like runs
uniformly, weighted runs with probability proportional to the physical weight), turned
into hits with the same hit model as a replay (``detectors.pseudo_lumis``) plus pileup 40
and noise (what ``hotline dqm replay`` assumes when the files carry no pileup), at 250,
500, 2,000 and 20,000 events per lumisection. Each shipped conv-AE scores them with the
thresholds at their own events per lumisection; the false-alarm rate per subsystem at
p = 1e-2 and 1e-3 is printed next to the nominal rate, with its binomial 68 % interval,
for the newest model and the previous one (calibrated once, on synthetic maps).

Pools: the data-like clean runs 230-233 (independent of the calibration) when they are
in the sample cache, the weighted training runs 200-202 (the calibration's own pool:
in-sample), and the bundled demo run's clean lumisections (25-32 hold the hot-cell
fault): its 32 real lumisections as replayed, and pseudo-lumisections of its clean
events. Also: the demo's hot cell (calorimeter, LS 25-32) must still be detected.

    .venv/bin/python -m benchmarks.bench_dqm_calibration [--maps 3000] [--maps-large 600]

Writes ``benchmarks/results/dqm_calibration.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import header, save

P_VALUES = (0.01, 1e-3)
LEVELS = (250, 500, 2000, 20_000)


def interval(k: int, n: int, cl: float = 0.6827) -> tuple[float, float]:
    """Clopper-Pearson interval of a binomial rate k/n."""
    from scipy.stats import beta

    a = (1 - cl) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def verdict(k: int, n: int, p: float) -> str:
    """'ok' when the measured rate is within 2x of nominal; 'ok (stat)' when only its 68 %
    interval reaches the band; else 'HIGH' / 'low'."""
    r = k / n
    if p / 2 <= r <= 2 * p:
        return "ok"
    lo, hi = interval(k, n)
    if hi >= p / 2 and lo <= 2 * p:
        return "ok (stat)"
    return "HIGH" if r > 2 * p else "low"


def row(label: str, geo: str, n_ev: int, model: str, fa: dict[float, tuple[int, int]]
        ) -> dict[str, Any]:
    out: dict[str, Any] = {"pool": label, "geometry": geo, "events_per_lumi": n_ev,
                           "model": model}
    for p, (k, n) in fa.items():
        lo, hi = interval(k, n)
        out[f"{p:g}"] = {"alerts": k, "maps": n, "rate": k / max(n, 1), "lo68": lo,
                         "hi68": hi, "nominal": p, "verdict": verdict(k, n, p) if n else "-"}
    return out


def fmt(r: dict[str, Any]) -> str:
    cells = []
    for p in P_VALUES:
        c = r[f"{p:g}"]
        if not c["maps"]:
            cells.append(f"{'not calibrated':>38}")
            continue
        cells.append(f"{100 * c['rate']:6.2f} % [{100 * c['lo68']:5.2f},{100 * c['hi68']:5.2f}]"
                     f" vs {100 * p:4.1f} % {c['verdict']:<9}")
    return (f"{r['geometry']:<13} {r['pool']:<32} {r['events_per_lumi']:>6,} "
            f"{r['model']:<24} {r['maps']:>5} | " + " | ".join(cells))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=3000,
                    help="pseudo-lumisections per pool and level up to 2,000 events (3000)")
    ap.add_argument("--maps-large", type=int, default=600,
                    help="pseudo-lumisections per pool at 20,000 events (600)")
    ap.add_argument("--registry", default=None, help="model registry (default: the shipped)")
    ap.add_argument("--archive", default=None, help="sample archive (default: the cache)")
    ap.add_argument("--no-previous", action="store_true",
                    help="do not score with the previous model versions")
    args = ap.parse_args(argv)

    from hotline.config import DEFAULT_ARCHIVE
    from hotline.detectors.geometry import get_geometry
    from hotline.detectors.occupancy import HitModel, LumiSet, OccupancyMap, add_background
    from hotline.detectors.pseudo_lumis import draw_lumis
    from hotline.models.conv_ae import ConvAEScorer
    from hotline.models.registry import available_models
    from hotline.stream.archive import find_run
    from hotline.stream.samples import SAMPLES_DIR
    from hotline.training.dqm import event_pool, false_alarms

    archive = Path(args.archive or SAMPLES_DIR).expanduser()
    header("DQM conv-AE false alarms at real statistics: measured vs nominal")
    t0 = time.perf_counter()

    def have(runs: list[int], where: Path) -> bool:
        try:
            return all(find_run(where, r).files for r in runs)
        except Exception:  # noqa: BLE001 - a run not (yet) in the cache is reported
            return False

    pools: list[tuple[str, list[int], Path]] = []
    if have([230, 231, 232, 233], archive):
        pools.append(("runs 230-233 (data-like)", [230, 231, 232, 233], archive))
    else:
        print(f"runs 230-233 (clean data-like) are not in {archive}: not measured "
              "(hotline samples make --only sm_mix_datalike_230 ...)")
    if have([200, 201, 202], archive):
        pools.append(("runs 200-202 (weighted, in-sample)", [200, 201, 202], archive))
    demo_archive = Path(str(DEFAULT_ARCHIVE))
    print(f"sizes: {args.maps} pseudo-lumisections per pool and level <= 2,000 events, "
          f"{args.maps_large} at 20,000; pileup 40 (replay default), events drawn without "
          "replacement within a pseudo-lumisection")

    rows: list[dict[str, Any]] = []
    detection: dict[str, Any] = {}
    print(f"\n{'subsystem':<13} {'pool':<32} {'ev/LS':>6} {'model':<24} {'maps':>5} | "
          + " | ".join(f"{'false alarms at p = ' + format(p, 'g'):<38}" for p in P_VALUES))
    for gname in ("muon_barrel", "calo_regions"):
        geo = get_geometry(gname)
        name = f"conv_{gname}"
        versions = [m["version"] for m in available_models(args.registry) if m["name"] == name]
        scorers = {f"{name} v{versions[-1]}": ConvAEScorer.from_registry(
            name, versions[-1], args.registry)}
        if len(versions) > 1 and not args.no_previous:
            scorers[f"{name} v{versions[-2]} (prev.)"] = ConvAEScorer.from_registry(
                name, versions[-2], args.registry)
        # 1. pseudo-lumisections of generated events
        for label, runs, where in [*pools, ("demo run 1 clean events", [1], demo_archive)]:
            pool = event_pool(runs, where, geo)
            for i, n_ev in enumerate(LEVELS):
                if n_ev > len(pool.hits) // 2:
                    continue
                m = args.maps if n_ev <= 2000 else args.maps_large
                maps = draw_lumis(pool.hits, n_ev, m, seed=77 + i, pileup=40.0,
                                  run=runs[0])
                for mname, sc in scorers.items():
                    r = row(label, gname, n_ev, mname, false_alarms(sc, maps, P_VALUES))
                    r["maps"] = m
                    rows.append(r)
                    print(fmt(r), flush=True)
        # 2. the demo run's real lumisections, as `hotline dqm replay 1` builds them
        full = event_pool([1], demo_archive, geo, clean_only=False)
        lumis = np.unique(full.lumis)
        counts, n_per, clean = [], [], []
        for ls in lumis:
            rows_ls = np.flatnonzero(full.lumis == ls)
            om = OccupancyMap(gname, 1, int(ls),
                              np.asarray(full.hits.matrix[rows_ls].sum(axis=0)).reshape(
                                  geo.shape), len(rows_ls), pileup=HitModel().pileup)
            om = add_background(om, geo, HitModel())
            counts.append(om.counts)
            n_per.append(om.n_events)
            clean.append(not 25 <= ls <= 32)
        clean_a = np.array(clean)
        real = LumiSet(geo, np.array(counts), np.array(n_per), np.full(len(lumis), 40.0))
        for mname, sc in scorers.items():
            good = LumiSet(geo, real.counts[clean_a], real.n_events[clean_a],
                           real.pileup[clean_a])
            r = row("demo run 1, real LS (clean)", gname, int(np.median(n_per)), mname,
                    false_alarms(sc, good, P_VALUES))
            r["maps"] = int(clean_a.sum())
            rows.append(r)
            print(fmt(r), flush=True)
            s = sc.score(real.counts, real.n_events).total
            thr = np.array([sc.threshold(1e-3, float(v)) for v in real.n_events])
            hit = [int(ls) for ls, a in zip(lumis, s > thr) if a]
            detection[f"{gname} {mname}"] = {
                "alerts_at_1e-3": hit,
                "fault_lumis_detected": sum(25 <= ls <= 32 for ls in hit),
                "clean_lumis_alerting": [ls for ls in hit if not 25 <= ls <= 32]}
    print("\ndemo run 1 (hot cell in the calorimeter, LS 25-32), alerts at p = 1e-3:")
    for k, d in detection.items():
        print(f"  {k:<45} faulty LS detected {d['fault_lumis_detected']}/8; clean LS "
              f"alerting: {d['clean_lumis_alerting'] or 'none'}")
    out = save("dqm_calibration", {"rows": rows, "demo_detection": detection,
                                   "levels": list(LEVELS), "p_values": list(P_VALUES),
                                   "seconds": time.perf_counter() - t0})
    print(f"\nnumbers: {out}  ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
