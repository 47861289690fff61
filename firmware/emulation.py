"""Bit-accurate emulation check: the compiled hls4ml C++ against onnxruntime (serving).

For a held-out sample the firmware scores (``hls_model.predict`` of the g++ build)
are compared with the serving scores (onnxruntime on the ONNX model): per-event
Pearson correlation, max absolute difference, and above all the **trigger
decision agreement** at each calibrated threshold: the fraction of events where
``score > threshold`` is the same in firmware and serving. A build fails (raises
:class:`FirmwareError`) when the agreement at any threshold is below the
configured bound.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import FirmwareError

log = logging.getLogger(__name__)


def export_onnx(model: Any, input_shape: tuple[int, ...], path: str | Path | None = None
                ) -> bytes:
    """Export a torch score network to ONNX (input ``x`` [n, ...], output ``score`` [n, 1])."""
    import torch

    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(1, *input_shape),), buf, input_names=["x"],
                      output_names=["score"], dynamic_axes={"x": {0: "n"}, "score": {0: "n"}},
                      dynamo=False)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def onnx_scores(onnx_model: str | Path | bytes, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Scores of the first output of an ONNX model, [n] float64, evaluated in batches."""
    import onnxruntime as ort

    src = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [np.asarray(sess.run(None, {name: np.ascontiguousarray(x[i:i + batch],
                                                               dtype=np.float32)})[0])
           for i in range(0, len(x), batch)]
    y = np.concatenate(out) if out else np.zeros((0, 1))
    return y.reshape(len(x), -1)[:, 0].astype(np.float64)


def calibrate_thresholds(reference: np.ndarray, p_values: list[float] | tuple[float, ...]
                         ) -> dict[float, float]:
    """Threshold per p-value: the (1 - p) quantile of background reference scores."""
    ref = np.asarray(reference, dtype=np.float64)
    return {float(p): float(np.quantile(ref, 1.0 - p)) for p in p_values}


@dataclass
class ThresholdCheck:
    p: float
    threshold: float
    agreement: float  #: fraction of events with the same decision
    disagree: int  #: events whose decision differs
    pass_serving: int  #: events above threshold in serving
    pass_firmware: int  #: events above threshold in firmware
    tpr_serving: float | None = None  #: signal efficiency, serving
    tpr_firmware: float | None = None  #: signal efficiency, firmware


@dataclass
class EmulationReport:
    """Firmware vs serving on one sample."""

    n_events: int
    correlation: float
    max_abs_diff: float
    mean_abs_diff: float
    thresholds: list[ThresholdCheck] = field(default_factory=list)
    min_agreement: float = 0.999

    @property
    def worst_agreement(self) -> float:
        return min((t.agreement for t in self.thresholds), default=1.0)

    @property
    def passed(self) -> bool:
        return self.worst_agreement >= self.min_agreement

    def at(self, p: float) -> ThresholdCheck:
        for t in self.thresholds:
            if np.isclose(t.p, p):
                return t
        raise KeyError(p)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["worst_agreement"] = self.worst_agreement
        return d


def compare_scores(firmware: np.ndarray, serving: np.ndarray, thresholds: dict[float, float],
                   is_signal: np.ndarray | None = None, min_agreement: float = 0.999
                   ) -> EmulationReport:
    """Compare per-event scores and trigger decisions (``score > threshold``)."""
    fw = np.asarray(firmware, dtype=np.float64).ravel()
    sv = np.asarray(serving, dtype=np.float64).ravel()
    if fw.shape != sv.shape:
        raise FirmwareError(f"firmware gave {fw.shape[0]} scores for {sv.shape[0]} events")
    if len(fw) == 0:
        raise FirmwareError("cannot compare firmware and serving on an empty sample")
    diff = np.abs(fw - sv)
    corr = float(np.corrcoef(fw, sv)[0, 1]) if fw.std() > 0 and sv.std() > 0 else float("nan")
    sig = None if is_signal is None else np.asarray(is_signal, bool)
    checks = []
    for p, thr in sorted(thresholds.items(), reverse=True):
        dfw, dsv = fw > thr, sv > thr
        same = dfw == dsv
        chk = ThresholdCheck(p=float(p), threshold=float(thr), agreement=float(same.mean()),
                             disagree=int((~same).sum()), pass_serving=int(dsv.sum()),
                             pass_firmware=int(dfw.sum()))
        if sig is not None and sig.any():
            chk.tpr_serving = float(dsv[sig].mean())
            chk.tpr_firmware = float(dfw[sig].mean())
        checks.append(chk)
    return EmulationReport(n_events=len(fw), correlation=corr, max_abs_diff=float(diff.max()),
                           mean_abs_diff=float(diff.mean()), thresholds=checks,
                           min_agreement=min_agreement)


def check_agreement(report: EmulationReport, where: str = "firmware build") -> None:
    """Raise :class:`FirmwareError` when decisions agree on too few events."""
    bad = [t for t in report.thresholds if t.agreement < report.min_agreement]
    if bad:
        worst = min(bad, key=lambda t: t.agreement)
        raise FirmwareError(
            f"{where}: firmware and serving disagree on the trigger decision of "
            f"{worst.disagree} of {report.n_events} events at p = {worst.p:g} "
            f"(agreement {worst.agreement:.4%} < bound {report.min_agreement:.4%}); "
            "widen the precision in the firmware configuration or run `hotline firmware scan`"
        )


def format_report(report: EmulationReport) -> list[str]:
    """Aligned text lines (CLI / logs)."""
    lines = [f"events {report.n_events}   correlation {report.correlation:.6f}   "
             f"max |diff| {report.max_abs_diff:.4g}   mean |diff| {report.mean_abs_diff:.3g}",
             f"{'p':>8} {'threshold':>10} {'agree':>9} {'differ':>6} {'TPR serv':>9} "
             f"{'TPR fw':>8}"]
    for t in report.thresholds:
        tpr_s = "-" if t.tpr_serving is None else f"{t.tpr_serving:.4f}"
        tpr_f = "-" if t.tpr_firmware is None else f"{t.tpr_firmware:.4f}"
        lines.append(f"{t.p:>8g} {t.threshold:>10.4g} {t.agreement:>9.4%} {t.disagree:>6d} "
                     f"{tpr_s:>9} {tpr_f:>8}")
    lines.append(f"{'PASS' if report.passed else 'FAIL'}: worst agreement "
                 f"{report.worst_agreement:.4%} (bound {report.min_agreement:.4%})")
    return lines


def plot_scores(firmware: np.ndarray, serving: np.ndarray, thresholds: dict[float, float],
                path: str | Path, title: str = "") -> Path:
    """PNG: firmware vs serving score scatter with the thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    sv, fw = np.asarray(serving, float), np.asarray(firmware, float)
    positive = bool((sv > 0).all() and (fw > 0).all())
    ax.scatter(sv, fw, s=2, alpha=0.4)
    lo, hi = float(np.min(sv)), float(np.max(sv))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="firmware = serving")
    if positive:  # scores span decades: log axes show the tail where thresholds sit
        ax.set_xscale("log")
        ax.set_yscale("log")
    for p, thr in thresholds.items():
        ax.axvline(thr, lw=0.7, color="tab:red")
        ax.axhline(thr, lw=0.7, color="tab:red")
        ax.text(thr, hi, f"p={p:g}", rotation=90, va="top", fontsize=7)
    ax.set_xlabel("serving score (onnxruntime)")
    ax.set_ylabel("firmware score (hls4ml C++ emulation)")
    ax.set_title(title or "firmware vs serving")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
