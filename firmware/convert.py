"""hls4ml conversion of Hotline's torch models into L1-trigger firmware projects.

This module owns three things:

* the reviewed build configuration (``firmware/configs/*.yaml``) as a typed
  :class:`BuildConfig`, and its translation into hls4ml's config dictionary
  (no other module builds hls4ml configs);
* the conversion of a *score network* (torch module, firmware inputs -> [n, 1]
  score). What the score network of a model is comes from its kind
  (``models.kinds``: the kind's ``firmware`` handler returns a ``FirmwarePlan``):
  the dense AE computes its own MSE score in firmware (``x - AE(x)`` twice,
  multiplied, summed by a fixed ``Linear(57, 1)`` with weights 1/57), the VAE goes
  as its mu-only encoder scoring ``sum(mu^2)`` (the mu head duplicated so hls4ml
  sees two inputs for the square), a conv-AE as its reconstruction MSE over the map;
* the known hls4ml 1.3.0 PyTorch front-end pitfalls: ``ConvTranspose2d``,
  ``Unflatten`` and ``torch.reshape`` are refused with a hint; a ``Linear``
  feeding ``view(-1, C, H, W)`` has its rows permuted to channels-last before
  conversion (hls4ml would otherwise silently mis-order the map); ``io_stream``
  is refused for conv AEs with a dense bottleneck.

g++ compiles of the emulation library run at ``nice 10``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import operator
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hotline.config import package_path
from hotline.errors import ConfigError, FirmwareError

log = logging.getLogger(__name__)

CONFIG_DIR = package_path("hotline.firmware", "configs")
#: precision of the constant weights of the score tail (1/n for a mean, 1 for a sum)
SCORE_WEIGHT_PRECISION = "ap_fixed<24,2,RND,SAT>"
#: an input called ``mask`` holds 0/1 feature flags: one bit, multiplications become ANDs
MASK_PRECISION = "ap_ufixed<1,1>"
_FIXED_RE = re.compile(r"^ap_u?fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(,\s*\w+\s*)*>$")


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PrecisionConfig:
    input: str = "ap_fixed<16,6,RND,SAT>"
    default: str = "ap_fixed<16,6,RND,SAT>"
    accum: str = "auto"
    score: str = "ap_fixed<26,8,RND,SAT>"
    layers: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationConfig:
    n_events: int = 20000
    n_signal: int = 5000
    p_values: tuple[float, ...] = (0.01, 0.001, 0.0001)
    min_agreement: float = 0.999


@dataclass(frozen=True)
class ScanConfig:
    widths: tuple[int, ...] = (8, 10, 12, 14, 16, 18)
    integers: tuple[int, ...] = (3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class BuildConfig:
    """One reviewed firmware build configuration (a YAML file under ``firmware/configs``)."""

    target: str = "vu13p"
    part: str | None = None
    clock_mhz: float = 240.0
    io_type: str = "io_parallel"
    strategy: str = "Latency"
    reuse_factor: int = 1
    #: entries of the lookup tables of tanh / sigmoid / softmax layers (hls4ml default 1024)
    table_size: int = 1024
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    source: str = "<defaults>"

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    def resolved_part(self) -> str:
        from hotline.firmware.targets import get_target

        return self.part or get_target(self.target).part

    def with_precision(self, default: str) -> BuildConfig:
        """The same configuration with another default (weights/results) precision."""
        from dataclasses import replace

        return replace(self, precision=replace(self.precision, default=default))


def _check_precision(value: str, where: str) -> str:
    if value == "auto" or _FIXED_RE.match(value.replace(" ", "")):
        return value.replace(" ", "")
    raise ConfigError(f"{where}: '{value}' is not an ap_fixed<W,I,...>/ap_ufixed type or 'auto'")


def _section(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    out = dict(data)
    for k in ("p_values", "widths", "integers"):
        if k in out:
            out[k] = tuple(out[k])
    return cls(**out)


def load_build_config(path: str | Path | None = None, model: str | None = None,
                      config_dir: str | Path = CONFIG_DIR) -> BuildConfig:
    """Load a build configuration.

    ``path`` wins; otherwise ``<config_dir>/<model>.yaml`` when it exists, else
    ``<config_dir>/default.yaml``. Unknown keys and malformed types are refused.
    """
    if path is None:
        d = Path(config_dir)
        cand = d / f"{model}.yaml" if model else None
        path = cand if cand is not None and cand.exists() else d / "default.yaml"
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"firmware configuration {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"firmware configuration {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"firmware configuration {p}: top level must be a mapping")
    top = {f.name for f in fields(BuildConfig)} - {"source"}
    unknown = set(data) - top
    if unknown:
        raise ConfigError(f"firmware configuration {p}: unknown key(s) "
                          f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(top))}")
    prec = _section(PrecisionConfig, data.get("precision"), f"{p} [precision]")
    for k in ("input", "default", "accum", "score"):
        _check_precision(getattr(prec, k), f"{p} [precision] {k}")
    for lname, lp in (prec.layers or {}).items():
        for k, v in (lp or {}).items():
            _check_precision(v, f"{p} [precision.layers.{lname}] {k}")
    cfg = BuildConfig(
        target=str(data.get("target", "vu13p")),
        part=data.get("part"),
        clock_mhz=float(data.get("clock_mhz", 240.0)),
        io_type=str(data.get("io_type", "io_parallel")),
        strategy=str(data.get("strategy", "Latency")),
        reuse_factor=int(data.get("reuse_factor", 1)),
        table_size=int(data.get("table_size", 1024)),
        precision=prec,
        validation=_section(ValidationConfig, data.get("validation"), f"{p} [validation]"),
        scan=_section(ScanConfig, data.get("scan"), f"{p} [scan]"),
        source=str(p),
    )
    if cfg.io_type not in ("io_parallel", "io_stream"):
        raise ConfigError(f"{p}: io_type must be io_parallel or io_stream, not {cfg.io_type!r}")
    if cfg.strategy not in ("Latency", "Resource"):
        raise ConfigError(f"{p}: strategy must be Latency or Resource, not {cfg.strategy!r}")
    if cfg.table_size < 2 or cfg.table_size & (cfg.table_size - 1):
        raise ConfigError(f"{p}: table_size must be a power of two >= 2, not {cfg.table_size}")
    if cfg.reuse_factor < 1 or cfg.clock_mhz <= 0:
        raise ConfigError(f"{p}: reuse_factor must be >= 1 and clock_mhz > 0")
    if not 0 < cfg.validation.min_agreement <= 1:
        raise ConfigError(f"{p}: validation.min_agreement must be in (0, 1]")
    return cfg


def fixed(width: int, integer: int, signed: bool = True, mode: str = "RND,SAT") -> str:
    """``ap_fixed<W,I,RND,SAT>`` (the scan's types: round, saturate)."""
    return f"ap_{'' if signed else 'u'}fixed<{width},{integer},{mode}>"


def parse_fixed(t: str) -> tuple[int, int]:
    """(width, integer bits) of an ``ap_fixed`` type string."""
    m = _FIXED_RE.match(t.replace(" ", ""))
    if not m:
        raise ConfigError(f"'{t}' is not an ap_fixed<W,I> type")
    return int(m.group(1)), int(m.group(2))


# ----------------------------------------------------------------------------- torch


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a pinned dependency
        raise FirmwareError("firmware builds need torch: pip install torch") from exc
    return torch


# ----------------------------------------------------------------------------- pitfalls

_ELEMENTWISE = ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "ELU", "Dropout", "Identity")
_REFUSED_MODULES = {
    "ConvTranspose1d": "use nn.Upsample followed by nn.Conv2d instead",
    "ConvTranspose2d": "use nn.Upsample(scale_factor=k) followed by nn.Conv2d instead",
    "Unflatten": "use x.view(-1, C, H, W) instead",
}


