"""Model kinds as a registry: handlers by lazy reference, a new kind end to end, unknown kinds,
the shared scorer interface, and serving that never imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hotline.errors import ModelError
from hotline.models import kinds
from hotline.models.kinds import (
    FirmwarePlan,
    ModelKind,
    available_model_kinds,
    get_model_kind,
    register_model_kind,
    resolve,
)
from hotline.models.registry import DEFAULT_REGISTRY, load_model
from hotline.registry import Registry
from tests.support.models import tiny_features

ROOT = Path(__file__).resolve().parents[3]
BUILTIN = ["ae", "vae", "ensemble", "conv-ae"]


# ----------------------------------------------------------------------------- a toy kind
# The whole of a new kind: its handlers (one module; here this test module) ...


def _zero_net_class() -> type:
    from torch import nn

    class ZeroNet(nn.Module):
        """Reconstructs every event as the background mean (0 in normalised space)."""

        kind = "zero"

        def __init__(self, arch: dict[str, Any]) -> None:
            super().__init__()
            self.arch = {"kind": "zero", "n_inputs": int(arch.get("n_inputs", 57)),
                         "score": "recon"}

        def forward(self, x):
            return x * 0.0

    return ZeroNet


def build_zero(arch: dict[str, Any]) -> Any:
    """Build handler of the toy kind."""
    return _zero_net_class()(arch)


def export_zero(model: Any, path: str | Path, **context: Any) -> Path:
    """Export handler of the toy kind: the squared error of a zero reconstruction."""
    from hotline.models.export import export_graph

    def network(g: Any, model: Any, xn: str) -> tuple[str, list[str]]:
        return g.op("Mul", [xn, xn]), []

    return export_graph(model, path, network, **context)


def zero_firmware(card: dict[str, Any] | None) -> FirmwarePlan:
    """Firmware handler of the toy kind."""
    return FirmwarePlan(refused="is a toy: nothing worth a trigger path")


# ... and one registration line:
def _register_zero() -> ModelKind:
    return register_model_kind(ModelKind(
        "zero", "distance from the background mean", "event", build=f"{__name__}:build_zero",
        export=f"{__name__}:export_zero", score="hotline.models.scorer:Scorer",
        firmware=zero_firmware))


@pytest.fixture
def fresh_kinds(monkeypatch) -> Registry:
    """A fresh kind registry (built-ins only) for this test; the real one is restored."""
    reg: Registry[ModelKind] = Registry("model kind", kinds._builtin_kinds, error=ModelError,
                                        sort=False)
    monkeypatch.setattr(kinds, "MODEL_KINDS", reg)
    return reg


def test_a_new_kind_is_one_module_and_one_registration_build_export_score(
        fresh_kinds, tmp_path):
    import torch

    from hotline.detectors.spec import DEFAULT_SPEC
    from hotline.models.interface import ModelScorer, Scores
    from hotline.models.nets import build_model, torch_model
    from hotline.models.normalise import fit_normaliser
    from hotline.models.registry import register_model
    from hotline.models.scorer import Scorer

    kind = _register_zero()
    assert available_model_kinds() == [*BUILTIN, "zero"]
    assert available_model_kinds(family="event") == ["ae", "vae", "ensemble", "zero"]
    # build -> export
    net = build_model({"kind": "zero"})
    assert type(net).__name__ == "ZeroNet" and net.arch["n_inputs"] == DEFAULT_SPEC.n_features
    fm = tiny_features(600, seed=4)
    norm = fit_normaliser([(fm.x, fm.mask)], "custom")
    onnx = kind.export_onnx(net, tmp_path / "work" / "model.onnx", normaliser=norm,
                            spec=DEFAULT_SPEC, name="zero")
    torch.save(net.state_dict(), tmp_path / "work" / "weights.pt")
    # -> register -> score, through the kind's score handler
    card = {"kind": "zero", "feature_spec": DEFAULT_SPEC.to_dict(),
            "normalisation": norm.to_dict(), "architecture": net.arch, "score": "recon"}
    reg = register_model("zero", onnx, card, tmp_path / "work" / "weights.pt",
                         registry=tmp_path / "reg", version=1)
    assert reg.model_kind is kind
    scorer = reg.scorer()
    assert isinstance(scorer, Scorer) and isinstance(scorer, ModelScorer)
    res = scorer.score(fm)
    assert isinstance(res, Scores)
    xn = norm.transform(fm.x, fm.mask)
    np.testing.assert_allclose(res.total, (xn.astype(np.float64) ** 2).sum(1) / xn.shape[1],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.per_type.sum(1), res.total, rtol=1e-5, atol=1e-7)
    assert set(res.contributions(0)) == {"objects", "types"}
    # the torch side rebuilds it too; firmware says no, with the kind's reason
    assert type(torch_model(reg)).__name__ == "ZeroNet"
    assert kind.firmware_plan(reg.card).refused == "is a toy: nothing worth a trigger path"


def test_the_toy_kind_did_not_leak_into_the_real_registry():
    assert "zero" not in available_model_kinds()
    assert available_model_kinds() == BUILTIN


def test_unknown_kind_is_a_one_line_error_listing_the_available_kinds(tmp_path):
    from hotline.models.nets import build_model

    want = "unknown model kind 'gan'; available: ae, vae, ensemble, conv-ae"
    with pytest.raises(ModelError) as exc:
        get_model_kind("gan")
    assert str(exc.value) == want
    with pytest.raises(ModelError) as exc:
        build_model({"kind": "gan", "hidden": [8]})
    assert str(exc.value) == want
    # a card of an unknown kind: the card's path, then the same line
    src = DEFAULT_REGISTRY / "ae_default" / "4"
    dst = tmp_path / "reg" / "weird" / "1"
    shutil.copytree(src, dst)
    card = json.loads((dst / "card.json").read_text())
    (dst / "card.json").write_text(json.dumps({**card, "kind": "gan"}))
    with pytest.raises(ModelError) as exc:
        load_model("weird", registry=tmp_path / "reg")
    msg = str(exc.value)
    assert "\n" not in msg and msg.endswith(f": {want}") and "card.json" in msg


def test_kinds_refuse_duplicates_and_bad_definitions(fresh_kinds):
    with pytest.raises(ModelError, match="model kind 'ae' is already registered"):
        register_model_kind(get_model_kind("ae"))
    with pytest.raises(ModelError, match="family 'images' is not one of event, occupancy"):
        ModelKind("x", "x", "images", "a:b", "a:b", "a:b", "a:b")
    with pytest.raises(ModelError, match="'members' and 'assemble' go together"):
        ModelKind("x", "x", "event", "a:b", "a:b", "a:b", "a:b", members="ae")
    with pytest.raises(ModelError, match="has no assemble handler"):
        get_model_kind("ae").assemble_members([])


def test_handler_references_resolve_on_use_and_fail_clearly():
    from hotline.models.conv_ae import ConvAEScorer
    from hotline.models.scorer import Scorer

    assert resolve("hotline.models.scorer:Scorer") is Scorer
    assert resolve("hotline.models.conv_ae:ConvAEScorer.from_model") == ConvAEScorer.from_model
    with pytest.raises(ModelError, match="not of the form 'package.module:attr'"):
        resolve("hotline.models.scorer.Scorer")
    with pytest.raises(ModelError, match="module hotline.models.scorer has no 'Nope'"):
        resolve("hotline.models.scorer:Nope")
    with pytest.raises(ModelError, match="cannot be imported"):
        resolve("hotline.models.no_such_module:x")


def test_builtin_firmware_plans_convert_or_refuse_with_the_reason():
    ae = get_model_kind("ae").firmware_plan()
    assert ae.refused is None and ae.masked and ae.retrain and ae.serving_score == "recon"
    vae = get_model_kind("vae").firmware_plan()
    assert vae.refused is None and not vae.masked and vae.serving_score == "mu2"
    ens = get_model_kind("ensemble").firmware_plan({"architecture": {"members": [{}] * 3}})
    assert ens.score_net is None and "seed ensemble of 3 AEs (3x the resources" in ens.refused
    conv = get_model_kind("conv-ae").firmware_plan()
    assert conv.score_net is not None and "Poisson deviance" in conv.refused
    with pytest.raises(ModelError, match="needs a score network or a reason"):
        FirmwarePlan()


def test_torch_model_rebuilds_every_shipped_kind_through_its_build_handler():
    import torch

    from hotline.models.conv_ae import normalise
    from hotline.models.nets import torch_model

    m = load_model("conv_muon_barrel")
    net = torch_model(m)
    sc = m.scorer()
    counts = np.full((2, *sc.geometry.shape), 30.0)
    x = normalise(counts, np.array([1e4, 2e4]), sc.reference)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sc.reconstruct(x), want, rtol=1e-5, atol=1e-5)
    ens = torch_model(load_model("ae_ensemble"))
    assert ens.kind == "ensemble" and len(ens.members) == 3


def test_event_and_occupancy_scorers_share_one_interface():
    from hotline.detectors.occupancy import synthesize_lumis
    from hotline.models.conv_ae import ConvAEScorer, DQMScores
    from hotline.models.interface import ModelScorer, Scores
    from hotline.models.scorer import Scorer, ScoreResult

    ev = load_model("ae_default").scorer()
    occ = load_model("conv_muon_barrel").scorer()
    assert isinstance(ev, Scorer) and isinstance(occ, ConvAEScorer)
    for sc in (ev, occ):
        assert isinstance(sc, ModelScorer)
        assert sc.name and sc.version == sc.card["version"]
    r = ev.score_arrays(np.zeros((3, ev.spec.n_features), np.float32),
                        np.zeros((3, ev.spec.n_objects), bool))
    geo = occ.geometry
    # inside the events-per-lumisection range the model is calibrated for
    good = synthesize_lumis(geo, 2, seed=5, run=50, events_per_lumi=10_000)
    counts = good.counts.astype(np.float64)
    counts[1, 3, 4] += 20 * counts[1, 3, 4] + 500  # one hot cell
    m = occ.score(counts, good.n_events)
    assert isinstance(r, ScoreResult) and isinstance(m, DQMScores)
    for s, n in ((r, 3), (m, 2)):
        assert isinstance(s, Scores) and len(s) == n and s.total.shape == (n,)
    # p-values from the scorer, the same way for both
    assert np.all((ev.p_value(r.total) > 0) & (ev.p_value(r.total) <= 1))
    np.testing.assert_allclose(occ.p_value(m.total, good.n_events), m.p_value)
    assert m.total[1] > occ.threshold(1e-3) > m.total[0]
    # contributions: {group: {label: value}}; per level, the units add up to the map's loss
    c = m.contributions(1)
    assert set(c) == set(geo.levels)
    for level, units in c.items():
        assert len(units) == geo.level(level).n_units
        assert sum(units.values()) == pytest.approx(float(m.cell_loss[1].sum()), rel=1e-4)
    assert set(r.contributions(0)) == {"objects", "types"}


def test_serving_never_imports_torch():
    code = textwrap.dedent("""
        import sys

        import numpy as np

        import hotline.alerts.ae_rule
        import hotline.models.scorer
        import hotline.stream.dqm_pipeline
        import hotline.stream.pipeline
        from hotline.models.kinds import available_model_kinds, get_model_kind
        from hotline.models.scorer import Scorer
        from hotline.stream.dqm_pipeline import DQMContext

        sc = Scorer.from_registry("ae_default")
        res = sc.score_arrays(np.zeros((5, sc.spec.n_features), np.float32),
                              np.zeros((5, sc.spec.n_objects), bool))
        assert res.total.shape == (5,) and np.isfinite(sc.p_value(res.total)).all()
        ctx = DQMContext.from_registry()
        assert set(ctx.scorers) == {"muon_barrel", "calo_regions"}, ctx.scorers
        occ = ctx.scorers["muon_barrel"]
        s = occ.score(np.zeros((2, *occ.geometry.shape)), np.full(2, 1000))
        assert s.total.shape == (2,)
        assert available_model_kinds() == ["ae", "vae", "ensemble", "conv-ae"]
        assert get_model_kind("ensemble").members == "ae"
        torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not torch, torch
        print("no torch")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "no torch"
