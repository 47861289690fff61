"""Firmware build of one model: resolve it, convert, compile, validate against serving, report.

:func:`resolve_model` turns ``MODEL[:VERSION]`` into a :class:`ModelSource`
(the torch score network that goes to firmware, the ONNX model serving uses,
the calibrated thresholds and a held-out sample). Registered models come from
``models.registry``; the ``standin-*`` names are small models of the same
architectures trained on the fly (:mod:`firmware.standin`) for when no model
is registered. :func:`build` writes ``<builds>/<model>/<version>/`` with the
hls4ml Vitis project (``hls/``), the configuration used, ``report.json``
(naming the held-out runs / seeds validated on), ``emulation.png`` and, for registered
models, the L1 menu with the emulation library (``firmware.l1_menu``), and fails when
decisions disagree beyond the bound.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import FirmwareError, ModelError
from hotline.firmware.convert import BuildConfig, Conversion, compile_emulation, convert, predict
from hotline.firmware.emulation import (
    EmulationReport,
    calibrate_thresholds,
    check_agreement,
    compare_scores,
    export_onnx,
    onnx_scores,
    plot_scores,
)
from hotline.firmware.registry_adapter import registered_source
from hotline.firmware.resources import ResourceEstimate, estimate, synthesize
from hotline.firmware.source import ModelSource, parse_model_ref
from hotline.firmware.standin import (
    available_standins,
    get_standin,
    standin_samples,
    standin_score_net,
)

log = logging.getLogger(__name__)

STANDIN_PREFIX = "standin-"


def standin_names() -> list[str]:
    """The ``standin-*`` model names (one per stand-in of ``firmware.standin``)."""
    return [STANDIN_PREFIX + n for n in available_standins()]


def is_standin(name: str) -> bool:
    return name.startswith(STANDIN_PREFIX) and name[len(STANDIN_PREFIX):] in available_standins()


def standin_source(kind: str, cfg: BuildConfig, seed: int = 0) -> ModelSource:
    """A trained stand-in model (``ae``, ``vae``, ``conv-ae``, ``conv-ae-dense``, ...)."""
    net, shape = standin_score_net(kind, seed=seed)
    onnx = export_onnx(net, shape)
    v = cfg.validation
    ref, _ = standin_samples(kind, max(20000, int(10 / min(v.p_values))), 1, seed=seed + 100)
    thresholds = calibrate_thresholds(onnx_scores(onnx, ref), v.p_values)
    bkg, sig = standin_samples(kind, v.n_events, v.n_signal, seed=seed + 1)
    prov = {"source": "stand-in synthetic sample (firmware/standin.py), regenerated here",
            "background": {"process": f"standin-{kind}", "seed": seed + 1,
                           "n_events": len(bkg)},
            "signal": {"process": f"standin-{kind} anomalies", "seed": seed + 1,
                       "n_events": len(sig)}}
    return ModelSource(STANDIN_PREFIX + kind, "0", get_standin(kind).model_kind,
                       net, shape, thresholds, (bkg,), (sig,), onnx=onnx,
                       note=f"stand-in {kind} trained on a synthetic sample (firmware/standin.py)",
                       validation=prov)


def resolve_model(ref: str, cfg: BuildConfig, registry: str | None = None) -> ModelSource:
    """Resolve ``MODEL[:VERSION]``: a ``standin-*`` name or a model of ``models.registry``."""
    name, version = parse_model_ref(ref)
    if is_standin(name):
        return standin_source(name[len(STANDIN_PREFIX):], cfg)
    try:
        return registered_source(name, version, cfg, registry)
    except ModelError as exc:
        raise FirmwareError(f"cannot build firmware for model '{ref}': {exc}") from exc


@dataclass
class BuildResult:
    source: ModelSource
    conversion: Conversion
    report: EmulationReport
    estimates: dict[float, ResourceEstimate] = field(default_factory=dict)
    synthesis: dict[str, Any] | None = None
    output_dir: Path = Path(".")
    trace: dict[str, float] | None = None  #: layer -> max |firmware - torch| (with trace)
    menu: Any = None  #: the build's L1 menu (``models.l1_emulator.L1Menu``; registered models)


def build(source: ModelSource, cfg: BuildConfig, output_dir: str | Path, synth: bool = False,
          check: bool = True, clocks_mhz: tuple[float, ...] = (40.0, 240.0),
          trace: bool = False) -> BuildResult:
    """Convert, compile, validate against serving, estimate; write the build folder.

    ``trace`` compiles the per-layer trace too and records, per layer, the max
    |firmware - torch| on the first 1000 held-out events (``BuildResult.trace``).
    """
    out = Path(output_dir)
    hls_dir = out / "hls"
    if hls_dir.exists():
        shutil.rmtree(hls_dir)
    conv = compile_emulation(convert(source.score_net, source.input_shape, cfg, hls_dir,
                                     trace=trace))
    sample, is_sig = source.sample()
    fw_in = source.fw_inputs(sample)
    fw = predict(conv, fw_in)
    sv = source.serve(sample)
    report = compare_scores(fw, sv, source.thresholds, is_sig, cfg.validation.min_agreement)
    clocks = sorted(set(clocks_mhz) | {cfg.clock_mhz})
    ests = {c: estimate(conv.hls_model, c, cfg.reuse_factor) for c in clocks}
    synthesis = synthesize(conv.hls_model) if synth else None
    result = BuildResult(source, conv, report, ests, synthesis, out)
    if trace:
        from hotline.firmware.precision import trace_differences

        result.trace = trace_differences(conv, [a[:1000] for a in fw_in])
    if source.card is not None:  # the L1 menu and the library the stream loads
        from hotline.firmware.l1_menu import write_l1_menu

        result.menu = write_l1_menu(source, conv, out)
    _write(result, cfg, fw, sv)
    if check:
        check_agreement(report, f"firmware build of {source.name}:{source.version}")
    return result


def _write(result: BuildResult, cfg: BuildConfig, fw: np.ndarray, sv: np.ndarray) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    src = Path(cfg.source)
    if src.is_file():
        shutil.copyfile(src, out / "config.yaml")
    s = result.source
    data = {
        "model": s.name, "version": s.version, "kind": s.kind, "note": s.note,
        "config": cfg.source, "part": cfg.resolved_part(), "clock_mhz": cfg.clock_mhz,
        "io_type": cfg.io_type, "strategy": cfg.strategy, "reuse_factor": cfg.reuse_factor,
        "precision": {"input": cfg.precision.input, "default": cfg.precision.default,
                      "accum": cfg.precision.accum, "score": cfg.precision.score},
        "dense_view_fixes": [list(f) for f in result.conversion.graph.view_fixes],
        "convert_s": result.conversion.convert_s, "compile_s": result.conversion.compile_s,
        "validation": s.validation,
        "emulation": result.report.to_dict(),
        "estimates": {f"{c:g}MHz": e.to_dict() for c, e in result.estimates.items()},
        "synthesis": result.synthesis,
        "trace_max_abs_diff": result.trace,
        "l1_menu": None if result.menu is None else {
            "file": "l1_menu.json", "build": result.menu.build, "library": result.menu.library,
            "score_type": result.menu.score_type,
            "seeds": [{"label": x.label, "p": x.p, "threshold": x.threshold, "fixed": x.fixed}
                      for x in result.menu.seeds]},
    }
    (out / "report.json").write_text(json.dumps(data, indent=2, default=float) + "\n")
    plot_scores(fw, sv, s.thresholds, out / "emulation.png",
                title=f"{s.name}:{s.version} {cfg.precision.default}")