@dataclass
class GraphReport:
    """What :func:`inspect_graph` found in a torch model's traced graph."""

    view_fixes: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)
    has_conv: bool = False
    dense_bottleneck: bool = False
    score_nodes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)


def _trace(model: Any) -> Any:
    import torch.fx

    try:
        return torch.fx.symbolic_trace(model)
    except Exception as exc:  # torch.fx raises many types
        raise FirmwareError(
            f"cannot trace the model with torch.fx for hls4ml ({type(exc).__name__}: {exc}); "
            "data-dependent control flow is not convertible to firmware"
        ) from exc


def inspect_graph(model: Any) -> GraphReport:
    """Refuse what hls4ml 1.3.0 rejects or mis-converts; list Linear -> view fixes needed."""
    torch = _torch()
    gm = _trace(model)
    mods = dict(gm.named_modules())
    rep = GraphReport()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            rep.inputs.append(node.name)
        elif node.op == "call_module":
            kind = type(mods[node.target]).__name__
            if kind in _REFUSED_MODULES:
                raise FirmwareError(
                    f"layer '{node.target}' ({kind}) is rejected by the hls4ml 1.3.0 PyTorch "
                    f"front end; {_REFUSED_MODULES[kind]}"
                )
            if kind.startswith("Conv"):
                rep.has_conv = True
            if node.target.startswith("score_"):
                rep.score_nodes.append(node.name)
        elif node.op in ("call_function", "call_method"):
            fn = node.target
            if fn in (torch.reshape, "reshape"):
                raise FirmwareError(
                    f"'{node.name}' uses torch.reshape, which the hls4ml 1.3.0 PyTorch front end "
                    "rejects; use x.view(-1, C, H, W) instead"
                )
            if fn in (operator.sub, operator.mul, operator.add, torch.sub, torch.mul, "sub", "mul"):
                rep.score_nodes.append(node.name)
            if fn == "view" and len(node.args) == 5:
                src = node.args[0]
                while (src.op == "call_module"
                       and type(mods[src.target]).__name__ in _ELEMENTWISE):
                    src = src.args[0]
                if src.op == "call_module" and isinstance(mods[src.target], torch.nn.Linear):
                    chw = tuple(int(a) for a in node.args[2:5])
                    rep.view_fixes.append((str(src.target), chw))
                    rep.dense_bottleneck = True
    return rep


