"""Report: alert rates of the bundled demo run on its clean lumisections vs the expectation.

The demo run (``data/archive/run_000001``) is data-like: its events occur with the
frequencies of their physical weights (``training.demo_run``), so on the lumisections
without the detector fault each AE threshold of the registered model must fire at its
calibrated p-value. For every p-value of the model card this prints, side by side, the
observed number of events above the threshold, the expectation ``p * n``, its central 95 %
binomial band and the exact two-sided binomial p-value of the observed total; once for all
events of the clean lumisections and once without the injected signal events (``sample``
codes of the signal processes: they are meant to alert). It also replays the run through
the embedded pipeline of ``hotline demo`` (classic menu + the AE rule at ``[model]
p_value``, a throw-away SQLite store) and counts the classic-menu alerts and the events they
flag. ``--baseline DIR`` measures a second archive in the same way (e.g. the demo run
before it was made data-like: ``git archive d75f0ea data/archive | tar -x -C /tmp/old``,
then ``--baseline /tmp/old/data/archive``) for a before/after column.

``python -m benchmarks.bench_demo_rates [--model ae_default[:VERSION]] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import header, save


def binomial_test(k: int, n: int, p: float) -> tuple[float, float, float]:
    """Exact two-sided binomial p-value of ``k`` in ``n`` at rate ``p`` (twice the smaller
    tail, at most 1) and the central 95 % band of the count."""
    from scipy.stats import binom

    lower = float(binom.cdf(k, n, p))
    upper = float(binom.sf(k - 1, n, p))
    return (min(1.0, 2 * min(lower, upper)), float(binom.ppf(0.025, n, p)),
            float(binom.ppf(0.975, n, p)))


def _branches(files: Sequence[Path], names: Sequence[str]) -> dict[str, np.ndarray]:
    import uproot

    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for f in files:
        with uproot.open(f) as fh:
            for n in names:
                out[n].append(fh["Events"][n].array(library="np"))
    return {n: np.concatenate(v) for n, v in out.items()}


def ae_rates(archive: Path, run: int, model: Any) -> dict[str, Any]:
    """Observed vs expected AE alert counts on the clean lumisections of ``run``."""
    from hotline.models.scorer import Scorer
    from hotline.stream.archive import find_run
    from hotline.stream.samples import features_from_runs
    from hotline.training.processes import get_process

    info = find_run(archive, run)
    card = json.loads((info.path / "run.json").read_text())
    first, last = card["fault"]["lumisections"]
    ev = _branches(info.files, ("luminosityBlock", "sample", "genWeight"))
    fm = features_from_runs([run], archive, model.feature_spec())
    if len(fm.x) != len(ev["sample"]):
        raise SystemExit(f"{len(ev['sample'])} events in the files, {len(fm.x)} with features")
    scorer = Scorer(model)
    scores = scorer.score_arrays(fm.x, fm.mask).total
    lumi = ev["luminosityBlock"]
    clean = (lumi < first) | (lumi > last)
    names = {int(c): n for c, n in card["sample_codes"].items()}
    signal = np.isin(ev["sample"], [c for c, n in names.items()
                                    if get_process(n).kind == "signal"])
    out: dict[str, Any] = {"events": len(scores), "clean_lumisections": int(
        len(np.unique(lumi[clean]))), "fault_lumisections": [first, last],
        "genWeight_all_1": bool(np.all(ev["genWeight"] == 1)), "rows": []}
    for t in model.card["thresholds"]:
        p = float(t["p"])
        thr = scorer.threshold(p)
        above = scores > thr
        # the calibration's own uncertainty (bootstrap std of the threshold, in the card):
        # the p-values of threshold +- 1 sigma
        unc = float(t.get("uncertainty") or 0.0)
        p_band = [float(scorer.p_value(np.array([thr + unc]))[0]),
                  float(scorer.p_value(np.array([thr - unc]))[0])]
        row: dict[str, Any] = {"p": p, "p_calibration_band": p_band}
        for label, sel in (("clean", clean), ("clean_no_signal", clean & ~signal)):
            n, k = int(sel.sum()), int((above & sel).sum())
            pval, lo, hi = binomial_test(k, n, p)
            row[label] = {"n": n, "observed": k, "expected": p * n, "band95": [lo, hi],
                          "expected_calibration_band": [p_band[0] * n, p_band[1] * n],
                          "ratio": k / (p * n), "p_value": pval}
        row["fault"] = {"n": int((~clean).sum()), "observed": int((above & ~clean).sum()),
                        "expected": p * int((~clean).sum())}
        out["rows"].append(row)
    return out


def classic_counts(archive: Path, run: int, model_name: str, version: str) -> dict[str, Any]:
    """``hotline demo``'s alerts (classic menu + AE rule) of ``run``, clean lumisections."""
    from hotline.alerts.backends import open_store
    from hotline.config import load_config
    from hotline.stream.archive import find_run
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    info = find_run(archive, run)
    first, last = json.loads((info.path / "run.json").read_text())["fault"]["lumisections"]
    cfg = load_config().with_overrides({"model": {"name": model_name, "version": version}})
    ctx = PipelineContext.from_config(cfg)
    seen: list[tuple[str, str, int, int]] = []

    def collect(_batch: Any, res: Any) -> None:
        seen.extend((a.kind, a.rule, a.lumi, a.event) for a in res.alerts)

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/alerts.db")
        try:
            source = ReplaySource(files=info.files, branches=ctx.branches(), source="bench")
            report = run_embedded(source, ctx, store, on_result=collect)
        finally:
            store.close()
    clean = [(k, r, ls, e) for k, r, ls, e in seen if ls < first or ls > last]
    classic = [a for a in clean if a[0] == "classic"]
    by_rule: dict[str, int] = {}
    for _, r, _, _ in classic:
        by_rule[r] = by_rule.get(r, 0) + 1
    lumis = _branches(info.files, ("luminosityBlock",))["luminosityBlock"]
    n_clean = int(((lumis < first) | (lumis > last)).sum())
    return {"events": report.events, "alerts_all": report.alerts_seen,
            "classic_all": sum(1 for a in seen if a[0] == "classic"),
            "clean_events": n_clean, "classic_clean": len(classic),
            "classic_clean_events_flagged": len({a[3] for a in classic}),
            "classic_clean_by_rule": dict(sorted(by_rule.items(), key=lambda kv: -kv[1]))}


