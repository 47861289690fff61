"""Model definitions and normalisation schemes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hotline.errors import ModelError
from hotline.models.nets import VARIANTS, build_model, feature_mask, masked_mse, normalise_arch
from hotline.models.normalise import Normaliser, fit_normaliser
from tests.support.models import tiny_features


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ae_variants_shapes_and_layers(variant):
    m = build_model({"kind": "ae", "variant": variant})
    x = torch.zeros(5, 57)
    m.eval()
    assert m(x).shape == (5, 57)
    names = {type(layer).__name__ for layer in m.modules()}
    assert ("BatchNorm1d" in names) == VARIANTS[variant]["batchnorm"]
    act = {"relu": "ReLU", "tanh": "Tanh", "leaky_relu": "LeakyReLU", "elu": "ELU"}
    assert act[VARIANTS[variant]["activation"]] in names
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [32, 16, 3, 16, 32, 57]


def test_vae_returns_three_tensors_and_is_deterministic_in_eval():
    m = build_model({"kind": "vae", "hidden": [20], "latent": 4})
    m.eval()
    x = torch.randn(3, 57)
    r1, mu, lv = m(x)
    r2, _, _ = m(x)
    assert r1.shape == (3, 57) and mu.shape == (3, 4) and lv.shape == (3, 4)
    assert torch.equal(r1, r2)


@pytest.mark.parametrize("bad", [{"kind": "gan"}, {"activation": "swish"},
                                 {"kind": "ae", "score": "kl"}, {"variant": "nope"},
                                 {"latent": 0}])
def test_bad_architectures_are_refused(bad):
    with pytest.raises(ModelError):
        build_model(bad)


def test_arch_round_trips_through_card():
    a = normalise_arch({"kind": "vae", "variant": "elu_bn", "score": "mu2"})
    m1, m2 = build_model(a), build_model(a)
    m2.load_state_dict(m1.state_dict())  # same layout: weights load
    assert a["activation"] == "elu" and a["batchnorm"] is True


def test_masked_mse_ignores_padded_features():
    x = torch.zeros(2, 57)
    r = torch.zeros(2, 57)
    r[:, 3:6] = 5.0  # slot e1 is wrong
    mask = torch.zeros(2, 19, dtype=torch.bool)
    mask[0, 1] = True  # e1 real in event 0 only
    loss = masked_mse(x, r, feature_mask(mask, 57))
    assert loss[0] == pytest.approx(75 / 57) and loss[1] == 0


def test_minmax_two_pass_over_chunks_equals_one_shot():
    fm = tiny_features(1500)
    one = fit_normaliser([(fm.x, fm.mask)], "minmax")
    chunks = fit_normaliser(((fm.x[i:i + 200], fm.mask[i:i + 200]) for i in range(0, 1500, 200)),
                            "minmax")
    np.testing.assert_allclose(one.offset, chunks.offset)
    np.testing.assert_allclose(one.scale, chunks.scale, rtol=1e-6)
    xn = one.transform(fm.x, fm.mask)
    real = np.repeat(fm.mask, 3, axis=1)
    assert xn[real].min() >= -1e-6 and xn[real].max() <= 1 + 1e-5


def test_standard_scaling_uses_real_objects_only():
    fm = tiny_features(1500)
    n = fit_normaliser(((fm.x[i:i + 300], fm.mask[i:i + 300]) for i in range(0, 1500, 300)),
                       "standard")
    real = np.repeat(fm.mask, 3, axis=1)
    col = 3  # e1 pT
    vals = fm.x[real[:, col], col]
    assert n.offset[col] == pytest.approx(vals.mean(), rel=1e-4)
    assert 1 / n.scale[col] == pytest.approx(vals.std(), rel=1e-3)


def test_custom_log_pt_scheme_formula_and_padding():
    fm = tiny_features(200)
    n = fit_normaliser([(fm.x, fm.mask)], "custom", pt_a=1.0, pt_b=2.0)
    xn = n.transform(fm.x, fm.mask)
    i = int(np.flatnonzero(fm.mask[:, 10])[0])  # an event with a real j1 (slot 9)? use any
    j = int(np.flatnonzero(fm.mask[i])[0])
    pt, eta, phi = fm.x[i, 3 * j:3 * j + 3]
    np.testing.assert_allclose(xn[i, 3 * j:3 * j + 3],
                               [(np.log10(pt) - 1.0) / 2.0, eta / 5, phi / np.pi], rtol=1e-5)
    padded = np.repeat(~fm.mask, 3, axis=1)
    assert (xn[padded] == 0).all()
    back = Normaliser.from_dict(n.to_dict())
    np.testing.assert_array_equal(back.transform(fm.x, fm.mask), xn)


def test_bad_normalisation_inputs():
    with pytest.raises(ModelError, match="unknown normalisation"):
        fit_normaliser([], "robust")
    with pytest.raises(ModelError, match="no objects"):
        fit_normaliser([], "minmax")
    with pytest.raises(ModelError, match="invalid normalisation"):
        Normaliser.from_dict({"scheme": "x", "offset": [0, float("nan")], "scale": [1, 1]})
