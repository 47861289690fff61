"""Report: the ``ae_default`` alerts of the bundled demo run by sample, unweighted and weighted.

This report scores the demo run (``data/archive/run_000001``) with the registered model
(onnxruntime, as the AE rule does), counts the events above the threshold of each p-value
per generated sample (the ``sample`` branch) and gives the alert rate with the physical
event weights (``genWeight`` normalised per sample component,
``models.weights.component_weights``). The demo run is data-like (every genWeight is 1), so
both rates agree; on a weighted run they differ. ``bench_demo_rates`` compares the rates of
the clean lumisections with the p-values. The baseline is the p-value itself.

``python -m benchmarks.bench_demo_alerts [--model ae_default[:VERSION]] [--p 1e-4 ...]``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from benchmarks.common import header, save


def main(argv: Sequence[str] | None = None) -> int:
    import uproot

    from hotline.config import DEFAULT_ARCHIVE
    from hotline.models.registry import load_model
    from hotline.models.scorer import Scorer
    from hotline.models.weights import component_weights
    from hotline.stream.archive import find_run
    from hotline.stream.samples import features_from_runs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ae_default", help="MODEL[:VERSION]")
    ap.add_argument("--p", type=float, nargs="+", default=[1e-3, 1e-4])
    args = ap.parse_args(argv)
    name, _, version = args.model.partition(":")
    model = load_model(name, version or "latest")
    header(f"demo run 1: {name} v{model.version} alerts by sample")
    info = find_run(DEFAULT_ARCHIVE, 1)
    fm = features_from_runs([1], DEFAULT_ARCHIVE, model.feature_spec())
    sample = np.concatenate([uproot.open(f)["Events"]["sample"].array(library="np")
                             for f in info.files])
    gen_w = np.concatenate([uproot.open(f)["Events"]["genWeight"].array(library="np")
                            for f in info.files])
    if len(sample) != len(fm.x):
        raise SystemExit(f"{len(sample)} events in the files, {len(fm.x)} with features")
    weights = component_weights(sample, gen_w)
    names = {int(k): v for k, v in json.loads((info.path / "run.json").read_text())
             ["sample_codes"].items()}
    scores = Scorer(model).score_arrays(fm.x, fm.mask).total
    thresholds = {float(t["p"]): float(t["threshold"]) for t in model.card["thresholds"]}
    rows = {}
    for p in args.p:
        alert = scores > thresholds[p]
        by = {names.get(int(c), str(c)): int(n) for c, n in
              zip(*np.unique(sample[alert], return_counts=True), strict=True)}
        rate_w = float(weights[alert].sum() / weights.sum())
        rows[f"{p:g}"] = {"alerts": int(alert.sum()), "by_sample": by,
                          "rate_unweighted": float(alert.mean()), "rate_weighted": rate_w}
        print(f"p = {p:g}: {int(alert.sum())} of {len(scores):,} events alert "
              f"({', '.join(f'{k} {v}' for k, v in sorted(by.items(), key=lambda kv: -kv[1]))})"
              f"; alert rate unweighted {alert.mean():.1e}, weighted {rate_w:.1e}")
    save("demo_alerts", {"model": f"{name}:{model.version}", "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