def _print_ae(title: str, res: dict[str, Any]) -> None:
    print(f"\n{title}: {res['clean_lumisections']} clean lumisections (fault in "
          f"{res['fault_lumisections'][0]}-{res['fault_lumisections'][1]} left out), "
          f"genWeight all 1: {res['genWeight_all_1']}")
    print("obs: events above the threshold; exp: p * n; band95: central 95 % binomial band; "
          "calib: p * n at the threshold +- its calibration uncertainty (model card)")
    print(f"{'p':>7} | {'clean events':^50} | {'clean, without injected signals':^50}")
    print(f"{'':>7} | {'obs':>5} {'exp':>7} {'band95':>9} {'calib':>12} {'ratio':>6} "
          f"{'p-value':>7} | {'obs':>5} {'exp':>7} {'band95':>9} {'calib':>12} {'ratio':>6} "
          f"{'p-value':>7}")
    for row in res["rows"]:
        cells = []
        for label in ("clean", "clean_no_signal"):
            c = row[label]
            band = f"{c['band95'][0]:.0f}-{c['band95'][1]:.0f}"
            lo, hi = c["expected_calibration_band"]
            calib = f"{lo:.3g}-{hi:.3g}"
            cells.append(f"{c['observed']:>5} {c['expected']:>7.1f} {band:>9} {calib:>12} "
                         f"{c['ratio']:>6.2f} {c['p_value']:>7.2g}")
        print(f"{row['p']:>7.0e} | {cells[0]} | {cells[1]}")


def main(argv: Sequence[str] | None = None) -> int:
    from hotline.config import DEFAULT_ARCHIVE
    from hotline.models.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ae_default", help="MODEL[:VERSION]")
    ap.add_argument("--archive", default=str(DEFAULT_ARCHIVE),
                    help="archive holding the demo run (default: the bundled one)")
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--baseline", metavar="DIR", default=None,
                    help="a second archive with the same run (e.g. the previous demo run) for "
                         "a before/after column")
    args = ap.parse_args(argv)
    name, _, version = args.model.partition(":")
    model = load_model(name, version or "latest")
    header(f"demo run {args.run}: {name} v{model.version} alert rates on clean lumisections")
    archives = {"now": Path(args.archive)}
    if args.baseline:
        archives = {"before": Path(args.baseline), **archives}
    results: dict[str, Any] = {}
    for label, arch in archives.items():
        ae = ae_rates(arch, args.run, model)
        classic = classic_counts(arch, args.run, name, str(model.version))
        results[label] = {"archive": str(arch), "ae": ae, "classic": classic}
        _print_ae(f"AE alerts, {label} ({arch})", ae)
    print(f"\n{'classic menu (hotline demo)':<44}" + "".join(f"{k:>14}" for k in results))
    for key, text in (("classic_all", "classic alerts, whole run"),
                      ("classic_clean", "classic alerts, clean lumisections"),
                      ("classic_clean_events_flagged", "clean events flagged by a rule"),
                      ("clean_events", "clean events")):
        print(f"{text:<44}" + "".join(f"{r['classic'][key]:>14,}" for r in results.values()))
    rules = sorted({r for res in results.values() for r in res["classic"]
                    ["classic_clean_by_rule"]})
    for rule in rules:
        print(f"  {rule:<42}" + "".join(
            f"{res['classic']['classic_clean_by_rule'].get(rule, 0):>14,}"
            for res in results.values()))
    save("demo_rates", {"model": f"{name}:{model.version}", **results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
