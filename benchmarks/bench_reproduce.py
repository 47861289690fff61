"""Benchmark: the full rebuild of a shipped model from a clone (issue 23), wall time and result.

1. ``hotline samples make --model MODEL:VERSION``: every run the model card records, made from
   the sample recipe (``training/samples.toml``) into the sample archive (the user cache, or
   ``--archive``; ``--fresh`` uses an empty folder under ``benchmarks/results/`` so the
   generation is timed from nothing; runs already complete are skipped and say so);
2. ``hotline train --reproduce MODEL:VERSION``: retrain from the card with the card's seed plus
   ``--seed-spread`` other seeds, calibrate, and compare with the shipped model: score
   agreement on its test split, thresholds against their bootstrap uncertainty, AUCs against
   the seed spread.

Prints and saves (``benchmarks/results/reproduce.json``) the wall and CPU time of each step
and the comparison. The baseline is the shipped model itself. This is a benchmark-class job
(about an hour on one core of the 2-core development machine), never part of the test run.

With ``--fresh``, each rebuilt run is also compared, event by event and branch by branch, with
the same run in the user's sample cache when that holds it (``training.recipe.same_events``):
the recipe is only reproducible if the generator gives the same events. ``--only RUN ...``
rebuilds just those runs fresh and compares them (no training), a quick determinism check.

``python -m benchmarks.bench_reproduce [--model ae_default:5] [--fresh] [--only RUN ...]``
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import RESULTS, header, save


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from hotline.models.registry import load_model
    from hotline.stream.samples import SAMPLES_DIR
    from hotline.training.recipe import card_entries, load_recipe, make, same_events
    from hotline.training.reproduce import reproduce

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ae_default:5", help="MODEL:VERSION (default "
                                                            "ae_default:5)")
    ap.add_argument("--archive", default=None, help="sample archive (default: the user cache)")
    ap.add_argument("--fresh", action="store_true",
                    help="build the samples into an empty benchmarks/results/ folder")
    ap.add_argument("--jobs", type=int, default=1, help="generation worker processes")
    ap.add_argument("--seed-spread", type=int, default=2, help="extra seeds for the spread")
    ap.add_argument("--only", type=int, nargs="+", metavar="RUN",
                    help="rebuild only these runs fresh and compare them with the cache")
    args = ap.parse_args(argv)
    args.fresh = args.fresh or bool(args.only)
    name, _, version = args.model.partition(":")
    archive = (RESULTS / "reproduce_archive" if args.fresh
               else Path(args.archive).expanduser() if args.archive else SAMPLES_DIR)
    header(f"rebuild {args.model} from the sample recipe: samples make + train --reproduce")
    card = {**load_model(name, version or "latest").card, "name": name}
    entries, lacking = card_entries(card, load_recipe())
    if args.only:
        entries = [e for e in entries if e.run in set(args.only)]
    print(f"archive {archive}; {len(entries)} runs, {sum(e.events for e in entries):,} events"
          + (f"; NOT in the recipe: {lacking}" if lacking else ""))
    t0, c0 = time.perf_counter(), _cpu()
    rep = make(entries, archive, jobs=args.jobs, console=Console(), progress=True)
    make_s, make_cpu = time.perf_counter() - t0, _cpu() - c0
    print(f"samples make: built {rep.built or 'nothing'} ({rep.events:,} events), skipped "
          f"{rep.skipped or 'nothing'}, refused {[s.entry.run for s in rep.refused] or 'none'}"
          f"; {make_s:,.0f} s wall, {make_cpu:,.0f} s CPU")
    identical: dict[int, str] = {}
    if args.fresh:
        for e in entries:
            cached = SAMPLES_DIR / f"run_{e.run:06d}"
            if cached.is_dir() and (archive / cached.name).is_dir():
                same, why = same_events(archive / cached.name, cached)
                identical[e.run] = ("identical: " if same else "DIFFERENT: ") + why
                print(f"  run {e.run} rebuilt vs cache: {identical[e.run]}")
    if args.only:
        save("reproduce_samples", {"model": args.model, "archive": str(archive),
                                   "seconds": make_s, "identical": identical})
        return 0 if all(v.startswith("identical") for v in identical.values()) else 1
    t1, c1 = time.perf_counter(), _cpu()
    r = reproduce(name, version or "latest", archive=archive, seed_spread=args.seed_spread,
                  out=RESULTS / "reproduce_runs")
    train_s, train_cpu = time.perf_counter() - t1, _cpu() - c1
    sc = r["scores"]
    print(f"train --reproduce: {train_s:,.0f} s wall, {train_cpu:,.0f} s CPU; data identical: "
          f"{r['data_identical']}; scores Pearson {sc['pearson']:.4f}, Spearman "
          f"{sc['spearman']:.4f}")
    for t in r["thresholds"]:
        print(f"  threshold p={t['p']:g}: shipped {t['shipped']:.5g}, retrained "
              f"{t.get('retrained') or float('nan'):.5g}, pull {t.get('pull') or float('nan'):+.2f}"
              f" ({'within' if t['within'] else 'OUTSIDE'})")
    for a in r["aucs"]:
        print(f"  AUC {a['signal']}: shipped {a['shipped']:.4f}, retrained "
              f"{a.get('retrained') or float('nan'):.4f}, seed spread "
              f"{a.get('spread') or float('nan'):.4f} ({'within' if a['within'] else 'OUTSIDE'})")
    print(f"seed spread: {r['seed_spread']['based_on']}")
    print(f"reproduced: {r['reproduced']}; total {make_s + train_s:,.0f} s wall")
    path = save("reproduce", {"model": args.model, "archive": str(archive),
                              "samples_make": {"seconds": make_s, "cpu_seconds": make_cpu,
                                               "built": rep.built, "skipped": rep.skipped,
                                               "events": rep.events,
                                               "identical_to_cache": identical},
                              "train_reproduce": {"seconds": train_s, "cpu_seconds": train_cpu},
                              "report": r})
    print(f"saved {path}")
    return 0 if r["reproduced"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
