"""The conv-AE: hls4ml-friendly graph, ONNX = torch, Poisson loss, scorer, registry card."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from hotline.detectors.geometry import get_geometry
from hotline.detectors.occupancy import synthesize_lumis
from hotline.errors import ModelError
from hotline.models.conv_ae import ConvAEScorer, poisson_deviance
from hotline.models.conv_ae_net import build_conv_ae, default_arch, export_onnx
from hotline.models.registry import available_models, load_model


@pytest.mark.parametrize("name", ["muon_barrel", "calo_regions"])
def test_onnx_graph_matches_torch_and_uses_only_hls4ml_friendly_ops(name, tmp_path):
    geo = get_geometry(name)
    arch = default_arch(geo)
    torch.manual_seed(1)
    model = build_conv_ae(arch).eval()
    path = export_onnx(model, tmp_path / "m.onnx", arch=arch)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops <= {"Conv", "Relu", "AveragePool", "Resize", "Identity"}
    assert not ops & {"ConvTranspose", "Reshape", "Flatten", "Gemm"}
    x = np.random.default_rng(0).uniform(0.5, 1.5, (3, 1, *geo.shape)).astype(np.float32)
    import onnxruntime as ort

    got = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    want = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got.shape == x.shape


def test_poisson_deviance():
    n = np.array([0.0, 5.0, 5.0, 100.0])
    mu = np.array([3.0, 5.0, 10.0, 50.0])
    d = poisson_deviance(n, mu)
    assert d[1] == pytest.approx(0.0)
    assert d[0] == pytest.approx(6.0)  # a dead cell costs 2 mu
    assert d[3] > d[2] > 0


def test_tiny_registered_models(tiny_dqm_registry):
    models = {m["name"]: m for m in available_models(tiny_dqm_registry)}
    assert set(models) == {"conv_calo_regions"} and models["conv_calo_regions"]["kind"] == "conv-ae"
    m = load_model("conv_calo_regions", registry=tiny_dqm_registry)
    card = m.card
    assert card["kind"] == "conv-ae" and card["geometry"]["name"] == "calo_regions"
    assert len(card["normalisation"]["reference"]) == 252
    assert card["architecture"]["pools"] == [[3, 1], [6, 1]]
    assert len(card["unit_null"]["mean"]) == 252 + 126 + 36 + 18
    assert {t["p"] for t in card["thresholds"]} >= {0.05, 0.01, 1e-3}
    assert card["onnx"]["sha256"] and "hotline dqm train" in card["regenerate"]
    assert m.onnx_path.stat().st_size < 1_000_000
    json.dumps(card)


def test_shipped_models_are_small_and_documented():
    for g in ("muon_barrel", "calo_regions"):
        m = load_model(f"conv_{g}")
        assert m.card["kind"] == "conv-ae" and m.card["geometry"]["name"] == g
        assert m.onnx_path.stat().st_size + (m.path / "card.json").stat().st_size < 1_000_000
        assert m.card["regenerate"].startswith("hotline dqm train")
        assert m.card["training"]["n_calib"] >= 1000


def test_scorer_finds_a_dead_board():
    sc = ConvAEScorer.from_registry("conv_muon_barrel")
    geo = sc.geometry
    # 7k-13k events per lumisection: inside the range the model is calibrated for
    good = synthesize_lumis(geo, 20, seed=5, run=50, events_per_lumi=10_000)
    s = sc.score(good.counts, good.n_events)
    assert s.cell_loss.shape == (20, 960) and s.unit_logp.shape[1] == geo.membership[0].shape[1]
    assert np.all(s.p_value > 1e-4)
    from hotline.detectors.occupancy_faults import Fault, inject

    bad, (t,) = inject(good.counts[0], geo, [Fault("dead_board", unit="W0 S03")])
    b = sc.score(bad[None], good.n_events[:1])
    assert b.total[0] > 5 * sc.threshold(1e-3, good.n_events[0])
    assert b.p_value[0] < 1e-4
    top = b.top_units(0, 3)
    assert any(u["unit"].startswith("W0 S03") for u in top)
    assert int(np.argmax(b.level_scores("board")[0])) == t.units[0]
    with pytest.raises(ModelError, match="does not fit geometry"):
        sc.score(np.zeros((1, 18, 14)), np.ones(1))


def test_whitened_unit_test_is_standard_on_good_data_and_beats_the_plain_sum():
    from hotline.models.conv_ae import whiten_units, whitened_z

    rng = np.random.default_rng(3)
    n, k = 20_000, 4
    mu = np.tile([400.0, 100.0, 100.0, 900.0], (n, 1))
    # a common mode (one track crossing every station) on top of independent noise
    common = rng.normal(0.0, 1.0, (n, 1)) * np.sqrt(mu) * np.array([0.9, 0.9, 0.9, 0.2])
    r_good = rng.normal(0.0, 1.0, (n, k)) + common / np.sqrt(mu)
    cells = np.arange(k)[None]
    wd = {key: np.asarray(v, np.float64)
          for key, v in whiten_units(r_good[: n // 2], mu[: n // 2], cells).items()}
    z_null = whitened_z(r_good[n // 2 :], wd)[:, 0]
    assert abs(z_null.std() - 1.0) < 0.03 and abs(z_null.mean()) < 0.03
    # a coherent 3 % efficiency drop: r moves by -0.03 sqrt(mu)
    r_bad = r_good[n // 2 :] - 0.03 * np.sqrt(mu[n // 2 :])
    z_bad = whitened_z(r_bad, wd)[:, 0]
    plain = (r_good[n // 2 :] * np.sqrt(mu[n // 2 :])).sum(axis=1)
    plain_bad = (r_bad * np.sqrt(mu[n // 2 :])).sum(axis=1)
    snr_plain = -(plain_bad.mean() - plain.mean()) / plain.std()
    snr_white = -(z_bad.mean() - z_null.mean())
    assert snr_white > 1.1 * snr_plain


def test_shipped_muon_model_sees_a_20_percent_efficiency_drop_in_one_sector():
    from hotline.detectors.occupancy_faults import Fault, inject

    sc = ConvAEScorer.from_registry("conv_muon_barrel")
    assert set(sc.whiten) == {"chamber", "sector"}
    epl = sc.card["calibration"]["events_per_lumi"]
    geo = sc.geometry
    ls = synthesize_lumis(geo, 20, seed=9, run=60, events_per_lumi=epl)
    bad, truth = [], []
    for i in range(len(ls)):
        c, (t,) = inject(ls.counts[i], geo, [Fault("hv_drop", 0.2, seed=i)], seed=4)
        bad.append(c)
        truth.append(t.units[0])
    s = sc.score(np.array(bad), ls.n_events)
    det = s.total > sc.threshold(1e-3)
    assert det.sum() >= 15
    top = np.argmax(s.level_scores("sector"), axis=1)
    assert (top[det] == np.array(truth)[det]).mean() >= 0.9


def test_recalibrate_registers_a_new_version_with_the_same_network(tiny_dqm_registry, tmp_path):
    import shutil

    from hotline.training.dqm import recalibrate_dqm

    reg = tmp_path / "reg"
    shutil.copytree(tiny_dqm_registry, reg)
    old = load_model("conv_calo_regions", registry=reg)
    new = recalibrate_dqm("conv_calo_regions", reg, events_per_lumi=20_000, version=2)
    assert new.version == "2" and old.version == "1"
    assert new.card["onnx"]["sha256"] == old.card["onnx"]["sha256"]
    assert new.card["calibration"]["events_per_lumi"] == 20_000
    assert "--recalibrate --events-per-lumi 20000" in new.card["calibration"]["regenerate"]
    assert new.card["unit_null"]["whiten"]  # calo levels of equal-size units are whitened
    assert load_model("conv_calo_regions", registry=reg).version == "2"
    assert (reg / "conv_calo_regions" / "1" / "card.json").read_text() == (
        tiny_dqm_registry / "conv_calo_regions" / "1" / "card.json").read_text()
