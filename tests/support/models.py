"""Tiny trained anomaly models and DQM conv-AEs in temporary registries (seconds; plumbing only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def tiny_features(n: int = 2000, seed: int = 1, process: str = "sm"):
    from hotline.detectors.features import extract_features
    from hotline.stream.samples import synthetic_events

    return extract_features(synthetic_events(process, n, seed))


def make_tiny_model(
    registry: Path, name: str = "tiny", arch: dict[str, Any] | None = None,
    scheme: str = "custom", n: int = 3000, epochs: int = 2, calibrate_on: int = 4000,
):
    """Train a tiny model on synthetic background, export, register and calibrate it."""
    import torch

    from hotline.detectors.spec import DEFAULT_SPEC
    from hotline.models.export import export_onnx, reference_scores
    from hotline.models.normalise import fit_normaliser
    from hotline.models.registry import register_model, update_card
    from hotline.models.scorer import Scorer
    from hotline.models.thresholds import calibrate, reference_contributions
    from hotline.training.train import train_model

    fm = tiny_features(n, seed=1)
    norm = fit_normaliser([(fm.x, fm.mask)], scheme)
    xn = norm.transform(fm.x, fm.mask)
    half = n // 2
    res = train_model(arch or {"kind": "ae"}, xn[:half], fm.mask[:half], xn[half:],
                      fm.mask[half:], {"epochs": epochs, "batch_size": 256, "seed": 3},
                      progress=False)
    work = registry.parent / f"work-{name}"
    work.mkdir(parents=True, exist_ok=True)
    export_onnx(res.model, norm, DEFAULT_SPEC, work / "model.onnx")
    torch.save(res.model.state_dict(), work / "weights.pt")
    card = {"kind": res.model.kind, "feature_spec": DEFAULT_SPEC.to_dict(),
            "normalisation": norm.to_dict(), "architecture": res.model.arch,
            "score": res.model.arch["score"]}
    reg = register_model(name, work / "model.onnx", card, work / "weights.pt", registry=registry)
    if calibrate_on:
        ref = tiny_features(calibrate_on, seed=7)
        s = reference_scores(res.model, norm, ref.x, ref.mask)
        score = s[res.model.arch["score"]] if res.model.kind == "vae" else s["recon"]
        cal = calibrate(np.asarray(score, np.float64), n_boot=20)
        r = Scorer(reg).score(ref)
        cal["reference_contributions"] = reference_contributions(
            r.per_type, r.per_object, r.type_labels, r.object_labels)
        reg = update_card(reg, **cal)
    return reg, res.model, norm


def train_tiny_dqm(registry: Path, geometries=("calo_regions",)) -> Path:
    from hotline.detectors.geometry import get_geometry
    from hotline.training.dqm import TrainSettings, train_dqm

    for g in geometries:
        s = TrainSettings(n_train=200, n_null=100, n_calib=300, epochs=2, batch_size=32,
                          seed=0, n_boot=3)
        train_dqm(get_geometry(g), s, registry=registry, progress=False)
    return registry
