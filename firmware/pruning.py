"""Optional pruning study: magnitude pruning (+ L1-regularised retraining) of a score network.

Zero weights cost nothing in an hls4ml Latency design (HLS drops the
multiplier), so pruning trades multipliers for anomaly sensitivity. For each
pruning fraction the smallest-|w| weights of every Linear/Conv layer (the fixed
score-sum layer excepted) are set to zero; optionally the network is then
fine-tuned on background with an L1 penalty while pruned weights stay zero.
The effect is measured in float (torch), against thresholds recalibrated on a
background reference *for the pruned network* (the trigger would recalibrate
too): TPR at each p-value and the remaining multiplications.

Retraining minimises the network's own score on background, which is the
training loss for the AE (masked MSE); a VAE mu^2 encoder is pruned without
retraining (minimising mu^2 alone would collapse the latent space).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _prunable(model: Any) -> list[tuple[str, Any]]:
    import torch.nn as nn

    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d)) and not n.split(".")[-1].startswith("score_")]


def magnitude_prune(model: Any, fraction: float) -> tuple[Any, dict[str, Any]]:
    """A copy of ``model`` with the ``fraction`` smallest-|w| weights of each layer set to 0.

    Returns the copy and ``{layer: 0/1 mask tensor}`` of the kept weights.
    """
    import torch

    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"pruning fraction must be in [0, 1), got {fraction}")
    out = copy.deepcopy(model)
    masks: dict[str, Any] = {}
    for name, layer in _prunable(out):
        w = layer.weight.detach()
        k = int(fraction * w.numel())
        keep = torch.ones_like(w)
        if k > 0:
            cut = w.abs().flatten().kthvalue(k).values
            keep = (w.abs() > cut).to(w.dtype)
        with torch.no_grad():
            layer.weight.mul_(keep)
        masks[name] = keep
    return out, masks


def nonzero_multiplications(model: Any) -> int:
    """Non-zero weights of the prunable layers (the multipliers an io_parallel build needs)."""
    return int(sum(int((m.weight != 0).sum()) for _, m in _prunable(model)))


def l1_finetune(model: Any, masks: dict[str, Any], inputs: list[np.ndarray], epochs: int = 2,
                l1: float = 1e-5, lr: float = 1e-3, seed: int = 0) -> Any:
    """Fine-tune on background minimising mean score + l1 * sum|w|; pruned weights stay 0."""
    import torch

    torch.manual_seed(seed)
    tens = [torch.as_tensor(np.asarray(a, np.float32)) for a in inputs]
    layers = dict(_prunable(model))
    params = [p for n, m in layers.items() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    n = len(tens[0])
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, 512):
            idx = perm[i:i + 512]
            loss = model(*[t[idx] for t in tens]).mean()
            loss = loss + l1 * sum(m.weight.abs().sum() for m in layers.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for name, m in layers.items():
                    m.weight.mul_(masks[name])
    return model.eval()


@dataclass
class PruningPoint:
    fraction: float
    retrained: bool
    multiplications: int
    thresholds: dict[float, float] = field(default_factory=dict)
    tpr: dict[float, float] = field(default_factory=dict)


def _scores(model: Any, inputs: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(*[torch.as_tensor(np.asarray(a, np.float32)) for a in inputs])
    return out.numpy().reshape(len(inputs[0]), -1)[:, 0].astype(np.float64)


def pruning_study(score_net: Any, reference: list[np.ndarray], train: list[np.ndarray] | None,
                  signal: list[np.ndarray], p_values: list[float], fractions: list[float],
                  retrain_epochs: int = 0, l1: float = 1e-5) -> list[PruningPoint]:
    """TPR at each p (thresholds recalibrated on ``reference``) per pruning fraction."""
    from hotline.firmware.emulation import calibrate_thresholds

    points = []
    for frac in fractions:
        pruned, masks = magnitude_prune(score_net, frac)
        retrained = bool(retrain_epochs and train is not None and frac > 0)
        if retrained:
            pruned = l1_finetune(pruned, masks, train, retrain_epochs, l1)
        thr = calibrate_thresholds(_scores(pruned, reference), p_values)
        sig = _scores(pruned, signal)
        points.append(PruningPoint(frac, retrained, nonzero_multiplications(pruned), thr,
                                   {p: float((sig > t).mean()) for p, t in thr.items()}))
    return points


def format_pruning(points: list[PruningPoint], p_values: list[float]) -> list[str]:
    head = f"{'pruned':>7} {'retrained':>9} {'mults':>6}" + "".join(
        f" {'TPR@' + format(p, 'g'):>10}" for p in p_values)
    lines = [head]
    for pt in points:
        lines.append(f"{pt.fraction:>7.0%} {'yes' if pt.retrained else 'no':>9} "
                     f"{pt.multiplications:>6}" + "".join(f" {pt.tpr[p]:>10.4f}"
                                                           for p in p_values))
    return lines