def channels_last_permutation(c: int, h: int, w: int) -> Any:
    """Index array ``perm`` with ``flat_hwc = flat_chw[perm]``."""
    import numpy as np

    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def permute_dense_for_view(model: Any, fixes: list[tuple[str, tuple[int, int, int]]]) -> Any:
    """A copy of ``model`` whose Linears feeding ``view(-1,C,H,W)`` emit channels-last rows.

    hls4ml converts the view into a channels-last reshape of the flat Dense output
    without reordering it; permuting the rows (weights and bias) makes the
    firmware's (H, W, C) map equal torch's (C, H, W) map. The returned copy is for
    conversion only: in torch it is no longer the same function.
    """
    torch = _torch()
    if not fixes:
        return model
    out = copy.deepcopy(model)
    mods = dict(out.named_modules())
    for name, (c, h, w) in fixes:
        lin = mods[name]
        if lin.out_features != c * h * w:
            raise FirmwareError(f"Linear '{name}' has {lin.out_features} outputs but feeds "
                                f"view(-1, {c}, {h}, {w})")
        perm = torch.as_tensor(channels_last_permutation(c, h, w))
        with torch.no_grad():
            lin.weight.copy_(lin.weight[perm])
            if lin.bias is not None:
                lin.bias.copy_(lin.bias[perm])
        log.info("permuted rows of Linear '%s' to channels-last for view(-1,%d,%d,%d)",
                 name, c, h, w)
    return out


# ----------------------------------------------------------------------------- hls4ml


def _hls4ml():
    try:
        import hls4ml
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise FirmwareError("firmware builds need hls4ml: pip install hls4ml==1.3.0") from exc
    return hls4ml


def hls_config(model: Any, input_shape: Any, cfg: BuildConfig,
               graph: GraphReport | None = None, trace: bool = False) -> dict[str, Any]:
    """Translate a :class:`BuildConfig` into hls4ml's per-layer config dictionary."""
    hls4ml = _hls4ml()
    prec = cfg.precision
    shapes = _shapes(input_shape)
    hc = hls4ml.utils.config_from_pytorch_model(
        model, shapes if len(shapes) > 1 else shapes[0], granularity="name", backend="Vitis",
        default_precision=prec.default, default_reuse_factor=cfg.reuse_factor,
    )
    hc["Model"]["Strategy"] = cfg.strategy
    hc["Model"]["ReuseFactor"] = cfg.reuse_factor
    graph = graph or inspect_graph(model)
    score, inputs = set(graph.score_nodes), set(graph.inputs)
    for lname, lc in hc["LayerName"].items():
        if "TableSize" in lc:  # activation lookup tables (tanh, sigmoid, softmax)
            lc["TableSize"] = cfg.table_size
        p = lc.get("Precision")
        if not isinstance(p, dict):
            continue
        if lname in inputs:
            p["result"] = MASK_PRECISION if lname == "mask" else prec.input
        elif lname in score:
            for k in p:
                if k in ("result", "accum"):
                    p[k] = prec.score
                elif k in ("weight", "bias"):
                    # fixed 1/n or 1 weights of the score sum: keep them (nearly) exact
                    p[k] = SCORE_WEIGHT_PRECISION
        else:
            for k in p:
                if k in ("result", "weight", "bias"):
                    p[k] = prec.default
                elif k == "accum":
                    p[k] = prec.accum
        p.update(prec.layers.get(lname, {}))
        lc["Trace"] = bool(trace)
    return hc


