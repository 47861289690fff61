"""Resource and latency of a firmware build: estimates without vendor tools, real reports with.

**Estimates** (no Vivado/Vitis needed), per layer of the converted hls4ml model:

* multiplications = non-zero weights (Dense), kernel x channels x filters per
  output pixel (Conv2D), one per element (Merge multiply); divided by the reuse
  factor this is the number of multipliers;
* a multiplier goes to a DSP48E2 when both operands are wider than 10 bits,
  otherwise to LUTs (about W_a * W_w / 2 LUTs each) -- the usual Vivado mapping;
  adders: about one LUT per accumulator bit per addition;
* pipeline depth: a Dense/Conv/Merge layer's combinational delay is one
  multiply (3.0 ns DSP, 2.0 ns LUT) plus a log2(n_in)-deep adder tree
  (0.6 ns per level); element-wise activations add 0.5 ns. Layers are chained
  into one clock cycle while the sum fits in 80 % of the clock period (20 %
  routing margin), as HLS schedules a fully pipelined io_parallel design; a
  layer longer than that is pipelined over several cycles. The reuse factor
  adds (RF - 1) cycles per layer; io_parallel convolutions add (output pixels /
  parallelization factor) cycles. Plus one cycle for the input register.

These numbers are **estimates**, labelled as such everywhere they are printed.
When ``vitis-run`` or ``vivado_hls`` is on PATH, :func:`synthesize` runs the
real C synthesis and :func:`parse_synthesis` reads the vendor report instead.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotline.errors import FirmwareError

log = logging.getLogger(__name__)

T_MULT_DSP_NS = 3.0
T_MULT_LUT_NS = 2.0
T_ADD_NS = 0.6
T_ACT_NS = 0.5
DSP_MIN_WIDTH = 11  #: both operands at least this wide -> DSP48E2


@dataclass
class LayerEstimate:
    name: str
    kind: str
    multiplications: int = 0
    multipliers: int = 0
    dsp: int = 0
    lut: int = 0
    delay_ns: float = 0.0
    cycles: int = 0


@dataclass
class ResourceEstimate:
    """Whole-model estimate at one clock; ``label`` says it is an estimate."""

    clock_mhz: float
    reuse_factor: int
    layers: list[LayerEstimate] = field(default_factory=list)
    label: str = "ESTIMATE (no vendor synthesis)"

    @property
    def dsp(self) -> int:
        return sum(layer.dsp for layer in self.layers)

    @property
    def lut(self) -> int:
        return sum(layer.lut for layer in self.layers)

    @property
    def multiplications(self) -> int:
        return sum(layer.multiplications for layer in self.layers)

    @property
    def latency_cycles(self) -> int:
        return 1 + sum(layer.cycles for layer in self.layers)  # + the input register

    @property
    def latency_ns(self) -> float:
        return self.latency_cycles * 1000.0 / self.clock_mhz

    @property
    def interval_cycles(self) -> int:
        return max([self.reuse_factor] + [layer.cycles for layer in self.layers
                                           if layer.kind == "Conv2D"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(dsp=self.dsp, lut=self.lut, multiplications=self.multiplications,
                 latency_cycles=self.latency_cycles, latency_ns=self.latency_ns)
        return d


def _width(t: Any, default: int = 16) -> int:
    try:
        return int(t.precision.width)
    except AttributeError:
        return default


def _weights(layer: Any) -> Any:
    try:
        return layer.get_weights("weight")
    except Exception:
        return None


def estimate(hls_model: Any, clock_mhz: float, reuse_factor: int = 1) -> ResourceEstimate:
    """Per-layer multiplications, DSP/LUT and pipeline depth of a converted model (estimate)."""
    import numpy as np

    period = 1000.0 / clock_mhz
    out = ResourceEstimate(clock_mhz=clock_mhz, reuse_factor=reuse_factor)
    carry_ns = 0.0
    for layer in hls_model.get_layers():
        kind = layer.class_name
        res_w = _width(layer.get_output_variable().type)
        if kind in ("Activation", "ReLU", "LeakyReLU"):
            carry_ns += T_ACT_NS
            continue
        est = LayerEstimate(layer.name, kind)
        w = _weights(layer)
        w_width = _width(w.type) if w is not None else res_w
        in_width = 16
        try:
            in_width = min(_width(layer.get_input_variable(i).type) for i in layer.inputs)
        except Exception:
            pass
        n_in, extra_cycles = 1, 0
        pf = 1
        if kind == "Dense" and w is not None:
            data = np.asarray(w.data)
            n_in = int(layer.get_attr("n_in", data.shape[0]))
            const = np.unique(np.abs(data[data != 0]))
            if len(const) == 1 and float(const[0]) > 0 and math.log2(float(const[0])).is_integer():
                est.multiplications = 0  # x 1 or a power of two: wiring only
            else:
                est.multiplications = int(np.count_nonzero(data))
        elif kind.startswith("Conv") and w is not None:
            data = np.asarray(w.data)
            n_in = int(data.size // max(1, layer.get_attr("n_filt", 1)))
            pixels = int(layer.get_attr("out_height", 1)) * int(layer.get_attr("out_width", 1))
            pf = int(layer.get_attr("parallelization_factor", 1) or 1)
            est.multiplications = int(np.count_nonzero(data)) * pf
            extra_cycles = math.ceil(pixels / pf) - 1
        elif kind == "Merge":
            n = int(np.prod(layer.get_output_variable().shape))
            if layer.get_attr("op", "") == "multiply":
                est.multiplications = n
                w_width = in_width
                if in_width == 1:  # x 0/1 mask: an AND per bit, no multiplier
                    est.multiplications, est.lut = 0, n * res_w
            else:
                est.lut = n * res_w
        elif kind in ("Input", "Reshape", "Transpose"):
            continue
        else:  # pooling, resize: comparisons / wiring
            est.lut = int(np.prod(layer.get_output_variable().shape)) * res_w // 2
            est.delay_ns = carry_ns + T_ADD_NS
            carry_ns = 0.0
            out.layers.append(est)
            continue
        est.multipliers = math.ceil(est.multiplications / reuse_factor)
        on_dsp = min(w_width, in_width) >= DSP_MIN_WIDTH
        if on_dsp:
            est.dsp = est.multipliers
        else:
            est.lut += est.multipliers * (w_width * in_width) // 2
        acc_w = max(res_w, in_width + w_width)
        if kind != "Merge":
            est.lut += max(0, n_in - 1) * acc_w * max(1, est.multipliers // max(1, n_in))
        t_mult = (T_MULT_DSP_NS if on_dsp else T_MULT_LUT_NS) if est.multiplications else 0.0
        est.delay_ns = carry_ns + t_mult + math.ceil(math.log2(max(1, n_in))) * T_ADD_NS
        carry_ns = 0.0
        est.cycles = extra_cycles + (reuse_factor - 1)
        out.layers.append(est)
    _schedule(out.layers, period)
    return out


def _schedule(layers: list[LayerEstimate], period_ns: float) -> None:
    """Chain layer delays into clock cycles (80 % of the period usable); fills ``cycles``."""
    usable = 0.8 * period_ns
    t = 0.0
    for layer in layers:
        d = layer.delay_ns
        added = layer.cycles  # reuse-factor / convolution cycles already known
        if t + d <= usable:
            t += d
        else:
            stages = max(1, math.ceil(d / usable))
            added += stages  # a register before the layer, plus internal pipeline stages
            t = d - (stages - 1) * usable
        layer.cycles = added


def format_estimate(est: ResourceEstimate, target: Any | None = None) -> list[str]:
    """Aligned table lines, labelled as an estimate."""
    lines = [f"resources and latency at {est.clock_mhz:g} MHz, reuse factor {est.reuse_factor} "
             f"-- {est.label}",
             f"{'layer':<22} {'kind':<10} {'mults':>7} {'DSP':>6} {'LUT':>8} {'ns':>6} "
             f"{'+cycles':>7}"]
    for layer in est.layers:
        lines.append(f"{layer.name:<22} {layer.kind:<10} {layer.multiplications:>7} "
                     f"{layer.dsp:>6} {layer.lut:>8} {layer.delay_ns:>6.1f} {layer.cycles:>7}")
    tot = f"{'total':<22} {'':<10} {est.multiplications:>7} {est.dsp:>6} {est.lut:>8}"
    lines.append(f"{tot} {'':>6} {est.latency_cycles:>7}   "
                 f"= {est.latency_ns:.0f} ns latency (incl. input register)")
    if target is not None and target.dsp:
        lines.append(f"on {target.name} ({target.part}): {100 * est.dsp / target.dsp:.2f} % DSP, "
                     f"{100 * est.lut / target.lut:.2f} % LUT (estimate)")
    return lines


def vendor_tool() -> str | None:
    """``vitis-run`` or ``vivado_hls`` when on PATH, else None."""
    for tool in ("vitis-run", "vivado_hls"):
        if shutil.which(tool):
            return tool
    return None


def synthesize(hls_model: Any) -> dict[str, Any]:
    """Run the real C synthesis (needs Vitis/Vivado HLS) and return its parsed report."""
    tool = vendor_tool()
    if tool is None:
        raise FirmwareError(
            "--synth needs AMD Vitis HLS (vitis-run) or Vivado HLS (vivado_hls) on PATH; "
            "neither was found. Without them `hotline firmware build` reports estimates only"
        )
    try:
        report = hls_model.build(csim=False, synth=True, cosim=False, export=False)
    except Exception as exc:
        raise FirmwareError(f"{tool} synthesis failed: {type(exc).__name__}: {exc}") from exc
    return parse_synthesis(report)


def parse_synthesis(report: dict[str, Any] | None, output_dir: str | Path | None = None
                    ) -> dict[str, Any]:
    """Flatten an hls4ml/Vivado C-synthesis report into latency and resource numbers."""
    if not report and output_dir is not None:
        import hls4ml

        report = hls4ml.report.parse_vivado_report(str(output_dir))
    csr = (report or {}).get("CSynthesisReport")
    if not csr:
        raise FirmwareError(f"no C-synthesis report found in {output_dir or 'the build'}")
    keys = {"BestLatency": "latency_best_cycles", "WorstLatency": "latency_worst_cycles",
            "IntervalMin": "interval_min", "IntervalMax": "interval_max",
            "DSP": "dsp", "LUT": "lut", "FF": "ff", "BRAM_18K": "bram_18k",
            "EstimatedClockPeriod": "clock_period_ns"}
    out: dict[str, Any] = {"label": "REAL (vendor C synthesis)"}
    for k, name in keys.items():
        if k in csr:
            try:
                out[name] = float(csr[k])
            except (TypeError, ValueError):
                out[name] = csr[k]
    return out
