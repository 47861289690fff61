"""Evaluation of a trained model on held-out background, signals and detector faults.

All scores come from the serving path (the onnxruntime ``Scorer``), so what is
evaluated is what runs in the stream. Per signal: ROC curve, AUC (Mann-Whitney
rank statistic) and the signal efficiency (TPR) at background FPR 1e-2 .. 1e-5;
the background threshold for each FPR comes from ``models.thresholds.calibrate``
on the held-out background (empirical where the sample supports it, generalised
Pareto tail extrapolation with its uncertainty where not, or refused -- then the
TPR is reported as None with the reason). Per fault sample: the fraction of
alerted events (score above the p = ``attribution_p`` threshold) whose largest
per-type contribution is the faulty object type -- over all alerted events and,
where the fault leaves a visible per-event footprint in the model's inputs
(``fault_affected``), over the alerted events the fault actually touched.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hotline.models.thresholds import calibrate
from hotline.models.weights import kish, weighted_fraction

log = logging.getLogger(__name__)

FPRS = (1e-2, 1e-3, 1e-4, 1e-5)


def _bkg_cdf(bkg: np.ndarray, w: np.ndarray, t: np.ndarray, side: str) -> np.ndarray:
    """Weighted fraction of background at or below (side right) / below (left) ``t``."""
    o = np.argsort(bkg, kind="stable")
    cw = np.concatenate([[0.0], np.cumsum(w[o])]) / w.sum()
    return cw[np.searchsorted(bkg[o], t, side=side)]


def auc(bkg: np.ndarray, sig: np.ndarray, w_bkg: np.ndarray | None = None) -> float:
    """Area under the ROC curve = P(score_sig > score_bkg) (ties count half).

    ``w_bkg``: background event weights (None: unweighted).
    """
    if w_bkg is not None:
        w = np.asarray(w_bkg, np.float64)
        lo = _bkg_cdf(bkg, w, sig, "left")
        hi = _bkg_cdf(bkg, w, sig, "right")
        return float(np.mean(0.5 * (lo + hi)))
    from scipy.stats import rankdata

    both = np.concatenate([bkg, sig])
    ranks = rankdata(both)
    r_sig = ranks[len(bkg):].sum()
    n_b, n_s = len(bkg), len(sig)
    return float((r_sig - n_s * (n_s + 1) / 2) / (n_b * n_s))


def roc_curve(bkg: np.ndarray, sig: np.ndarray, points: int = 400,
              w_bkg: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(fpr, tpr) on a log-spaced threshold grid (compact, for plots); FPR weighted."""
    both = np.concatenate([bkg, sig])
    qs = np.unique(np.quantile(both, 1 - np.logspace(0, -6, points)))
    bs, ss = np.sort(bkg), np.sort(sig)
    if w_bkg is not None:
        fpr = 1 - _bkg_cdf(bkg, np.asarray(w_bkg, np.float64), qs, "right")
    else:
        fpr = 1 - np.searchsorted(bs, qs, side="right") / len(bs)
    tpr = 1 - np.searchsorted(ss, qs, side="right") / len(ss)
    return fpr, tpr


def tpr_at_fpr(
    bkg: np.ndarray, sig: np.ndarray, fprs=FPRS, seed: int = 0, cal: dict | None = None,
    w_bkg: np.ndarray | None = None,
) -> dict[str, Any]:
    """TPR at each FPR, thresholds calibrated on ``bkg`` (empirical / GPD / refused).

    ``tpr_range`` propagates the threshold's one-sigma uncertainty to the TPR.
    """
    cal = cal or calibrate(bkg, fprs, seed=seed, n_boot=30, weights=w_bkg)
    out: dict[str, Any] = {}
    for t in cal["thresholds"]:
        thr, unc = t["threshold"], t["uncertainty"]
        tpr = float((sig > thr).mean())
        lo = float((sig > thr + unc).mean()) if np.isfinite(unc) else tpr
        hi = float((sig > thr - unc).mean()) if np.isfinite(unc) else tpr
        out[f"{t['p']:g}"] = {"tpr": tpr, "threshold": thr, "method": t["method"],
                              "tpr_range": [lo, hi]}
    for r in cal["refused"]:
        out[f"{r['p']:g}"] = {"tpr": None, "method": "refused", "reason": r["reason"]}
    return out


