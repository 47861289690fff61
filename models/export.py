"""ONNX export of the event model kinds: one self-contained scoring graph per registered model.

This module holds the ``export`` handlers of the kinds ``ae``, ``vae`` and ``ensemble``
(``models.kinds``): ``export_ae``, ``export_vae``, ``export_ensemble``; each writes the
common graph below around its own network part (a ``Network`` emitter), so a new event kind
exports with ``export_graph(model, path, its_network, ...)``. ``export_onnx`` exports any
event model through its kind. Torch side: serving never imports this module.

The graph is written directly with ``onnx.helper`` from the trained torch
weights (no exporter dependency; BatchNorm folded into the preceding Gemm), and
it **bakes in the normalisation and the loss decomposition**, so serving is a
single onnxruntime call on raw features::

    inputs : x    float32 [N, F]   raw features (FeatureMatrix.x)
             mask bool    [N, O]   True = real object (FeatureMatrix.mask)
    outputs: per_feature [N, F]   masked squared error / F   (normalised space)
             per_object  [N, O]   per_feature summed over (pt, eta, phi)
             per_type    [N, K]   per_object summed over object types
             total       [N]      reconstruction MSE = sum of per_object
             kl, mu2     [N]      VAE only: KL divergence, AXOL1TL mu^2 sum

Normalisation in the graph is exactly ``models.normalise.Normaliser``
(phi from the MET direction when ``phi_frame = "met"``, log10 of pT columns for
the log-pT scheme, then (u - offset) * scale, padded slots -> 0).
``reference_scores`` computes the same numbers with numpy + torch; the tests
require agreement to 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hotline.detectors.spec import FeatureSpec
from hotline.errors import ModelError
from hotline.models.kinds import get_model_kind
from hotline.models.normalise import PT_FLOOR, Normaliser

OPSET = 17


def _linear_layers(seq: Any) -> list[tuple[str, Any]]:
    """Flatten an nn.Sequential into [("gemm", (W, b)), ("act", (name, alpha))] with BN folded."""
    from torch import nn

    out: list[tuple[str, Any]] = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append(("gemm", [m.weight.detach().double().numpy().copy(),
                                 m.bias.detach().double().numpy().copy()]))
        elif isinstance(m, nn.BatchNorm1d):
            if not out or out[-1][0] != "gemm":
                raise ModelError("BatchNorm must follow a Linear layer to be folded")
            if m.running_mean is None or m.running_var is None:
                raise ModelError("BatchNorm without running statistics cannot be folded")
            w, b = out[-1][1]
            g = m.weight.detach().double().numpy()
            beta = m.bias.detach().double().numpy()
            mean = m.running_mean.detach().double().numpy()
            var = m.running_var.detach().double().numpy()
            s = g / np.sqrt(var + m.eps)
            out[-1] = ("gemm", [w * s[:, None], (b - mean) * s + beta])
        elif isinstance(m, nn.ReLU):
            out.append(("act", ("Relu", None)))
        elif isinstance(m, nn.Tanh):
            out.append(("act", ("Tanh", None)))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("act", ("LeakyRelu", float(m.negative_slope))))
        elif isinstance(m, nn.ELU):
            out.append(("act", ("Elu", float(m.alpha))))
        else:
            raise ModelError(f"cannot export layer {type(m).__name__} to ONNX")
    return out


class OnnxGraph:
    """Tiny builder around onnx.helper: unique names, constants, nodes."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def const(self, value: np.ndarray | np.generic, base: str = "c") -> str:
        from onnx import numpy_helper

        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        o = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [o], **attrs))
        return o

    def dense(self, x: str, layers: list[tuple[str, Any]]) -> str:
        for kind, p in layers:
            if kind == "gemm":
                w, b = p
                x = self.op("Gemm", [x, self.const(w.astype(np.float32), "W"),
                                     self.const(b.astype(np.float32), "B")], transB=1)
            else:
                op_type, alpha = p
                x = self.op(op_type, [x], alpha=alpha) if alpha is not None else self.op(
                    op_type, [x])
        return x


#: the network part of an event scoring graph: (graph, torch module, name of the normalised
#: input [N, F]) -> (name of the squared error [N, F] before masking, extra output names);
#: the extra outputs (e.g. "kl", "mu2") are [N] tensors the emitter names itself
Network = Callable[[OnnxGraph, Any, str], tuple[str, list[str]]]


def _ae_recon(g: OnnxGraph, ae: Any, xn: str) -> str:
    """Nodes of one dense AE's reconstruction of ``xn``."""
    h = g.dense(xn, _linear_layers(ae.encoder))
    z = g.dense(h, _linear_layers([ae.to_latent]))
    return g.dense(z, _linear_layers(ae.decoder))


def ae_network(g: OnnxGraph, model: Any, xn: str) -> tuple[str, list[str]]:
    """Kind ``ae``: squared error of one dense AE's reconstruction."""
    d = g.op("Sub", [_ae_recon(g, model, xn), xn])
    return g.op("Mul", [d, d]), []


