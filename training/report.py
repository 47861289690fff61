"""Training reports: PNG plots (matplotlib + mplhep) and the model comparison table.

Per model (``plot_model``): score distributions of background and signals,
ROC curves (log FPR axis, with the FPR 1e-2..1e-5 working points), and, in the
Baler / seed-study style, the per-variable response (out - in) / in and
residual (out - in) histograms of real objects in normalised space.
Per run (``write_report``): loss curves of every model, ROC comparison per
signal, and ``comparison.md`` -- AUC and TPR at FPR 1e-2..1e-5 per signal for
every model, with the best model flagged against the baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.CMS)
    plt.rcParams.update({"font.size": 11, "xtick.minor.visible": False,
                         "ytick.minor.visible": False})  # minor ticks dominate render time
    return plt


def plot_model(
    out: Path, scorer: Any, bkg: np.ndarray, sigs: dict[str, np.ndarray],
    rocs: dict[str, tuple[np.ndarray, np.ndarray]], xn: np.ndarray, recon: np.ndarray,
    mask: np.ndarray, metrics: dict[str, Any],
) -> None:
    """Score, ROC, response and residual plots of one model into ``out``."""
    plt = _plt()
    out = Path(out)
    fig, ax = plt.subplots(figsize=(7, 5))
    hi = np.quantile(np.concatenate([bkg, *sigs.values()]), 0.999)
    bins = np.logspace(np.log10(max(bkg.min(), 1e-6)), np.log10(max(hi, 1e-5)), 60)
    ax.hist(bkg, bins=bins, histtype="step", density=True, label="background", color="k")
    for name, s in sigs.items():
        ax.hist(s, bins=bins, histtype="step", density=True, label=name)
    ax.set(xscale="log", yscale="log", xlabel=f"anomaly score ({scorer.score_name})",
           ylabel="density")
    ax.legend(fontsize=9)
    fig.savefig(out / "scores.png", dpi=90, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, (fpr, tpr) in rocs.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics['signals'][name]['auc']:.3f})")
    for f in (1e-2, 1e-3, 1e-4, 1e-5):
        ax.axvline(f, color="grey", ls=":", lw=0.8)
    ax.set(xscale="log", xlim=(1e-6, 1), ylim=(0, 1.02), xlabel="background FPR",
           ylabel="signal TPR")
    ax.legend(fontsize=9)
    fig.savefig(out / "roc.png", dpi=90, bbox_inches="tight")
    plt.close(fig)

    names = scorer.spec.feature_names
    fmask = np.repeat(mask, 3, axis=1)
    lead = [i for i, n in enumerate(names) if n.split("_")[0] in ("met", "e1", "mu1", "j1")]
    lead = [i for i in lead if not names[i].startswith("met_eta")]
    ncol = 4
    nrow = int(np.ceil(len(lead) / ncol))
    for kind in ("response", "residual"):
        fig, axes = plt.subplots(nrow, ncol, figsize=(14, 3 * nrow))
        for ax, i in zip(axes.flat, lead):
            sel = fmask[:, i]
            d = recon[sel, i] - xn[sel, i]
            if kind == "response":
                with np.errstate(divide="ignore", invalid="ignore"):
                    d = d / xn[sel, i]
                d = d[np.isfinite(d)]
                rng = (-2, 2)
            else:
                rng = (-1, 1)
            ax.hist(np.clip(d, *rng), bins=60, range=rng, histtype="stepfilled", alpha=0.6)
            med = float(np.median(d)) if d.size else 0.0
            iqr = float(np.subtract(*np.percentile(d, [75, 25]))) if d.size else 0.0
            ax.set_title(f"{names[i]}  (median {med:.3f}, IQR/1.35 {iqr / 1.35:.3f})",
                         fontsize=9)
            ax.tick_params(labelsize=8)
        for ax in list(axes.flat)[len(lead):]:
            ax.set_visible(False)
        fig.supxlabel("(out - in) / in" if kind == "response" else "out - in (normalised)")
        fig.tight_layout()
        fig.savefig(out / f"{kind}.png", dpi=80)
        plt.close(fig)


def comparison_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (model, signal): AUC and TPR at each FPR."""
    rows = []
    for mname, r in results["models"].items():
        for sname, s in r["metrics"]["signals"].items():
            row = {"model": mname, "signal": sname, "auc": s["auc"]}
            for f, t in s["tpr_at_fpr"].items():
                row[f"tpr@{f}"] = t["tpr"]
                row[f"method@{f}"] = t["method"]
            rows.append(row)
    return rows


def best_vs_baseline(results: dict[str, Any], baseline: str | None = None) -> dict[str, Any]:
    """Best model by mean AUC, and on how many signals it beats the baseline (AUC and TPR@1e-5)."""
    models = results["models"]
    if not models:
        return {}
    baseline = baseline if baseline in models else next(iter(models))

    def mean_auc(m: str) -> float:
        return float(np.mean([s["auc"] for s in models[m]["metrics"]["signals"].values()]))

    best = max(models, key=mean_auc)
    sig = models[best]["metrics"]["signals"]
    base = models[baseline]["metrics"]["signals"]
    wins_auc = sum(sig[s]["auc"] > base[s]["auc"] for s in sig)

    def t5(d: dict[str, Any]) -> float:
        v = d["tpr_at_fpr"].get("1e-05", {}).get("tpr")
        return -1.0 if v is None else v

    wins_tpr = sum(t5(sig[s]) > t5(base[s]) for s in sig)

    def t3(d: dict[str, Any]) -> float:
        v = d["tpr_at_fpr"].get("0.001", {}).get("tpr")
        return -1.0 if v is None else v

    # the working point a trigger runs at: best by mean TPR at FPR 1e-3
    best3 = max(models, key=lambda m: float(np.mean(
        [t3(s) for s in models[m]["metrics"]["signals"].values()])))
    sig3 = models[best3]["metrics"]["signals"]
    wins3 = sum(t3(sig3[s]) > t3(base[s]) for s in sig3)
    return {"baseline": baseline, "best": best, "mean_auc_best": mean_auc(best),
            "mean_auc_baseline": mean_auc(baseline), "signals": len(sig),
            "wins_auc": wins_auc, "wins_tpr_1e-5": wins_tpr,
            "best_tpr_1e-3": best3, "wins_tpr_1e-3": wins3}


