"""Firmware in the loop: L1 emulation throughput in the stream and agreement per menu seed.

    .venv/bin/python -m benchmarks.bench_fwloop [--build DIR] [--events 5000] [--run 231]

1. builds ``ae_default`` with the reviewed configuration (or opens ``--build``, a
   ``hotline firmware build`` folder) and times ``models.l1_emulator.L1Emulator.scores`` on
   one core (events/s, the fraction of a 100 kHz feed it follows), and the batch core
   without the emulation, hence the sampled fraction ``[firmware] emulate_fraction`` a
   one-core worker can afford at 1, 10 and 100 kHz input;
2. replays the bundled demo run and a generated run of the sample cache that no model was
   trained on (``--run``, default 231: clean data-like sm_mix; skipped when absent) through
   the batch core with every event emulated, and prints the agreement at each menu seed
   (VLoose..VTight), the score correlation and the largest differences.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import header, save


def _build(out: Path) -> Path:
    from hotline.firmware.build import build, resolve_model
    from hotline.firmware.convert import load_build_config

    cfg = load_build_config(model="ae_default")
    src = resolve_model("ae_default", cfg)
    res = build(src, cfg, out / "ae_default")
    print(f"built ae_default v{src.version}: {res.report.n_events} events, worst agreement "
          f"{res.report.worst_agreement:.4%}; {src.validation.get('source')}")
    return out / "ae_default"


def _replay(files: list[Path], build: Path, fraction: float, seed: str = "Nominal"):
    from hotline.alerts.backends import open_store
    from hotline.config import load_config
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    firmware = {"emulate": str(build), "emulate_fraction": fraction, "emulate_seed": seed}
    cfg = load_config(None, {"model": {"name": "none"}, "firmware": firmware} if fraction
                      else {"model": {"name": "ae_default"}})
    ctx = PipelineContext.from_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "a.db"))
        t0 = time.perf_counter()
        rep = run_embedded(ReplaySource(files=files, branches=ctx.branches()), ctx, store)
        dt = time.perf_counter() - t0
        sums = store.summaries()
        alarms = list(store.iter_alerts(kind="dqm"))
    agg = None
    literal = 0  # lumisections a literal "agreement < min_agreement" would have alarmed on
    for s in sums:
        if s.l1 is not None:
            agg = s.l1 if agg is None else agg + s.l1
            literal += s.l1.worst[1] < cfg.firmware.min_agreement
    return rep.events, dt, agg, alarms, len(sums), literal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=None, help="a firmware build folder (default: build)")
    ap.add_argument("--events", type=int, default=5000, help="events timed in the emulation")
    ap.add_argument("--run", type=int, default=231, help="generated run of the sample cache")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    header("firmware in the loop: L1 emulation beside serving")
    from hotline.config import package_path
    from hotline.firmware.validation_set import validation_set
    from hotline.models.l1_emulator import L1Emulator
    from hotline.models.registry import load_model
    from hotline.stream.samples import SAMPLES_DIR

    work = Path(tempfile.mkdtemp(prefix="bench_fwloop_"))
    build = Path(args.build) if args.build else _build(work)
    emu = L1Emulator.open(build)
    vs = validation_set(load_model(emu.menu.model, emu.menu.version), args.events, 0)
    x, m = vs.background
    emu.scores(x[:200], m[:200])  # warm-up
    t0 = time.perf_counter()
    emu.scores(x, m)
    rate = len(x) / (time.perf_counter() - t0)
    print(f"emulation {emu.name}: {rate:,.0f} events/s on one core = {rate / 1e5:.2%} of a "
          "100 kHz feed")
    demo = sorted(Path(package_path("hotline.data", "archive")).glob("run_000001/*.root"))
    n_base, dt_base, *_ = _replay(demo, build, 0.0)
    base = n_base / dt_base
    per_event = 1 / base
    print(f"batch core without emulation (ae_default AE rule): {base:,.0f} events/s")
    sampling = {}
    for khz in (1, 10, 100):
        budget = 1 / (khz * 1e3) - per_event
        f = max(0.0, min(1.0, budget * rate))
        sampling[f"{khz}kHz"] = f
        print(f"  one-core worker at {khz:>3} kHz input: emulate_fraction <= {f:.4f}")
    results: dict[str, object] = {"emulation_events_per_s": rate,
                                  "fraction_of_100kHz": rate / 1e5,
                                  "batch_core_events_per_s": base, "max_fraction": sampling,
                                  "build": emu.menu.build, "model": emu.menu.model,
                                  "version": emu.menu.version}
    runs = {"demo run 1 (bundled)": demo}
    gen = sorted((Path(SAMPLES_DIR) / f"run_{args.run:06d}").glob("*.root"))
    if gen:
        runs[f"generated run {args.run} (sample cache)"] = gen
    else:
        print(f"generated run {args.run} not in {SAMPLES_DIR}: `hotline samples make --only "
              f"{args.run}`")
    for label, files in runs.items():
        n, dt, agg, alarms, n_lumis, literal = _replay(files, build, 1.0)
        print(f"\n{label}: {n} events in {n_lumis} lumisections, {dt:.1f} s with every event "
              f"emulated; divergence alerts {len(alarms)} (limit 0 for a good build; "
              f"{literal} lumisections below min_agreement literally, judged by the exact "
              "binomial test)")
        for line in agg.lines():
            print(line)
        results[label] = {"events": n, "lumisections": n_lumis, "seconds": dt,
                          "alarms": len(alarms), "alarm_limit": 0,
                          "lumis_literally_below_bound": literal, "agreement": {
                              s[0]: agg.agreement(s[0]) for s in agg.header.seeds},
                          "disagree": agg.disagree, "correlation": agg.correlation,
                          "top": agg.top}
    print(f"\nsaved {save('fwloop', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
