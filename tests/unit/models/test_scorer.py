"""ONNX scoring graph vs torch, contributions, bad input, registry hash checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec, ObjectSpec
from hotline.errors import ModelError
from hotline.models.export import reference_scores
from hotline.models.registry import available_models, load_model, register_model
from hotline.models.scorer import Scorer
from tests.support.models import make_tiny_model, tiny_features

ARCHS = [
    {"kind": "ae", "variant": "baseline"},
    {"kind": "ae", "variant": "tanh"},
    {"kind": "ae", "variant": "leaky_bn"},
    {"kind": "ae", "variant": "elu_bn", "hidden": [24], "latent": 4},
    {"kind": "vae", "variant": "leaky_bn", "score": "kl"},
    {"kind": "vae", "variant": "baseline", "score": "mu2"},
]


CASES = [(a, "custom") for a in ARCHS] + [(ARCHS[0], "minmax"), (ARCHS[2], "standard"),
                                           (ARCHS[4], "minmax")]


@pytest.mark.parametrize(("arch", "scheme"), CASES,
                         ids=[f"{a['kind']}-{a['variant']}-{s}" for a, s in CASES])
def test_torch_and_onnxruntime_agree(tmp_path, arch, scheme):
    reg, model, norm = make_tiny_model(tmp_path / "reg", "m", arch, scheme=scheme, n=800,
                                       epochs=1, calibrate_on=0)
    fm = tiny_features(500, seed=11, process="A4l")
    ref = reference_scores(model, norm, fm.x, fm.mask)
    res = Scorer(reg).score(fm)
    recon = res.extra.get("recon", res.total)
    np.testing.assert_allclose(recon, ref["recon"], rtol=1e-5, atol=1e-6)
    if model.kind == "ae":
        np.testing.assert_allclose(res.per_feature, ref["per_feature"], rtol=1e-5, atol=1e-7)
    else:
        np.testing.assert_allclose(res.extra["kl"], ref["kl"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(res.extra["mu2"], ref["mu2"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(res.total, ref[arch["score"]], rtol=1e-5, atol=1e-5)


def test_contributions_sum_to_total_and_group_by_type(tiny_registry):
    for name in ("tiny", "tiny_vae"):
        sc = Scorer.from_registry(name, registry=tiny_registry)
        fm = tiny_features(700, seed=5, process="fault_hot_jet")
        r = sc.score(fm)
        assert r.per_feature.shape == (700, 57) and r.per_object.shape == (700, 19)
        assert r.per_type.shape == (700, 4)
        np.testing.assert_allclose(r.per_object.sum(1), r.total, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(r.per_type.sum(1), r.total, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(r.per_feature.reshape(700, 19, 3).sum(2), r.per_object,
                                   rtol=1e-4, atol=1e-7)
        types = np.asarray(DEFAULT_SPEC.object_type_index())
        np.testing.assert_allclose(r.per_type[:, 3], r.per_object[:, types == 3].sum(1),
                                   rtol=1e-4, atol=1e-7)
        assert r.object_labels[0] == "met" and r.object_labels[-1] == "j10"
        assert r.type_labels == ["MET", "electrons", "muons", "jets"]
        # padded objects contribute nothing
        assert (r.per_object[~fm.mask] == 0).all()
        c = r.contributions(0)
        assert set(c["types"]) == set(r.type_labels) and len(c["objects"]) == 19


def test_large_batches_are_chunked_identically(tiny_registry, monkeypatch):
    import hotline.models.scorer as ms

    sc = Scorer.from_registry("tiny_vae", registry=tiny_registry)
    fm = tiny_features(1000, seed=3)
    whole = sc.score(fm)
    monkeypatch.setattr(ms, "CHUNK", 128)  # 1000 rows -> 8 chunks, last one partial
    parts = sc.score(fm)
    for k in ("total", "per_feature", "per_object", "per_type"):
        np.testing.assert_allclose(getattr(parts, k), getattr(whole, k), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(parts.extra["kl"], whole.extra["kl"], rtol=1e-6)


def test_padded_slots_are_masked_not_zeros(tiny_registry):
    sc = Scorer.from_registry("tiny", registry=tiny_registry)
    fm = tiny_features(300, seed=2)
    x = fm.x.copy()
    x.reshape(300, 19, 3)[~fm.mask] = 77.0  # garbage in padded slots must not matter
    a = sc.score_arrays(fm.x, fm.mask).total
    b = sc.score_arrays(x, fm.mask).total
    np.testing.assert_allclose(a, b, rtol=1e-6)
    m2 = fm.mask.copy()
    ev = int(np.flatnonzero(fm.mask[:, 10])[0])
    m2[ev, 10] = False  # dropping a real jet changes that event's score only
    c = sc.score_arrays(fm.x, m2).total
    assert c[ev] != a[ev]
    np.testing.assert_array_equal(np.delete(c, ev), np.delete(a, ev))


def test_bad_inputs_raise_model_error(tiny_registry):
    sc = Scorer.from_registry("tiny", registry=tiny_registry)
    fm = tiny_features(50)
    with pytest.raises(ModelError, match="expects 57 features"):
        sc.score_arrays(fm.x[:, :54], fm.mask)
    x = fm.x.copy()
    x[3, 4] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(ModelError, match=r"2 event\(s\) hold NaN/inf.*\[3, 7\]"):
        sc.score_arrays(x, fm.mask)
    other = FeatureSpec("jets_only", (ObjectSpec("j", "jets", "Jet", 19),))
    fm.spec = other
    with pytest.raises(ModelError, match="trained on spec 'adc2021'"):
        sc.score(fm)
    assert len(sc.score_arrays(fm.x[:0], fm.mask[:0])) == 0


def test_registry_versions_hash_and_rebuild(tmp_path, tiny_registry):
    reg = tmp_path / "reg"
    shutil.copytree(tiny_registry, reg)
    m1 = load_model("tiny", registry=reg)
    assert m1.version == "1" and m1.card["kind"] == "ae"
    card = {k: v for k, v in m1.card.items() if k not in ("name", "version", "created")}
    m2 = register_model("tiny", m1.onnx_path, card, m1.weights_path, registry=reg)
    assert m2.version == "2" and load_model("tiny", registry=reg).version == "2"
    assert load_model("tiny", 1, registry=reg).version == "1"
    assert {(m["name"], m["version"]) for m in available_models(reg)} >= {("tiny", "1"),
                                                                           ("tiny", "2")}
    from hotline.models.export import reference_scores
    from hotline.models.nets import torch_model as load_torch_model
    from hotline.models.normalise import Normaliser

    torch_model = load_torch_model(m2)  # card architecture + weights.pt -> the torch module
    fm = tiny_features(100)

    ref = reference_scores(torch_model, Normaliser.from_dict(m2.card["normalisation"]),
                           fm.x, fm.mask)
    np.testing.assert_allclose(Scorer(m2).score(fm).total, ref["recon"], rtol=1e-5, atol=1e-7)
    # tamper with the ONNX file -> hash mismatch
    data = bytearray(m2.onnx_path.read_bytes())
    data[-5] ^= 0xFF
    m2.onnx_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model("tiny", 2, registry=reg)
    with pytest.raises(ModelError, match="no model 'nope'"):
        load_model("nope", registry=reg)
    with pytest.raises(ModelError, match="no version 9"):
        load_model("tiny", 9, registry=reg)
    with pytest.raises(ModelError, match="already exists"):
        register_model("tiny", m1.onnx_path, card, registry=reg, version=1)
    (reg / "tiny" / "1" / "card.json").write_text(json.dumps({"name": "tiny"}))
    with pytest.raises(ModelError, match="lacks"):
        load_model("tiny", 1, registry=reg)


def test_p_values_and_thresholds_from_card(tiny_registry):
    sc = Scorer.from_registry("tiny", registry=tiny_registry)
    for p in (0.05, 0.01, 1e-3):
        t = sc.threshold(p)
        assert sc.p_value(np.array([t]))[0] == pytest.approx(p, rel=0.15)
    s = np.sort(sc.score(tiny_features(500, seed=9)).total)
    pv = sc.p_value(s)
    assert (np.diff(pv) <= 1e-12).all() and pv[0] <= 1 and pv[-1] > 0
    with pytest.raises(ModelError, match="too small"):
        sc.threshold(1e-9)


def test_attribution_follows_a_derived_met_to_the_anomalous_visible_type():
    from hotline.models.scorer import ScoreResult

    labels = ["MET", "electrons", "muons", "jets"]
    ref = {"types": {"labels": labels, "mean": [0.01, 0.01, 0.01, 0.04],
                     "std": [0.01, 0.01, 0.01, 0.03]}}
    per_type = np.array([
        [0.50, 0.00, 0.40, 0.05],   # MET top, muons anomalous (z = 39) -> muons
        [0.50, 0.00, 0.00, 0.06],   # MET top, jets normal (z = 0.7) -> MET stays
        [0.10, 0.00, 0.00, 0.90],   # jets top -> jets
        [0.30, 0.02, 0.00, 0.20],   # MET top, jets z = 5.3 -> jets
    ], np.float32)
    res = ScoreResult(per_type.sum(1), np.zeros((4, 57), np.float32),
                      np.zeros((4, 19), np.float32), per_type, [f"o{i}" for i in range(19)],
                      labels)
    got = [labels[k] for k in res.attribute(ref)]
    assert got == ["muons", "MET", "jets", "jets"]
    assert [labels[k] for k in res.top_type()] == ["MET", "MET", "jets", "MET"]
    assert [labels[k] for k in res.attribute(None)] == ["MET", "MET", "jets", "MET"]
