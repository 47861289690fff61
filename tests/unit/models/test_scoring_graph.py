"""The scoring graph's layout: torch, onnxruntime and the onnx reference evaluator agree, the
permutation sits in the network's weights, and a re-export of the shipped default model takes
the same alert decisions on the demo run as the shipped graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hotline.models.export import reference_scores
from hotline.models.scorer import Scorer
from tests.support.models import make_tiny_model, tiny_features

ARCHIVE = Path(__file__).resolve().parents[3] / "data" / "archive"

CASES = [({"kind": "ae", "variant": "baseline"}, "custom", "lab"),
         ({"kind": "ae", "variant": "leaky_bn"}, "standard", "met"),
         ({"kind": "vae", "variant": "baseline", "score": "kl"}, "minmax", "lab"),
         ({"kind": "ensemble", "members": [{"kind": "ae", "hidden": [16], "latent": 3},
                                           {"kind": "ae", "hidden": [8], "latent": 2}]},
          "custom", "met")]


def _onnx_reference(path: Path, x: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    import onnx
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(path))
    names = [o.name for o in proto.graph.output]
    return dict(zip(names, ReferenceEvaluator(proto).run(None, {"x": x, "mask": mask})))


@pytest.mark.parametrize(("arch", "scheme", "frame"), CASES,
                         ids=[f"{a['kind']}-{s}-{f}" for a, s, f in CASES])
def test_torch_onnxruntime_and_onnx_reference_agree(tmp_path, arch, scheme, frame):
    from hotline.models.scorer import per_feature_from_fields

    reg, model, norm = _model(tmp_path, arch, scheme, frame)
    fm = tiny_features(300, seed=11, process="A4l")
    x = fm.x.copy()
    x.reshape(300, 19, 3)[~fm.mask] = 55.0  # garbage in padded slots changes nothing
    got = Scorer(reg).score_arrays(x, fm.mask)
    ref = reference_scores(model, norm, fm.x, fm.mask)
    onx = _onnx_reference(reg.onnx_path, x, fm.mask)
    recon = got.extra.get("recon", got.total)
    np.testing.assert_allclose(recon, ref["recon"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(onx["total"], ref["recon"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.per_object, onx["per_object"] * (
        got.total / np.where(recon > 0, recon, 1))[:, None], rtol=1e-5, atol=1e-7)
    if model.kind != "vae":
        np.testing.assert_allclose(got.per_feature, ref["per_feature"], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(per_feature_from_fields(onx["sq_by_field"], fm.mask),
                                   ref["per_feature"], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(got.per_feature.reshape(300, 19, 3).sum(2), got.per_object,
                                   rtol=1e-5, atol=1e-8)
    else:
        np.testing.assert_allclose(got.total, ref["kl"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(onx["kl"], ref["kl"], rtol=1e-5, atol=1e-6)


def _model(tmp_path, arch, scheme, frame):
    import torch

    from hotline.detectors.spec import DEFAULT_SPEC
    from hotline.models.export import export_onnx
    from hotline.models.normalise import fit_normaliser
    from hotline.models.registry import register_model
    from hotline.training.train import train_model

    fm = tiny_features(600, seed=1)
    norm = fit_normaliser([(fm.x, fm.mask)], scheme, phi_frame=frame)
    xn = norm.transform(fm.x, fm.mask)
    res = train_model(arch, xn[:400], fm.mask[:400], xn[400:], fm.mask[400:],
                      {"epochs": 1, "batch_size": 128, "seed": 2}, progress=False)
    onnx_path = export_onnx(res.model, norm, DEFAULT_SPEC, tmp_path / "m.onnx")
    torch.save(res.model.state_dict(), tmp_path / "w.pt")
    card = {"kind": res.model.kind, "feature_spec": DEFAULT_SPEC.to_dict(),
            "normalisation": norm.to_dict(), "architecture": res.model.arch,
            "score": res.model.arch.get("score", "recon")}
    reg = register_model("m", onnx_path, card, tmp_path / "w.pt", registry=tmp_path / "reg")
    return reg, res.model, norm


def test_permutation_is_folded_into_the_first_and_last_layers(tmp_path):
    import onnx
    from onnx import numpy_helper

    reg, model, _ = make_tiny_model(tmp_path / "reg", "t", epochs=1, n=600, calibrate_on=0)
    proto = onnx.load(str(reg.onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm" and n.input[1] in inits
             and inits[n.input[1]].shape in ((model.encoder[0].out_features, 57), (57, 32))]
    perm = np.concatenate([np.arange(c, 57, 3) for c in range(3)])
    w1 = model.encoder[0].weight.detach().numpy()
    w_last = model.decoder[-1].weight.detach().numpy()
    b_last = model.decoder[-1].bias.detach().numpy()
    first = inits[gemms[0].input[1]]
    last = inits[gemms[-1].input[1]]
    np.testing.assert_array_equal(first, w1[:, perm])
    np.testing.assert_array_equal(last, w_last[perm])
    np.testing.assert_array_equal(inits[gemms[-1].input[2]], b_last[perm])
    ops = [n.op_type for n in proto.graph.node]
    # the normalisation: the pT and (eta, phi) blocks, one log, one input mask
    assert ops.count("Log") == 1 and "Where" not in ops and "Gather" not in ops
    assert [o.name for o in proto.graph.output] == ["sq_by_field", "per_object", "per_type",
                                                    "total"]


def test_reexported_default_model_takes_the_shipped_decisions_on_the_demo_run(tmp_path):
    """The shipped ae_default graph (old layout) vs its re-export from weights.pt (this
    layout), with the shipped card's thresholds, on every event of the demo run."""
    import awkward as ak
    import uproot

    from hotline.detectors.features import extract_features
    from hotline.models.export import export_onnx
    from hotline.models.nets import torch_model
    from hotline.models.normalise import Normaliser
    from hotline.models.registry import DEFAULT_MODEL, load_model, register_model
    from hotline.stream.archive import find_run

    shipped = load_model(DEFAULT_MODEL)
    old = Scorer(shipped)
    assert "per_feature" in old.outputs  # the shipped file is the old layout, untouched
    new_path = export_onnx(torch_model(shipped), Normaliser.from_dict(
        shipped.card["normalisation"]), old.spec, tmp_path / "model.onnx")
    card = {k: v for k, v in shipped.card.items() if k not in ("name", "version", "created",
                                                                 "onnx")}
    shutil.copy(shipped.weights_path, tmp_path / "weights.pt")
    new = Scorer(register_model(DEFAULT_MODEL, new_path, json.loads(json.dumps(card)),
                                tmp_path / "weights.pt", registry=tmp_path / "reg"))
    assert "sq_by_field" in new.outputs
    events = ak.concatenate([uproot.open(f)["Events"].arrays(library="ak")
                             for f in find_run(ARCHIVE, 1).files])
    fm = extract_features(events, old.spec)
    good = np.isfinite(fm.x).all(1)
    a, b = old.score_arrays(fm.x[good], fm.mask[good]), new.score_arrays(fm.x[good],
                                                                         fm.mask[good])
    assert good.sum() > 19_000
    np.testing.assert_allclose(b.total, a.total, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.per_type, a.per_type, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(b.per_feature, a.per_feature, rtol=1e-4, atol=1e-8)
    thresholds = [t["threshold"] for t in shipped.card["thresholds"]]
    assert len(thresholds) >= 3
    for t in thresholds:
        assert np.array_equal(a.total > t, b.total > t), t
    assert np.array_equal(a.attribute(old.reference_contributions),
                          b.attribute(new.reference_contributions))