def vae_network(g: OnnxGraph, model: Any, xn: str) -> tuple[str, list[str]]:
    """Kind ``vae``: squared error of decode(mu), plus the ``kl`` and ``mu2`` outputs."""
    h = g.dense(xn, _linear_layers(model.encoder))
    mu = g.dense(h, _linear_layers([model.mu]))
    lv = g.dense(h, _linear_layers([model.logvar]))
    recon = g.dense(mu, _linear_layers(model.decoder))
    mu_sq = g.op("Mul", [mu, mu])
    axis1 = g.const(np.array([1], np.int64))
    g.op("ReduceSum", [mu_sq, axis1], out="mu2", keepdims=0)
    inner = g.op("Sub", [g.op("Sub", [g.op("Add", [lv, g.const(np.float32(1.0))]), mu_sq]),
                         g.op("Exp", [lv])])
    g.op("Mul", [g.op("ReduceSum", [inner, axis1], keepdims=0), g.const(np.float32(-0.5))],
         out="kl")
    d = g.op("Sub", [recon, xn])
    return g.op("Mul", [d, d]), ["kl", "mu2"]


def ensemble_network(g: OnnxGraph, model: Any, xn: str) -> tuple[str, list[str]]:
    """Kind ``ensemble``: mean over the members of their squared errors."""
    acc: str | None = None
    for member in model.members:
        d = g.op("Sub", [_ae_recon(g, member, xn), xn])
        sq = g.op("Mul", [d, d])
        acc = sq if acc is None else g.op("Add", [acc, sq])
    if acc is None:
        raise ModelError("an ensemble without members cannot be exported")
    return g.op("Mul", [acc, g.const(np.float32(1.0 / len(model.members)))]), []


def build_scoring_graph(
    model: Any, normaliser: Normaliser, spec: FeatureSpec, network: Network,
    name: str = "hotline",
) -> Any:
    """The onnx.ModelProto of the scoring graph of ``model`` with its ``network`` part."""
    from onnx import TensorProto, checker, helper

    model.eval()
    f, o = spec.n_features, spec.n_objects
    if normaliser.n_features != f or model.arch["n_inputs"] != f:
        raise ModelError(
            f"model ({model.arch['n_inputs']} inputs), normalisation ({normaliser.n_features}) "
            f"and feature spec '{spec.name}' ({f}) disagree"
        )
    types = spec.object_type_index()
    k = len(spec.object_types)
    tmat = np.zeros((o, k), np.float32)
    tmat[np.arange(o), types] = 1.0

    # object mask -> feature mask with one small MatMul (much faster in onnxruntime than
    # broadcasting a [N, O, 1] tensor); the loss scale 1/F rides along in ``fm_loss``
    expand = np.zeros((o, f), np.float32)
    for j in range(o):
        expand[j, 3 * j:3 * j + 3] = 1.0
    g = OnnxGraph()
    mf = g.op("Cast", ["mask"], to=TensorProto.FLOAT)
    fm_loss = g.op("MatMul", [mf, g.const(expand / f)])
    xin = "x"
    if normaliser.phi_frame == "met":  # phi from the MET direction, wrapped to [-pi, pi)
        phi_cols = list(range(2, f, 3))
        sel_phi = np.zeros((f, o), np.float32)
        sel_phi[phi_cols, np.arange(o)] = 1.0
        e_met = np.zeros((f, 1), np.float32)
        e_met[2, 0] = 1.0
        two_pi = np.float32(2.0) * np.float32(np.pi)
        d = g.op("Sub", [g.op("MatMul", ["x", g.const(sel_phi)]),
                         g.op("MatMul", ["x", g.const(e_met)])])
        turns = g.op("Floor", [g.op("Div", [g.op("Add", [d, g.const(np.float32(np.pi))]),
                                            g.const(two_pi)])])
        wrapped = g.op("Sub", [d, g.op("Mul", [turns, g.const(two_pi)])])
        keep = np.ones(f, np.float32)
        keep[phi_cols] = 0.0
        xin = g.op("Add", [g.op("Mul", ["x", g.const(keep)]),
                           g.op("MatMul", [wrapped, g.const(sel_phi.T.copy())])])
    # normalisation, with log10 and (u - offset) * scale folded into one slope/intercept
    slope = normaliser.scale.astype(np.float64).copy()
    icept = -normaliser.offset.astype(np.float64) * normaliser.scale
    cols = list(normaliser.pt_columns) if normaliser.log_pt else []
    rest_cols = [c for c in range(f) if c % 3]
    if cols and cols == list(range(0, f, 3)) and not icept[rest_cols].any():
        # log-pT scheme on (pt, eta, phi) triplets, written without strided slicing/concat
        # (Split + Concat cost ~25 % of the graph): pT = x @ select [F, O] (a 0/1 MatMul),
        # eta/phi = x * (mask @ slopes) with the pT columns' slope 0, and the normalised
        # pT goes back to its columns with npt @ select.T. Same numbers, ~15 % faster.
        slope[cols] = slope[cols] / np.log(10.0)
        select = np.zeros((f, o), np.float32)
        select[cols, np.arange(o)] = 1.0
        rest_slope = np.zeros(f, np.float64)
        rest_slope[rest_cols] = slope[rest_cols]
        pt = g.op("MatMul", [xin, g.const(select)])
        lpt = g.op("Log", [g.op("Clip", [pt, g.const(np.float32(PT_FLOOR))])])
        npt = g.op("Mul", [g.op("Add", [g.op("Mul", [lpt, g.const(slope[cols].astype(
            np.float32))]), g.const(icept[cols].astype(np.float32))]), mf])
        fm_rest = g.op("MatMul", [mf, g.const((expand * rest_slope[None, :]).astype(
            np.float32))])
        xn = g.op("Add", [g.op("Mul", [xin, fm_rest]),
                          g.op("MatMul", [npt, g.const(select.T.copy())])])
    else:
        fm = g.op("MatMul", [mf, g.const(expand)])
        x = xin
        if cols:
            sel = np.zeros(f, bool)
            sel[cols] = True
            slope[cols] = slope[cols] / np.log(10.0)
            logged = g.op("Log", [g.op("Clip", [x, g.const(np.float32(PT_FLOOR))])])
            x = g.op("Where", [g.const(sel), logged, x])
        u = g.op("Add", [g.op("Mul", [x, g.const(slope.astype(np.float32))]),
                         g.const(icept.astype(np.float32))])
        xn = g.op("Mul", [u, fm])

    sq, extra = network(g, model, xn)
    outputs = ["per_feature", "per_object", "per_type", "total", *extra]
    per_feature = g.op("Mul", [sq, fm_loss], out="per_feature")
    per_obj = g.op("MatMul", [per_feature, g.const(expand.T.copy())], out="per_object")
    per_type = g.op("MatMul", [per_obj, g.const(tmat)], out="per_type")
    # total = sum over the K types (4 columns, not 19): the same sum, fewer reads
    g.op("ReduceSum", [per_type, g.const(np.array([1], np.int64))], out="total", keepdims=0)

    shapes: dict[str, list[str | int]] = {"per_feature": ["N", f], "per_object": ["N", o],
                                          "per_type": ["N", k]}
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", f]),
         helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", o])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes.get(n, ["N"]))
         for n in outputs],
        g.inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hotline")
    proto.ir_version = 8
    checker.check_model(proto)
    return proto