def fault_affected(name: str, fm: Any) -> np.ndarray | None:
    """Per event: did the detector fault of sample ``name`` touch the model's inputs?

    The generated fault samples carry only a per-sample ``fault`` code, not a per-event
    marker, so "affected" is derived from the stored objects with the fault definitions
    of ``detectors.fastsim``: muon_scale -- a real muon slot inside ``MUON_SCALE_BOX``;
    hot_cell -- a real jet slot at the hot cell (eta, phi); electron_phi -- any real
    electron slot (every electron is rotated). dead_calo removes objects and leaves no
    trace in the output, so it returns None (no restriction possible).
    """
    from hotline.detectors import event_faults

    labels = list(fm.spec.object_labels)
    x, mask = np.asarray(fm.x), np.asarray(fm.mask, bool)

    def slots(prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = [j for j, lab in enumerate(labels) if lab.rstrip("0123456789") == prefix]
        cols = np.asarray(idx, int)
        return x[:, 3 * cols + 1], x[:, 3 * cols + 2], mask[:, cols]

    if "muon_scale" in name:
        eta, phi, real = slots("mu")
        e0, e1, p0, p1 = event_faults.MUON_SCALE_BOX
        return (real & (eta > e0) & (eta < e1) & (phi > p0) & (phi < p1)).any(axis=1)
    if "hot_cell" in name:
        eta, phi, real = slots("j")
        at = np.isclose(eta, event_faults.HOT_CELL_ETA, atol=1e-4) & np.isclose(
            phi, event_faults.HOT_CELL_PHI, atol=1e-4)
        return (real & at).any(axis=1)
    if "electron_phi" in name:
        return slots("e")[2].any(axis=1)
    return None


def faulty_type_of(sample: str) -> str | None:
    """Object type the fault of sample ``sample`` corrupts: a synthetic toy fault, the truth
    type of a registered process (``Process.anomalous_type``: its ``truth_type`` or its
    fault's type), else the ``faulty_type`` of the detector fault whose name the sample
    carries (``sm_mix_<fault>``)."""
    from hotline.detectors.event_faults import available_event_faults, get_event_fault
    from hotline.stream.samples import SYNTHETIC_FAULT_TYPES
    from hotline.training.processes import available_processes, get_process

    if sample in SYNTHETIC_FAULT_TYPES:
        return SYNTHETIC_FAULT_TYPES[sample]
    if sample in available_processes() and get_process(sample).anomalous_type():
        return get_process(sample).anomalous_type()
    return next((get_event_fault(f).faulty_type for f in available_event_faults()
                 if f in sample), None)


def attribution(scorer: Any, faults: dict[str, Any], p: float) -> dict[str, Any]:
    """Per fault sample: alerted fraction and how often the top type is the faulty one.

    Fractions are weighted with the sample's event weights (``FeatureMatrix.weights``).
    """
    thr = scorer.threshold(p)
    out: dict[str, Any] = {}
    for name, fm in faults.items():
        faulty = faulty_type_of(name)
        res = scorer.score(fm)
        alerted = res.total > thr
        n_alert = int(alerted.sum())
        w = (np.asarray(fm.weights, np.float64) if getattr(fm, "weights", None) is not None
             else np.ones(len(fm)))

        labels = np.asarray(res.type_labels)
        ref = scorer.reference_contributions
        top = labels[res.top_type()[alerted]]
        exc = labels[res.top_type(ref)[alerted]] if ref else top
        # explained_by: the type with the strongest calibrated evidence (Scorer.explain)
        expl = (labels[scorer.explain(res)[alerted]] if hasattr(scorer, "explain")
                else labels[res.attribute(ref)[alerted]] if ref else top)
        counts = {lab: int((top == lab).sum()) for lab in res.type_labels}
        wa = w[alerted]
        frac = weighted_fraction(top == faulty, wa) if n_alert and faulty else None
        frac_exc = weighted_fraction(exc == faulty, wa) if n_alert and faulty and ref else None
        calibrated = bool(ref) or getattr(scorer, "type_evidence", None) is not None
        frac_expl = (weighted_fraction(expl == faulty, wa) if n_alert and faulty and calibrated
                     else None)
        # sample level: which type's mean contribution moved most vs the background reference
        # (in units of the background's standard error), what a shifter sees per lumisection
        shift_type = None
        if ref:
            mean = np.asarray(ref["types"]["mean"])
            std = np.maximum(np.asarray(ref["types"]["std"]), 1e-12)
            shift = ((np.average(res.per_type, axis=0, weights=w) - mean)
                     / (std / np.sqrt(max(kish(w), 1.0))))
            shift_type = str(labels[int(np.argmax(shift))])
        # restricted to the alerted events the fault actually touched (when derivable)
        affected = fault_affected(name, fm)
        aff: dict[str, Any] = {"n_affected": None, "n_alerted_affected": None,
                               "top_type_is_faulty_affected": None,
                               "top_type_is_faulty_excess_affected": None}
        if affected is not None:
            sel = affected[alerted]
            n_sel = int(sel.sum())
            aff = {"n_affected": int(affected.sum()), "n_alerted_affected": n_sel,
                   "top_type_is_faulty_affected": (
                       weighted_fraction(top[sel] == faulty, wa[sel])
                       if n_sel and faulty else None),
                   "top_type_is_faulty_excess_affected": (
                       weighted_fraction(exc[sel] == faulty, wa[sel])
                       if n_sel and faulty and ref else None)}
        out[name] = {"faulty_type": faulty, "p": p, "threshold": thr, "n_events": len(fm),
                     **aff,
                     "sample_top_type": shift_type,
                     "sample_shift_sigma": ({lab: round(float(v), 1) for lab, v in
                                             zip(labels, shift)} if ref else None),
                     "n_alerted": n_alert, "alert_fraction": float(w[alerted].sum() / w.sum()),
                     "top_type_counts": counts, "top_type_is_faulty": frac,
                     "top_type_is_faulty_excess": frac_exc,
                     "explained_by_faulty": frac_expl}
    return out


def evaluate_model(
    scorer: Any, model: Any, normaliser: Any, x_bkg: np.ndarray, m_bkg: np.ndarray,
    signals: dict[str, Any], faults: dict[str, Any], out: Any = None,
    attribution_p: float = 1e-3, seed: int = 0, n_boot: int = 30,
    w_bkg: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of one model (see module docstring); plots into ``out`` when given.

    ``w_bkg``: physical weights of the background events (FPRs, AUCs and thresholds
    are then weighted; ``n_background_test_eff`` is the Kish effective size).
    """
    bkg = scorer.score_arrays(x_bkg, m_bkg).total.astype(np.float64)
    metrics: dict[str, Any] = {"n_background_test": len(bkg),
                               "n_background_test_eff": round(kish(w_bkg, len(bkg)), 1),
                               "weighted": w_bkg is not None, "signals": {}}
    rocs = {}
    cal = calibrate(bkg, FPRS, seed=seed, n_boot=n_boot, weights=w_bkg)
    for name, fm in signals.items():
        sig = scorer.score(fm).total.astype(np.float64)
        metrics["signals"][name] = {"auc": auc(bkg, sig, w_bkg), "n": len(sig),
                                    "tpr_at_fpr": tpr_at_fpr(bkg, sig, seed=seed, cal=cal)}
        rocs[name] = roc_curve(bkg, sig, w_bkg=w_bkg)
    metrics["roc"] = {k: {"fpr": f.tolist(), "tpr": t.tolist()} for k, (f, t) in rocs.items()}
    if faults:
        try:
            metrics["attribution"] = attribution(scorer, faults, attribution_p)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal for the study
            metrics["attribution"] = {"error": str(exc)}
    if out is not None:
        from hotline.models.export import reference_scores
        from hotline.training.report import plot_model

        n = min(len(x_bkg), 20_000)
        ref = reference_scores(model, normaliser, x_bkg[:n], m_bkg[:n])
        xn = normaliser.transform(x_bkg[:n], m_bkg[:n])
        plot_model(out, scorer, bkg, {k: scorer.score(v).total for k, v in signals.items()},
                   rocs, xn, ref["recon_out"], m_bkg[:n], metrics)
    return metrics
