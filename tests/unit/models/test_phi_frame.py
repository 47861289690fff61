"""phi_frame = "met": phi measured from MET, identically in numpy and in the ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.errors import ModelError
from tests.support.models import tiny_features


def _rotated(x: np.ndarray, mask: np.ndarray, angle: float) -> np.ndarray:
    """Every real object's phi turned by ``angle`` about the beam (a global rotation)."""
    out = x.copy()
    ph = out[:, 2::3] + np.float32(angle)
    ph = (ph + np.pi) % (2 * np.pi) - np.pi
    out[:, 2::3] = np.where(mask, ph, 0.0).astype(np.float32)
    return out


@pytest.mark.parametrize("scheme", ["custom", "standard"])
def test_met_frame_onnx_matches_numpy_and_is_rotation_invariant(tmp_path, scheme):
    import torch

    from hotline.detectors.spec import DEFAULT_SPEC
    from hotline.models.export import export_onnx, reference_scores
    from hotline.models.normalise import Normaliser, fit_normaliser
    from hotline.models.registry import register_model
    from hotline.models.scorer import Scorer
    from hotline.training.train import train_model

    fm = tiny_features(1000, seed=1)
    norm = fit_normaliser([(fm.x, fm.mask)], scheme, phi_frame="met")
    assert Normaliser.from_dict(norm.to_dict()).phi_frame == "met"
    xn = norm.transform(fm.x, fm.mask)
    assert np.all(xn[:, 2] == 0.0)  # MET's own phi is the reference
    res = train_model({"kind": "ae"}, xn[:700], fm.mask[:700], xn[700:], fm.mask[700:],
                      {"epochs": 1, "batch_size": 128, "seed": 2}, progress=False)
    onnx = export_onnx(res.model, norm, DEFAULT_SPEC, tmp_path / "m.onnx")
    torch.save(res.model.state_dict(), tmp_path / "w.pt")
    card = {"kind": "ae", "feature_spec": DEFAULT_SPEC.to_dict(),
            "normalisation": norm.to_dict(), "architecture": res.model.arch, "score": "recon"}
    scorer = Scorer(register_model("m", onnx, card, tmp_path / "w.pt",
                                   registry=tmp_path / "reg", version=1))
    test = tiny_features(400, seed=7, process="A4l")
    got = scorer.score(test)
    ref = reference_scores(res.model, norm, test.x, test.mask)
    np.testing.assert_allclose(got.per_feature, ref["per_feature"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.total, ref["recon"], rtol=1e-5, atol=1e-7)
    # a global rotation about the beam changes nothing (up to float32 rounding of phi)
    turned = scorer.score_arrays(_rotated(test.x, test.mask, 1.234), test.mask)
    np.testing.assert_allclose(turned.total, got.total, rtol=2e-3, atol=1e-6)
    # in the lab frame the same rotation does change the scores: the test can tell
    lab = fit_normaliser([(fm.x, fm.mask)], scheme)
    a = reference_scores(res.model, lab, test.x, test.mask)["recon"]
    b = reference_scores(res.model, lab, _rotated(test.x, test.mask, 1.234), test.mask)["recon"]
    assert np.abs(a - b).max() > 1e-3


def test_unknown_phi_frame_is_refused():
    from hotline.models.normalise import fit_normaliser

    fm = tiny_features(50, seed=1)
    with pytest.raises(ModelError, match="phi_frame"):
        fit_normaliser([(fm.x, fm.mask)], "custom", phi_frame="beam")
