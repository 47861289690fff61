"""Seed ensembles: trained member by member, one ONNX graph, score = mean of member errors."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.errors import ModelError
from tests.support.models import tiny_features


def _trained_ensemble(tmp_path, members: int = 2):
    from hotline.detectors.spec import DEFAULT_SPEC
    from hotline.models.export import export_onnx
    from hotline.models.normalise import fit_normaliser
    from hotline.models.registry import register_model
    from hotline.training.train import train_ensemble

    fm = tiny_features(1200, seed=1)
    norm = fit_normaliser([(fm.x, fm.mask)], "custom")
    xn = norm.transform(fm.x, fm.mask)
    res = train_ensemble({"kind": "ensemble", "members": members, "variant": "tanh",
                          "hidden": [16], "latent": 3},
                         xn[:800], fm.mask[:800], xn[800:], fm.mask[800:],
                         {"epochs": 2, "batch_size": 128, "seed": 5}, tmp_path, progress=False)
    model = res.model
    onnx = export_onnx(model, norm, DEFAULT_SPEC, tmp_path / "model.onnx", name="ens")
    import torch

    torch.save(model.state_dict(), tmp_path / "weights.pt")
    card = {"kind": model.kind, "feature_spec": DEFAULT_SPEC.to_dict(),
            "normalisation": norm.to_dict(), "architecture": model.arch, "score": "recon"}
    reg = register_model("ens", onnx, card, tmp_path / "weights.pt",
                         registry=tmp_path / "reg", version=1)
    return reg, model, norm


def test_ensemble_onnx_matches_torch_and_is_the_mean_of_its_members(tmp_path):
    import torch

    from hotline.models.export import reference_scores
    from hotline.models.nets import feature_mask, torch_model
    from hotline.models.scorer import Scorer

    reg, model, norm = _trained_ensemble(tmp_path, members=3)
    assert model.kind == "ensemble" and len(model.members) == 3
    # members really differ (different seeds), else the ensemble is one model three times
    w0, w1 = (m.encoder[0].weight.detach().numpy() for m in model.members[:2])
    assert not np.allclose(w0, w1)
    fm = tiny_features(400, seed=9, process="A4l")
    res = Scorer(reg).score(fm)
    ref = reference_scores(model, norm, fm.x, fm.mask)
    np.testing.assert_allclose(res.total, ref["recon"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.per_feature, ref["per_feature"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(res.per_type.sum(1), res.total, rtol=1e-5)
    xn = torch.from_numpy(norm.transform(fm.x, fm.mask))
    fmask = feature_mask(torch.from_numpy(fm.mask), fm.x.shape[1])
    with torch.no_grad():
        each = [(((m(xn) - xn) ** 2) * fmask).sum(1).numpy() / fm.x.shape[1]
                for m in model.members]
    np.testing.assert_allclose(res.total, np.mean(each, axis=0), rtol=1e-4, atol=1e-7)
    # the registry rebuilds the same ensemble from the card + weights
    again = torch_model(reg)
    assert again.kind == "ensemble" and len(again.members) == 3
    with torch.no_grad():
        np.testing.assert_allclose(again(xn).numpy(), model(xn).numpy(), rtol=1e-6)


def test_ensemble_architecture_errors_are_clear():
    from hotline.models.nets import build_model

    with pytest.raises(ModelError, match="members"):
        build_model({"kind": "ensemble", "members": []})
    with pytest.raises(ModelError, match="plain AEs"):
        build_model({"kind": "ensemble", "members": [{"kind": "vae"}]})


def test_ensembles_are_refused_as_firmware_with_a_reason(tmp_path):
    from hotline.errors import FirmwareError
    from hotline.firmware.convert import BuildConfig
    from hotline.firmware.registry_adapter import registered_source

    _trained_ensemble(tmp_path, members=2)
    with pytest.raises(FirmwareError, match="seed ensemble of 2 AEs"):
        registered_source("ens", "1", BuildConfig(), registry=str(tmp_path / "reg"))
