"""Firmware figure: decision agreement (firmware vs serving), smallest safe width, latency.

    .venv/bin/python -m benchmarks.bench_firmware [--model ae_default] [--events 50000]

For the default model (``ae_default`` in the shipped registry; when it is not
registered, a model of the same architecture trained here for a few seconds by
the real training driver on the synthetic sample -- the output says which):

1. the reviewed build (firmware/configs/default.yaml, ap_fixed<16,6>): decision
   agreement with onnxruntime at each calibrated threshold, conversion and
   g++ compile time, estimated latency at 40 and 240 MHz;
2. the naive baseline: hls4ml's defaults (one ap_fixed<16,6> with TRN/WRAP for
   everything, score tail included) -- agreement ratio reviewed / naive;
3. a two-stage width scan (8 compiles, to stay within ~5 minutes on 2 shared
   cores): integer bits 3, 4, 6, 8 at W = 16, then W = 8..14 at the best integer
   bits; the smallest width keeping >= 99.9 % agreement at p = 1e-4 and at every
   threshold. (``hotline firmware scan`` runs the full ap_fixed<8..18, 3..8> grid.)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.common import header, peak_rss_mb, save

P_MAIN = 1e-4


def _source(model: str, cfg, registry: str | None):
    from hotline.firmware.build import resolve_model
    from hotline.models.registry import available_models

    names = {m["name"] for m in available_models(registry)}
    if model in names:
        src = resolve_model(model, cfg, registry)
        return src, f"registered model {model} v{src.version} ({src.note})"
    from hotline.training.train import TrainConfig, run_training

    tcfg = TrainConfig.from_dict({
        "name": "fwbench",
        "data": {"source": "synthetic", "background": "sm", "n_background": 60000,
                 "n_signal": 5000, "signals": ["A4l"], "faults": []},
        "normalisation": {"scheme": "custom"},
        "training": {"epochs": 10, "batch_size": 512, "lr": 0.003, "patience": 3, "seed": 1,
                     "threads": 1},
        "calibration": {"p_values": [0.01, 1e-3, 1e-4, 1e-5]},
        "model": [{"name": model, "kind": "ae", "hidden": [32, 16], "latent": 3}],
    })
    out = Path(tempfile.mkdtemp(prefix="fwbench-"))
    res = run_training(tcfg, out=out, progress=False, plots=False)
    reg = str(Path(res["models"][model]["registry"]).parent.parent)
    return (resolve_model(model, cfg, reg),
            f"STAND-IN: '{model}' is not registered; same architecture (57-32-16-3-16-32-57 "
            "ReLU) trained here on the synthetic sample (training.train, 10 epochs)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ae_default")
    ap.add_argument("--registry", default=None)
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--signal", type=int, default=6000)
    ap.add_argument("--out", default=None, help="work folder (default: a temporary folder)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from hotline.firmware.build import build
    from hotline.firmware.convert import load_build_config
    from hotline.firmware.emulation import format_report
    from hotline.firmware.precision import format_scan, smallest_safe, width_scan

    header("firmware: hls4ml emulation vs onnxruntime, width scan, latency estimate")
    cfg = load_build_config()
    cfg = replace(cfg, validation=replace(cfg.validation, n_events=args.events,
                                          n_signal=args.signal,
                                          p_values=(0.01, 1e-3, 1e-4)))
    work = Path(args.out or tempfile.mkdtemp(prefix="fwbench-build-"))
    t0 = time.perf_counter()
    src, what = _source(args.model, cfg, args.registry)
    print(f"model: {what}")
    print(f"sample: {len(src.background[0])} held-out background + "
          f"{0 if src.signal is None else len(src.signal[0])} signal events; thresholds "
          + ", ".join(f"p={p:g}: {t:.4g}" for p, t in sorted(src.thresholds.items())))
    print(f"(model + samples ready in {time.perf_counter() - t0:.1f} s)")

    res = build(src, cfg, work / "reviewed", check=False)
    conv = res.conversion
    print(f"\nreviewed config {cfg.precision.default} (score tail {cfg.precision.score}): "
          f"convert {conv.convert_s:.2f} s + g++ compile {conv.compile_s:.1f} s = "
          f"{conv.convert_s + conv.compile_s:.1f} s (budget 60 s)")
    for line in format_report(res.report):
        print("  " + line)

    naive = replace(cfg, precision=replace(cfg.precision, input="ap_fixed<16,6>",
                                           default="ap_fixed<16,6>", accum="ap_fixed<16,6>",
                                           score="ap_fixed<16,6>"))
    nres = build(src, naive, work / "naive", check=False)
    print("\nnaive baseline (hls4ml defaults: ap_fixed<16,6> TRN/WRAP everywhere):")
    for line in format_report(nres.report):
        print("  " + line)
    a_rev, a_naive = res.report.at(P_MAIN).agreement, nres.report.at(P_MAIN).agreement
    print(f"agreement at p={P_MAIN:g}: reviewed {a_rev:.4%} vs naive {a_naive:.4%} "
          f"(disagreeing events {res.report.at(P_MAIN).disagree} vs "
          f"{nres.report.at(P_MAIN).disagree})")

    t1 = time.perf_counter()
    stage1 = width_scan(src, cfg, [16], [3, 4, 6, 8], work / "scan")
    ok1 = [p for p in stage1 if not p.error]
    best_i = max(ok1, key=lambda p: (min(p.agreement.values()), -p.integer)).integer
    stage2 = width_scan(src, cfg, [8, 10, 12, 14], [best_i], work / "scan")
    points = sorted(stage1 + stage2, key=lambda p: (p.width, p.integer))
    ps = sorted(src.thresholds, reverse=True)
    print(f"\nwidth scan ({len(points)} g++ compiles, {time.perf_counter() - t1:.0f} s); "
          f"integer bits chosen at W=16: {best_i}")
    for line in format_scan(points, ps):
        print("  " + line)
    safe = smallest_safe(points, P_MAIN, 0.999)
    print(f"smallest width with >= 99.9 % agreement at p={P_MAIN:g}: "
          f"{safe.precision if safe else 'none in the grid'}")
    all_ok = [p for p in points if not p.error and min(p.agreement.values()) >= 0.999]
    safe_all = min(all_ok, key=lambda p: (p.width, p.integer), default=None)
    print("smallest width with >= 99.9 % agreement at every threshold (p = "
          + ", ".join(f"{p:g}" for p in ps) + "): "
          + (safe_all.precision if safe_all else "none in the grid"))

    e40, e240 = res.estimates[40.0], res.estimates[240.0]
    print(f"\nESTIMATED latency (no vendor synthesis), {cfg.precision.default}, reuse 1: "
          f"{e40.latency_cycles} cycles at 40 MHz ({e40.latency_ns:.0f} ns), "
          f"{e240.latency_cycles} cycles at 240 MHz ({e240.latency_ns:.0f} ns); "
          f"{e240.multiplications} multiplications, ~{e240.dsp} DSP, ~{e240.lut} LUT")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    path = save("firmware", {
        "model": what, "n_events": res.report.n_events,
        "agreement_p1e-4_16_6": a_rev, "agreement_p1e-4_naive": a_naive,
        "report": res.report.to_dict(), "naive": nres.report.to_dict(),
        "convert_s": conv.convert_s, "compile_s": conv.compile_s,
        "smallest_safe": safe.precision if safe else None,
        "smallest_safe_all_thresholds": safe_all.precision if safe_all else None,
        "scan": [{"precision": p.precision, "agreement": p.agreement,
                  "tpr": p.tpr_firmware, "error": p.error} for p in points],
        "latency_cycles_40MHz": e40.latency_cycles, "latency_cycles_240MHz": e240.latency_cycles,
    })
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
