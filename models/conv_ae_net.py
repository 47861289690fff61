"""The DQM conv-AE's torch side: network, ONNX export, firmware score network (kind ``conv-ae``).

The ``build``, ``export`` and ``firmware`` handlers of the kind ``conv-ae``
(``models.kinds``); its serving side -- map normalisation, Poisson deviance, unit
p-values and the onnxruntime ``ConvAEScorer`` -- is ``models.conv_ae``, which never
imports torch. Architecture (hls4ml-friendly: no ConvTranspose, no Flatten/Unflatten,
no reshape)::

    x [N, 1, H, W] -> Conv3x3(c1) ReLU -> AvgPool(p1) -> Conv3x3(c2) ReLU -> AvgPool(p2)
                   -> Conv3x3(c2) ReLU -> Upsample(p2) -> Conv3x3(c1) ReLU -> Upsample(p1)
                   -> Conv3x3(c1) ReLU -> Conv3x3(1) -> x_hat

The pools run along the phi axis only (``default_arch``): the bottleneck keeps one
value per eta row (or wheel/station row) and channel.

The ONNX graph holds only the network (x -> x_hat), written with ``onnx.helper``
(Conv, Relu, AveragePool, Resize-nearest): what hls4ml will convert later. The
firmware score network is the reconstruction's mean squared error over the map
(``conv_ae_score_net``; the stand-ins of ``firmware.standin`` use it); a registered
conv-AE is not built as firmware, since its serving score (Poisson deviance, per-unit
p-values) is not that computation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from hotline.detectors.geometry import Geometry
from hotline.errors import ModelError
from hotline.models.conv_ae import KIND
from hotline.models.kinds import FirmwarePlan

OPSET = 17


def default_arch(geo: Geometry, c1: int = 4, c2: int = 4, pool1: int | None = None
                 ) -> dict[str, Any]:
    """Architecture dict for a geometry: two pooling steps along the phi axis.

    Pooling runs along phi (the direction in which a good detector looks alike), so
    the bottleneck holds one value per (row of eta/station) and channel: a fault in
    a few sectors barely moves it, and the decoder predicts each cell from what
    the whole phi ring sees in this lumisection (luminosity, pileup).
    """
    h, w = geo.shape
    axis = geo.built.phi_axis
    n = (h, w)[axis]
    divs = [d for d in range(2, n) if n % d == 0]
    if not divs:
        raise ModelError(f"geometry '{geo.name}': phi axis of {n} cells cannot be pooled")
    p1 = pool1 or min(divs, key=lambda d: abs(d - n**0.5))
    if n % p1:
        raise ModelError(f"geometry '{geo.name}': first pool {p1} does not divide {n}")
    pools = [[p1, 1], [n // p1, 1]] if axis == 0 else [[1, p1], [1, n // p1]]
    return {"kind": KIND, "shape": [h, w], "channels": [c1, c2], "pools": pools}


class ConvAE(nn.Sequential):
    """``nn.Sequential`` (same constructor, modules, state_dict keys and traced graph) that
    declares what the export reads: the ``arch`` it was built from and its ``kind``."""

    arch: dict[str, Any]
    kind: str = KIND


def build_conv_ae(arch: Mapping[str, Any]) -> ConvAE:
    """A fresh torch ``nn.Sequential`` for ``arch`` (see module docstring); build handler
    of kind ``conv-ae``. The module carries ``arch`` and ``kind`` (for the export)."""
    c1, c2 = (int(c) for c in arch["channels"])
    (a, b), (c, d) = arch["pools"]
    net = ConvAE(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.AvgPool2d((a, b)),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.AvgPool2d((c, d)),
        nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=(c, d)),
        nn.Conv2d(c2, c1, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=(a, b)),
        nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, 1, 3, padding=1),
    )
    net.arch = dict(arch)
    return net


def _pair(v: float | tuple[float, ...]) -> list[float]:
    """A 2-d layer's size argument (one number for both axes, or one per axis) as a list."""
    return [v, v] if isinstance(v, int | float) else list(v)


