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
    outputs: sq_by_field [N, F]   squared error in normalised space, in the permuted order
                                  (all pT, all eta, all phi columns), unmasked
             per_object  [N, O]   masked squared error / F summed over (pt, eta, phi)
             per_type    [N, K]   per_object summed over object types
             total       [N]      reconstruction MSE = sum of per_object
             kl, mu2     [N]      VAE only: KL divergence, AXOL1TL mu^2 sum

The network runs on the permuted features, the permutation folded into its first and last
Gemms (``InputFold``); the normalisation's scale and offset ride in the MatMuls that take the
raw features to that order (on the pT block: a scale before the log). The per-feature losses
(masked squared error / F in the features' order) are derived from ``sq_by_field`` by the
scorer when read. Graphs exported before this layout output ``per_feature`` instead; the
scorer reads both (``models.scorer``).

Normalisation in the graph is exactly ``models.normalise.Normaliser``
(phi from the MET direction when ``phi_frame = "met"``, log10 of pT columns for
the log-pT scheme, then (u - offset) * scale, padded slots -> 0).
``reference_scores`` computes the same numbers with numpy + torch; the tests
require agreement to 1e-5 (and with the ``onnx.reference`` evaluator).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class InputFold:
    """The permutation of the network input, folded into the first and last Gemms.

    The graph feeds the network the normalised features ``input`` [N, F] in the order
    ``perm`` (all pT columns, then all eta, then all phi: ``input[:, p] = xn[:, perm[p]]``):
    a Gemm reading it takes the columns ``W[:, perm]``, and the Gemm writing the
    reconstruction the rows ``W[perm]``, ``b[perm]``, so the network is the trained one.
    """

    input: str
    perm: np.ndarray

    def first(self, w: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        return [w[:, self.perm], b]

    def last(self, w: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        return [w[self.perm], b[self.perm]]


class OnnxGraph:
    """Tiny builder around onnx.helper: unique names, constants, nodes; the input fold."""

    def __init__(self, fold: InputFold | None = None) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.k = 0
        self.fold = fold

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

    def dense(self, x: str, layers: list[tuple[str, Any]], recon: bool = False) -> str:
        """Gemms and activations on ``x``. A first Gemm reading the network input takes the
        input fold; with ``recon`` (the stack writes the reconstruction of the input: its
        last layer is a Gemm) the last Gemm takes its inverse."""
        fold = self.fold
        layers = list(layers)
        if fold is not None and x == fold.input and layers and layers[0][0] == "gemm":
            layers[0] = ("gemm", fold.first(*layers[0][1]))
        if fold is not None and recon:
            if not layers or layers[-1][0] != "gemm":
                raise ModelError("a reconstruction must end with a Linear layer to be exported")
            layers[-1] = ("gemm", fold.last(*layers[-1][1]))
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


#: the network part of an event scoring graph: (graph, torch module, name of the network
#: input [N, F]) -> (name of its squared error [N, F] before masking, extra output names);
#: the extra outputs (e.g. "kl", "mu2") are [N] tensors the emitter names itself. An emitter
#: marked ``folds_input = True`` builds its Gemms with ``OnnxGraph.dense`` (``recon=True`` for
#: the stack writing the reconstruction) and gets the folded input (``InputFold``); any other
#: gets the normalised features in their own order.
Network = Callable[[OnnxGraph, Any, str], tuple[str, list[str]]]


def _ae_recon(g: OnnxGraph, ae: Any, xn: str) -> str:
    """Nodes of one dense AE's reconstruction of ``xn``."""
    h = g.dense(xn, _linear_layers(ae.encoder))
    z = g.dense(h, _linear_layers([ae.to_latent]))
    return g.dense(z, _linear_layers(ae.decoder), recon=True)


def ae_network(g: OnnxGraph, model: Any, xn: str) -> tuple[str, list[str]]:
    """Kind ``ae``: squared error of one dense AE's reconstruction."""
    d = g.op("Sub", [_ae_recon(g, model, xn), xn])
    return g.op("Mul", [d, d]), []


def vae_network(g: OnnxGraph, model: Any, xn: str) -> tuple[str, list[str]]:
    """Kind ``vae``: squared error of decode(mu), plus the ``kl`` and ``mu2`` outputs."""
    h = g.dense(xn, _linear_layers(model.encoder))
    mu = g.dense(h, _linear_layers([model.mu]))
    lv = g.dense(h, _linear_layers([model.logvar]))
    recon = g.dense(mu, _linear_layers(model.decoder), recon=True)
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


for _net in (ae_network, vae_network, ensemble_network):
    _net.folds_input = True  # type: ignore[attr-defined]


def _network_input(g: OnnxGraph, normaliser: Normaliser, f: int, o: int, mask3: str) -> str:
    """Nodes turning the raw ``x`` into the normalised features in the permuted order (all
    pT, then all eta, then all phi columns; padded slots 0). The permutation and the affine
    normalisation are one MatMul (a Gemm where a column has an offset) per block of columns;
    on the pT block the offset and the 1/ln 10 of log10 ride in a scale before the log."""
    cols = [np.arange(c, f, 3) for c in range(3)]
    scale = normaliser.scale.astype(np.float64)
    icept = -normaliser.offset.astype(np.float64) * scale
    logged = np.zeros(f, bool)
    if normaliser.log_pt:
        logged[list(normaliser.pt_columns)] = True
    pt_log = bool(logged[cols[0]].all() and logged.sum() == o)
    met = normaliser.phi_frame == "met"

    def select(idx: np.ndarray, mult: np.ndarray, add: np.ndarray | None) -> str:
        """x[:, idx] * mult (+ add) as one MatMul / Gemm."""
        w = np.zeros((f, idx.size))
        w[idx, np.arange(idx.size)] = mult
        if add is None or not add.any():
            return g.op("MatMul", ["x", g.const(w.astype(np.float32))])
        return g.op("Gemm", ["x", g.const(w.astype(np.float32)),
                             g.const(add.astype(np.float32))])

    def vector_or_scalar(v: np.ndarray) -> str:
        return g.const(np.float32(v[0]) if np.all(v == v[0]) else v.astype(np.float32))

    parts: list[str] = []
    if pt_log:  # (log10 max(pT, floor) - a) * b = ln(max(pT, floor) * k) * b / ln 10
        pt = cols[0]
        slope = scale[pt] / np.log(10.0)
        k = np.exp(icept[pt] / slope)
        ok = np.isfinite(k).all() and (k > 0).all() and np.all(slope != 0)
        if ok:
            u = g.op("Log", [g.op("Max", [select(pt, k, None),
                                          vector_or_scalar(PT_FLOOR * k)])])
            parts.append(g.op("Mul", [u, vector_or_scalar(slope)]))
        else:  # a zero scale: the plain formula
            u = g.op("Log", [g.op("Max", [select(pt, np.ones(o), None),
                                          g.const(np.float32(PT_FLOOR))])])
            parts.append(g.op("Add", [g.op("Mul", [u, g.const(slope.astype(np.float32))]),
                                      g.const(icept[pt].astype(np.float32))]))
        rest = [cols[1], cols[2]]
    else:
        rest = cols
    plain = [c for c in rest if not (met and c is cols[2])]
    if plain and not (logged.any() and not pt_log):
        idx = np.concatenate(plain)
        parts.append(select(idx, scale[idx], icept[idx]))
    elif plain:  # log10 of another set of columns: per column, in the permuted order
        idx = np.concatenate(plain)
        raw = select(idx, np.ones(idx.size), None)
        lg = g.const(logged[idx])
        u = g.op("Where", [lg, g.op("Mul", [g.op("Log", [g.op("Max", [
            raw, g.const(np.float32(PT_FLOOR))])]), g.const(np.float32(1 / np.log(10.0)))]),
            raw])
        parts.append(g.op("Add", [g.op("Mul", [u, g.const(scale[idx].astype(np.float32))]),
                                  g.const(icept[idx].astype(np.float32))]))
    if met:  # phi from the MET direction (column 2), wrapped to [-pi, pi), then normalised
        phi = cols[2]
        raw = select(phi, np.ones(o), None)
        pi, two_pi = np.float32(np.pi), np.float32(2.0) * np.float32(np.pi)
        met_phi = g.op("Slice", [raw, g.const(np.array([0], np.int64)),
                                 g.const(np.array([1], np.int64)),
                                 g.const(np.array([1], np.int64))])
        d = g.op("Sub", [raw, met_phi])
        turns = g.op("Floor", [g.op("Div", [g.op("Add", [d, g.const(pi)]), g.const(two_pi)])])
        u = g.op("Sub", [d, g.op("Mul", [turns, g.const(two_pi)])])
        parts.append(g.op("Add", [g.op("Mul", [u, g.const(scale[phi].astype(np.float32))]),
                                  g.const(icept[phi].astype(np.float32))]))
    u = parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)
    return g.op("Mul", [u, mask3])


def build_scoring_graph(
    model: Any, normaliser: Normaliser, spec: FeatureSpec, network: Network,
    name: str = "hotline",
) -> Any:
    """The onnx.ModelProto of the scoring graph of ``model`` with its ``network`` part.

    Layout: the network works on the normalised features permuted to (all pT, all eta, all
    phi), the permutation folded into its first and last Gemms (``InputFold``); the
    normalisation's scale and offset ride in the MatMuls that permute the raw features, so
    the graph adds one log of the pT block, one mask on the input and, for the losses, one
    mask on the per-object sums ([N, O], not [N, F]). The graph's outputs::

        sq_by_field [N, F]  squared error in normalised space, permuted order, unmasked
        per_object  [N, O]  masked squared error / F, summed over (pt, eta, phi)
        per_type    [N, K]  per_object summed over object types
        total       [N]     reconstruction MSE = sum of per_object
        kl, mu2     [N]     VAE only

    The scorer turns ``sq_by_field`` into the per-feature losses when they are read
    (``models.scorer.per_feature_from_fields``): the same numbers, paid for only when used.
    """
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
    perm = np.concatenate([np.arange(c, f, 3) for c in range(3)])

    g = OnnxGraph()
    mf = g.op("Cast", ["mask"], to=TensorProto.FLOAT)
    mask3 = g.op("Tile", [mf, g.const(np.array([1, 3], np.int64))])  # [N, F], permuted order
    xn = _network_input(g, normaliser, f, o, mask3)
    if getattr(network, "folds_input", False):
        g.fold = InputFold(xn, perm)
        sq, extra = network(g, model, xn)
    else:  # the emitter sees the normalised features in their own order
        flat = g.const(np.array([-1, f], np.int64))
        own = g.op("Reshape", [g.op("Transpose", [g.op("Reshape", [
            xn, g.const(np.array([-1, 3, o], np.int64))])], perm=[0, 2, 1]), flat])
        sq_own, extra = network(g, model, own)
        sq = g.op("Reshape", [g.op("Transpose", [g.op("Reshape", [
            sq_own, g.const(np.array([-1, o, 3], np.int64))])], perm=[0, 2, 1]), flat])
    for node in g.nodes:  # the network's squared error is an output: give it its name
        node.output[:] = ["sq_by_field" if n == sq else n for n in node.output]
        node.input[:] = ["sq_by_field" if n == sq else n for n in node.input]
    fold = np.zeros((f, o), np.float32)
    fold[np.arange(f), np.arange(f) % o] = 1.0 / f
    per_obj = g.op("Mul", [g.op("MatMul", ["sq_by_field", g.const(fold)]), mf],
                   out="per_object")
    per_type = g.op("MatMul", [per_obj, g.const(tmat)], out="per_type")
    # total = sum over the K types (4 columns, not 19): the same sum, fewer reads
    g.op("ReduceSum", [per_type, g.const(np.array([1], np.int64))], out="total", keepdims=0)
    outputs = ["sq_by_field", "per_object", "per_type", "total", *extra]

    shapes: dict[str, list[str | int]] = {"sq_by_field": ["N", f], "per_object": ["N", o],
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