def comparison_markdown(results: dict[str, Any]) -> str:
    rows = comparison_rows(results)
    fprs = ["0.01", "0.001", "0.0001", "1e-05"]
    lines = ["| model | signal | AUC | " + " | ".join(f"TPR@FPR {f}" for f in fprs) + " |",
             "|---|---|---|" + "---|" * len(fprs)]
    for r in rows:
        cells = []
        for f in fprs:
            v = r.get(f"tpr@{f}")
            m = r.get(f"method@{f}", "")
            cells.append("refused" if v is None else f"{v:.4f}" + (" (gpd)" if m == "gpd" else ""))
        lines.append(f"| {r['model']} | {r['signal']} | {r['auc']:.4f} | " + " | ".join(cells)
                     + " |")
    bvb = best_vs_baseline(results)
    if bvb:
        lines += ["", f"best model (mean AUC): **{bvb['best']}** ({bvb['mean_auc_best']:.4f}) vs "
                  f"baseline {bvb['baseline']} ({bvb['mean_auc_baseline']:.4f}); beats the "
                  f"baseline in AUC on {bvb['wins_auc']}/{bvb['signals']} signals and in "
                  f"TPR@FPR 1e-5 on {bvb['wins_tpr_1e-5']}/{bvb['signals']}; best by mean "
                  f"TPR@FPR 1e-3: **{bvb['best_tpr_1e-3']}**, above the baseline on "
                  f"{bvb['wins_tpr_1e-3']}/{bvb['signals']} signals."]
    att = [(m, f, a) for m, r in results["models"].items()
           for f, a in r["metrics"].get("attribution", {}).items() if isinstance(a, dict)]
    if att:
        lines += ["", "| model | fault sample | faulty type | alerted | top type = faulty "
                  "(largest contribution) | (largest standardised excess) | "
                  "sample-level top type (mean shift) | alerted & affected | "
                  "top type = faulty, affected (largest) | (excess) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]

        def pct(v: Any) -> str:
            return "n/a" if v is None else f"{100 * v:.1f} %"

        for m, f, a in att:
            if "n_alerted" not in a:
                continue
            lines.append(f"| {m} | {f} | {a.get('faulty_type')} | {a.get('n_alerted')}"
                         f"/{a.get('n_events')} (p={a.get('p'):g}) | "
                         f"{pct(a.get('top_type_is_faulty'))} | "
                         f"{pct(a.get('top_type_is_faulty_excess'))} | "
                         f"{a.get('sample_top_type')} | "
                         + ("n/a (no per-event footprint)" if a.get("n_affected") is None
                            else f"{a.get('n_alerted_affected')}/{a.get('n_alerted')} "
                                 f"({a.get('n_affected')} affected)")
                         + f" | {pct(a.get('top_type_is_faulty_affected'))} | "
                         f"{pct(a.get('top_type_is_faulty_excess_affected'))} |")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], run_dir: Path) -> Path:
    """Loss curves, ROC comparison per signal and comparison.md into ``run_dir``."""
    plt = _plt()
    run_dir = Path(run_dir)
    fig, ax = plt.subplots(figsize=(7, 5))
    for mname, r in results["models"].items():
        h = r["metrics"]["history"]
        (line,) = ax.plot(h["train"], label=f"{mname} train")
        ax.plot(h["val"], ls="--", color=line.get_color(), label=f"{mname} val")
    ax.set(yscale="log", xlabel="epoch", ylabel="loss")
    ax.legend(fontsize=8, ncol=2)
    fig.savefig(run_dir / "loss_curves.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    signals = sorted({s for r in results["models"].values() for s in r["metrics"].get("roc", {})})
    if signals and len(results["models"]) > 1:
        ncol = min(len(signals), 2)
        nrow = int(np.ceil(len(signals) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(7 * ncol, 5 * nrow), squeeze=False)
        for ax, sname in zip(axes.flat, signals):
            for mname, r in results["models"].items():
                roc = r["metrics"].get("roc", {}).get(sname)
                if roc:
                    auc = r["metrics"]["signals"][sname]["auc"]
                    ax.plot(roc["fpr"], roc["tpr"], label=f"{mname} ({auc:.3f})")
            ax.set(xscale="log", xlim=(1e-5, 1), ylim=(0, 1.02), title=sname,
                   xlabel="background FPR", ylabel="signal TPR")
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(signals):]:
            ax.set_visible(False)
        fig.tight_layout()
        fig.savefig(run_dir / "roc_comparison.png", dpi=80)
        plt.close(fig)
    md = comparison_markdown(results)
    (run_dir / "comparison.md").write_text(md)
    results["best_vs_baseline"] = best_vs_baseline(results)
    log.info("report written to %s", run_dir)
    return run_dir / "comparison.md"
