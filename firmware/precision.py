"""Precision study: per-layer profiling and a fixed-point width scan.

* :func:`profile_layers` runs the torch score network on a sample with forward
  hooks and lists, per layer, the weight and output ranges and the integer bits
  an ``ap_fixed`` needs to hold them (sign included) -- compare with the
  configured precision before trusting a width. :func:`trace_differences`
  compares each layer's output in the compiled emulation (hls4ml trace) with
  torch.
* :func:`width_scan` rebuilds the emulation for each ``ap_fixed<W,I>`` of the
  grid (weights, biases, layer results; the score tail keeps its configured
  precision) and records the decision agreement with serving and the TPR at
  each threshold, so a trigger expert picks the smallest safe width
  (:func:`smallest_safe`). Each point is a real g++ compile (seconds each).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.firmware.convert import BuildConfig, compile_emulation, convert, fixed, predict

log = logging.getLogger(__name__)


@dataclass
class LayerProfile:
    name: str
    kind: str
    out_min: float
    out_max: float
    out_p999: float  #: 99.9 % quantile of |output|
    weight_absmax: float | None
    integer_bits: int  #: ap_fixed integer bits (incl. sign) to hold max |output|


def _int_bits(v: float) -> int:
    return 1 + max(0, math.ceil(math.log2(v + 1e-12))) if v > 0 else 1


def profile_layers(score_net: Any, x: np.ndarray) -> list[LayerProfile]:
    """Per-layer output/weight ranges of the torch score network on ``x``."""
    import torch

    records: dict[str, Any] = {}
    hooks = []
    for name, mod in score_net.named_modules():
        if name and not list(mod.children()):
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, name=name: records.__setitem__(name, (m, o.detach()))))
    try:
        with torch.no_grad():
            score_net(torch.as_tensor(np.asarray(x, np.float32)))
    finally:
        for h in hooks:
            h.remove()
    out = []
    for name, (mod, o) in records.items():
        a = o.numpy().ravel()
        w = getattr(mod, "weight", None)
        wmax = float(w.detach().abs().max()) if w is not None else None
        amax = float(np.abs(a).max())
        out.append(LayerProfile(name.replace(".", "_"), type(mod).__name__, float(a.min()),
                                float(a.max()), float(np.quantile(np.abs(a), 0.999)), wmax,
                                _int_bits(max(amax, wmax or 0.0))))
    return out


def format_profile(profiles: list[LayerProfile]) -> list[str]:
    lines = [f"{'layer':<22} {'kind':<10} {'min':>9} {'max':>9} {'|x| 99.9%':>10} "
             f"{'|w| max':>8} {'int bits':>8}"]
    for p in profiles:
        wm = "-" if p.weight_absmax is None else f"{p.weight_absmax:.3g}"
        lines.append(f"{p.name:<22} {p.kind:<10} {p.out_min:>9.3g} {p.out_max:>9.3g} "
                     f"{p.out_p999:>10.3g} {wm:>8} {p.integer_bits:>8}")
    return lines


def trace_differences(conversion: Any, inputs: Any) -> dict[str, float]:
    """Max |firmware - torch| of each traced layer output (needs ``convert(..., trace=True)``).

    ``inputs``: one array or a list (one per firmware input) of flat (dense) inputs.
    Layers are matched by name (torch module ``ae.encoder.0`` = hls4ml ``ae_encoder_0``).
    """
    import torch

    xs = [np.ascontiguousarray(a, dtype=np.float32)
          for a in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    with contextlib.redirect_stdout(io.StringIO()):
        _, trace = conversion.hls_model.trace(xs if len(xs) > 1 else xs[0])
    ref: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: ref.__setitem__(n.replace(".", "_"),
                                                                           o.detach().numpy()))
             for n, m in conversion.torch_model.named_modules() if n]
    try:
        with torch.no_grad():
            conversion.torch_model(*[torch.as_tensor(a) for a in xs])
    finally:
        for h in hooks:
            h.remove()
    diffs = {}
    for name, arr in trace.items():
        if name in ref and np.asarray(arr).size == ref[name].size:
            diffs[name] = float(np.abs(np.asarray(arr).reshape(ref[name].shape) - ref[name]).max())
    return diffs


@dataclass
class ScanPoint:
    width: int
    integer: int
    agreement: dict[float, float] = field(default_factory=dict)
    tpr_firmware: dict[float, float | None] = field(default_factory=dict)
    tpr_serving: dict[float, float | None] = field(default_factory=dict)
    correlation: float = float("nan")
    max_abs_diff: float = float("nan")
    compile_s: float = 0.0
    error: str = ""

    @property
    def precision(self) -> str:
        return fixed(self.width, self.integer)


def width_scan(source: Any, cfg: BuildConfig, widths: list[int] | tuple[int, ...],
               integers: list[int] | tuple[int, ...], work_dir: str | Path,
               progress: Any = None) -> list[ScanPoint]:
    """Compile and compare the emulation for each ``ap_fixed<W,I>``; one g++ compile per point."""
    from hotline.firmware.emulation import compare_scores

    sample, is_sig = source.sample()
    sv = source.serve(sample)
    x = source.fw_inputs(sample)
    work = Path(work_dir)
    grid = [(w, i) for w in widths for i in integers if 0 < i < w]
    points = []
    for w, i in grid:
        pcfg = cfg.with_precision(fixed(w, i))
        pt = ScanPoint(w, i)
        out = work / f"w{w}_i{i}"
        try:
            conv = compile_emulation(convert(source.score_net, source.input_shape, pcfg, out))
            rep = compare_scores(predict(conv, x), sv, source.thresholds, is_sig,
                                 cfg.validation.min_agreement)
            pt.agreement = {t.p: t.agreement for t in rep.thresholds}
            pt.tpr_firmware = {t.p: t.tpr_firmware for t in rep.thresholds}
            pt.tpr_serving = {t.p: t.tpr_serving for t in rep.thresholds}
            pt.correlation, pt.max_abs_diff = rep.correlation, rep.max_abs_diff
            pt.compile_s = conv.compile_s
        except Exception as exc:  # a failing point is a result of the scan, not its end
            pt.error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("scan point %s failed: %s", pt.precision, pt.error)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        points.append(pt)
        if progress is not None:
            progress(pt)
    return points


def smallest_safe(points: list[ScanPoint], p: float, bound: float = 0.999) -> ScanPoint | None:
    """The narrowest (then fewest integer bits) point whose agreement at ``p`` is >= bound."""
    ok = [pt for pt in points if not pt.error and pt.agreement.get(p, 0.0) >= bound]
    return min(ok, key=lambda pt: (pt.width, pt.integer), default=None)


def format_scan(points: list[ScanPoint], p_values: list[float]) -> list[str]:
    head = f"{'precision':<26}" + "".join(f" {'agree@' + format(p, 'g'):>12} {'TPR':>6}"
                                          for p in p_values) + f" {'corr':>8}"
    lines = [head]
    for pt in points:
        if pt.error:
            lines.append(f"{pt.precision:<26} failed: {pt.error}")
            continue
        row = f"{pt.precision:<26}"
        for p in p_values:
            tpr = pt.tpr_firmware.get(p)
            row += f" {pt.agreement.get(p, float('nan')):>12.4%} " + (
                f"{tpr:>6.3f}" if tpr is not None else f"{'-':>6}")
        lines.append(row + f" {pt.correlation:>8.5f}")
    return lines


def save_scan(points: list[ScanPoint], path: str | Path, p_values: list[float],
              bound: float) -> Path:
    """Write ``scan.json`` and ``scan.png`` (agreement heat map per threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "scan.json").write_text(json.dumps([asdict(pt) for pt in points], indent=2,
                                               default=float) + "\n")
    widths = sorted({pt.width for pt in points})
    ints = sorted({pt.integer for pt in points})
    fig, axes = plt.subplots(1, len(p_values), figsize=(4.2 * len(p_values), 3.8), squeeze=False)
    for ax, p in zip(axes[0], p_values):
        grid = np.full((len(ints), len(widths)), np.nan)
        for pt in points:
            if not pt.error:
                grid[ints.index(pt.integer), widths.index(pt.width)] = 100 * pt.agreement[p]
        im = ax.imshow(grid, origin="lower", vmin=99.0, vmax=100.0, cmap="viridis",
                       aspect="auto")
        for (r, c), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if v < 100 * bound else "k")
        ax.set_xticks(range(len(widths)), widths)
        ax.set_yticks(range(len(ints)), ints)
        ax.set_xlabel("total bits W")
        ax.set_ylabel("integer bits I")
        ax.set_title(f"decision agreement % at p={p:g}")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.savefig(path / "scan.png", dpi=110)
    plt.close(fig)
    return path