def export_graph(
    model: Any, path: str | Path, network: Network, *, normaliser: Normaliser,
    spec: FeatureSpec, name: str = "hotline",
) -> Path:
    """Write the scoring graph of ``model`` with its ``network`` part to ``path``."""
    proto = build_scoring_graph(model, normaliser, spec, network, name=name)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(proto.SerializeToString())
    return p


def export_ae(model: Any, path: str | Path, *, normaliser: Normaliser, spec: FeatureSpec,
              name: str = "hotline") -> Path:
    """Export handler of kind ``ae``."""
    return export_graph(model, path, ae_network, normaliser=normaliser, spec=spec, name=name)


def export_vae(model: Any, path: str | Path, *, normaliser: Normaliser, spec: FeatureSpec,
               name: str = "hotline") -> Path:
    """Export handler of kind ``vae`` (outputs ``kl`` and ``mu2`` too)."""
    return export_graph(model, path, vae_network, normaliser=normaliser, spec=spec, name=name)


def export_ensemble(model: Any, path: str | Path, *, normaliser: Normaliser, spec: FeatureSpec,
                    name: str = "hotline") -> Path:
    """Export handler of kind ``ensemble``."""
    return export_graph(model, path, ensemble_network, normaliser=normaliser, spec=spec,
                        name=name)


def export_onnx(
    model: Any, normaliser: Normaliser, spec: FeatureSpec, path: str | Path, name: str = "hotline"
) -> Path:
    """Write the scoring graph of the event model ``model`` to ``path`` (its kind's handler)."""
    return get_model_kind(model.kind).export_onnx(model, path, normaliser=normaliser, spec=spec,
                                                  name=name)


def reference_scores(
    model: Any, normaliser: Normaliser, x: np.ndarray, mask: np.ndarray
) -> dict[str, np.ndarray]:
    """Torch (+ numpy normalisation) scores of raw features: the parity reference for ONNX."""
    import torch

    from hotline.models.nets import feature_mask, torch_scores

    model.eval()
    xn = torch.from_numpy(normaliser.transform(x, mask))
    fm = feature_mask(torch.from_numpy(mask), x.shape[1])
    with torch.no_grad():
        s = torch_scores(model, xn, fm)
    return {k: v.numpy() for k, v in s.items()}