@dataclass
class Conversion:
    """A converted (and possibly compiled) hls4ml model with what it took."""

    hls_model: Any
    torch_model: Any  #: the torch model actually converted (after pitfall fixes)
    input_shape: Any  #: one shape, or a list of shapes for several inputs
    config: BuildConfig
    graph: GraphReport
    output_dir: Path
    convert_s: float = 0.0
    compile_s: float = 0.0


def convert(model: Any, input_shape: Any, cfg: BuildConfig,
            output_dir: str | Path, trace: bool = False) -> Conversion:
    """Convert a torch score network with hls4ml into a Vitis HLS project (not compiled)."""
    hls4ml = _hls4ml()
    t0 = time.perf_counter()
    model = model.eval()
    graph = inspect_graph(model)
    if graph.has_conv and graph.dense_bottleneck and cfg.io_type == "io_stream":
        raise FirmwareError(
            "io_stream fails in hls4ml 1.3.0 for conv autoencoders with a dense bottleneck "
            f"(Linear feeding view(): {', '.join(n for n, _ in graph.view_fixes)}); "
            f"set io_type: io_parallel in {cfg.source}"
        )
    prepared = permute_dense_for_view(model, graph.view_fixes)
    hc = hls_config(prepared, input_shape, cfg, graph, trace=trace)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    chatter = io.StringIO()  # hls4ml prints its topology to stdout; keep it in the log
    try:
        with contextlib.redirect_stdout(chatter):
            hm = hls4ml.converters.convert_from_pytorch_model(
                prepared, hls_config=hc, output_dir=str(out), backend="Vitis",
                io_type=cfg.io_type, part=cfg.resolved_part(),
                clock_period=round(cfg.clock_period_ns, 3),
            )
    except FirmwareError:
        raise
    except Exception as exc:  # hls4ml raises bare Exceptions / asserts
        raise FirmwareError(f"hls4ml could not convert the model into {out}: "
                            f"{type(exc).__name__}: {exc}") from exc
    log.debug("hls4ml: %s", chatter.getvalue())
    return Conversion(hm, prepared, input_shape, cfg, graph, out,
                      convert_s=time.perf_counter() - t0)


def compile_emulation(conv: Conversion) -> Conversion:
    """Write the project and compile its bit-accurate C++ emulation with g++ (at nice 10)."""
    import subprocess

    t0 = time.perf_counter()
    hm = conv.hls_model
    with contextlib.redirect_stdout(io.StringIO()):
        hm.write()
    script = conv.output_dir / "build_lib.sh"
    text = script.read_text()
    if "CC=g++" in text:
        script.write_text(text.replace("CC=g++", 'CC="nice -n 10 g++"', 1))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            hm._compile()
    except Exception as exc:
        proc = subprocess.run(["bash", str(script)], cwd=conv.output_dir, text=True,
                              capture_output=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise FirmwareError(f"g++ failed to compile the emulation in {conv.output_dir}: "
                            f"{exc}; {' | '.join(tail)}") from exc
    conv.compile_s = time.perf_counter() - t0
    log.info("compiled emulation %s in %.1f s", conv.output_dir, conv.compile_s)
    return conv


def predict(conv: Conversion, x: Any) -> Any:
    """Scores of the compiled emulation, shape [n]; ``x`` is one array or a list (one per input)."""
    import numpy as np

    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    shapes = _shapes(conv.input_shape)
    prepared = []
    for arr, shape in zip(xs, shapes):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if len(shape) > 1:  # conv inputs: torch (C,H,W) -> hls4ml channels-last
            arr = np.ascontiguousarray(np.moveaxis(arr, 1, -1))
        prepared.append(arr)
    y = conv.hls_model.predict(prepared if len(prepared) > 1 else prepared[0])
    return np.asarray(y, dtype=np.float64).reshape(len(prepared[0]), -1)[:, 0]


def _shapes(input_shape: Any) -> list[tuple[int, ...]]:
    """A list of input shapes from one shape ``(57,)`` or a list ``[(57,), (57,)]``."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]