def export_onnx(model: Any, path: str | Path, *, arch: Mapping[str, Any] | None = None
                ) -> Path:
    """Write the torch conv-AE as an ONNX graph x [N,1,H,W] -> x_hat [N,1,H,W].

    Export handler of kind ``conv-ae``; ``arch`` defaults to the one ``build_conv_ae``
    attached to the module.
    """
    arch = arch if arch is not None else model.arch
    h, w = (int(v) for v in arch["shape"])
    nodes, inits = [], []
    cur = "x"
    for i, layer in enumerate(model):
        out = f"t{i}"
        if isinstance(layer, nn.Conv2d):
            if layer.bias is None:  # pragma: no cover - build_conv_ae makes biased convs
                raise ModelError(f"conv-AE export: {layer} has no bias")
            wn, bn = f"w{i}", f"b{i}"
            inits.append(numpy_helper.from_array(layer.weight.detach().numpy().astype(np.float32),
                                                 wn))
            inits.append(numpy_helper.from_array(layer.bias.detach().numpy().astype(np.float32),
                                                 bn))
            nodes.append(helper.make_node("Conv", [cur, wn, bn], [out], kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[1, 1]))
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif isinstance(layer, nn.AvgPool2d):
            k = [int(v) for v in _pair(layer.kernel_size)]
            nodes.append(helper.make_node("AveragePool", [cur], [out], kernel_shape=k,
                                          strides=k))
        elif isinstance(layer, nn.Upsample):
            if layer.scale_factor is None:  # pragma: no cover - build_conv_ae scales by factors
                raise ModelError(f"conv-AE export: {layer} has no scale factor")
            sn = f"s{i}"
            f = [float(v) for v in _pair(layer.scale_factor)]
            inits.append(numpy_helper.from_array(np.array([1, 1, *f], np.float32), sn))
            nodes.append(helper.make_node("Resize", [cur, "", sn], [out], mode="nearest",
                                          coordinate_transformation_mode="asymmetric",
                                          nearest_mode="floor"))
        else:  # pragma: no cover - build_conv_ae makes only the layers above
            raise ModelError(f"conv-AE export: unsupported layer {layer}")
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["x_hat"]))
    graph = helper.make_graph(
        nodes, "hotline_conv_ae",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, h, w])],
        [helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, ["N", 1, h, w])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="hotline")
    m.ir_version = 9
    onnx.checker.check_model(m)
    path = Path(path)
    onnx.save(m, str(path))
    return path


def conv_ae_score_net(ae: Any, shape: tuple[int, int, int]) -> Any:
    """Conv AE + its mean squared reconstruction error over the (C, H, W) map -> [n, 1]."""
    n = shape[0] * shape[1] * shape[2]

    class ConvAEScore(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ae = ae
            self.score_flat = nn.Flatten()
            self.score_flat2 = nn.Flatten()
            self.score_sum = nn.Linear(n, 1, bias=False)
            with torch.no_grad():
                self.score_sum.weight.fill_(1.0 / n)
            self.score_sum.weight.requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.ae(x)
            return self.score_sum(self.score_flat(x - y) * self.score_flat2(x - y))

    return ConvAEScore().eval()


def _conv_firmware_net(net: Any, input_shape: Sequence[int], masked: bool = False) -> Any:
    c, h, w = (int(v) for v in input_shape)
    return conv_ae_score_net(net, (c, h, w))


def conv_ae_firmware(card: Mapping[str, Any] | None = None) -> FirmwarePlan:
    """Kind ``conv-ae``: the network converts (MSE score), registered models are refused."""
    return FirmwarePlan(
        score_net=_conv_firmware_net,
        refused=("is a DQM conv-AE; its score (Poisson deviance, per-unit p-values) is not "
                 "built as firmware yet -- see models/conv_ae_net.py"))
