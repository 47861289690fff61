"""Firmware pieces that need no g++: configuration, pitfalls, hls4ml config, comparison,
resource estimates (on converted, uncompiled models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hotline.errors import ConfigError, FirmwareError
from hotline.firmware import convert as C
from hotline.firmware.emulation import (
    calibrate_thresholds,
    check_agreement,
    compare_scores,
    export_onnx,
    onnx_scores,
)
from hotline.models.nets import ae_score_net, vae_mu_score_net

CONFIGS = Path(C.__file__).resolve().parent / "configs"


# ----------------------------------------------------------------------------- configuration


def test_shipped_configs_load_and_resolve(tmp_path):
    cfg = C.load_build_config()
    assert cfg.source.endswith("default.yaml")
    assert cfg.resolved_part() == "xcvu13p-flga2577-2-e"
    assert cfg.io_type == "io_parallel" and cfg.validation.min_agreement == 0.999
    assert abs(cfg.clock_period_ns - 1000 / 240) < 1e-9
    conv = C.load_build_config(model="conv-ae")
    assert conv.source.endswith("conv-ae.yaml") and conv.precision.score != cfg.precision.score
    assert C.load_build_config(model="no_such_model").source.endswith("default.yaml")
    assert C.parse_fixed("ap_fixed<16,6,RND,SAT>") == (16, 6)
    assert C.fixed(12, 4) == "ap_fixed<12,4,RND,SAT>"


@pytest.mark.parametrize("text, match", [
    ("clock: 40\n", "unknown key"),
    ("precision:\n  default: float16\n", "not an ap_fixed"),
    ("io_type: io_serial\n", "io_type"),
    ("validation:\n  min_agreement: 1.5\n", "min_agreement"),
    ("validation:\n  bound: 0.9\n", "unknown key"),
    ("- a\n- b\n", "mapping"),
])
def test_bad_configs_are_refused(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        C.load_build_config(p)


def test_missing_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        C.load_build_config(tmp_path / "nope.yaml")


def test_target_registry():
    from hotline.firmware.targets import (
        FirmwareTarget,
        available_targets,
        get_target,
        register_target,
    )

    assert {"vu13p", "vu9p", "ku15p"} <= set(available_targets())
    assert get_target("vu9p").dsp == 6840
    with pytest.raises(FirmwareError, match="already registered"):
        register_target(FirmwareTarget("vu13p", "x"))
    with pytest.raises(FirmwareError, match="unknown firmware target 'vu99'"):
        get_target("vu99")


# ----------------------------------------------------------------------------- pitfalls


class _Deconv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.up = nn.ConvTranspose2d(2, 1, 2, stride=2)

    def forward(self, x):
        return self.up(self.conv(x))


class _Unflat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.unflat = nn.Unflatten(1, (2, 2, 2))

    def forward(self, x):
        return self.unflat(self.fc(x))


class _Reshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)

    def forward(self, x):
        return torch.reshape(self.fc(x), (-1, 2, 2, 2))


@pytest.mark.parametrize("model, match", [
    (_Deconv(), "ConvTranspose2d"), (_Unflat(), "Unflatten"), (_Reshape(), "torch.reshape"),
])
def test_rejected_layers_name_the_layer_and_the_fix(model, match):
    with pytest.raises(FirmwareError, match=match) as exc:
        C.inspect_graph(model)
    assert "instead" in str(exc.value)


def test_dense_to_view_permutation_makes_channels_last_rows():
    from hotline.firmware.standin import conv_ae

    torch.manual_seed(0)
    net = conv_ae(shape=(8, 6), dense_bottleneck=True).eval()
    rep = C.inspect_graph(net)
    assert rep.view_fixes == [("dec", (4, 4, 3))] and rep.dense_bottleneck and rep.has_conv
    fixed = C.permute_dense_for_view(net, rep.view_fixes)
    z = torch.randn(5, 8)
    chw = net.act3(net.dec(z)).view(-1, 4, 4, 3)  # what torch means
    flat = fixed.act3(fixed.dec(z))  # what hls4ml reads as (H, W, C)
    assert torch.allclose(flat.view(-1, 4, 3, 4), chw.permute(0, 2, 3, 1))
    assert not torch.allclose(net.dec(z), fixed.dec(z))  # the original is untouched


def test_io_stream_refused_for_dense_bottleneck_conv_ae(tmp_path):
    from dataclasses import replace

    from hotline.firmware.standin import conv_ae

    cfg = replace(C.load_build_config(model="conv-ae"), io_type="io_stream")
    with pytest.raises(FirmwareError, match="io_stream"):
        C.convert(conv_ae(shape=(8, 6), dense_bottleneck=True), (1, 8, 6), cfg, tmp_path)


# ----------------------------------------------------------------------------- score networks


def test_masked_ae_score_net_is_the_serving_loss():
    from hotline.models.nets import build_model, feature_mask, torch_scores

    torch.manual_seed(1)
    ae = build_model({"kind": "ae"}).eval()
    net = ae_score_net(ae, 57, masked=True)
    xn = torch.randn(64, 57)
    mask = torch.rand(64, 19) > 0.4
    fm = feature_mask(mask, 57)
    xn = xn * fm
    with torch.no_grad():
        ref = torch_scores(ae, xn, fm)["recon"]
        got = net(xn, fm)[:, 0]
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-7)


def test_vae_mu_score_net_is_mu2():
    from hotline.models.nets import build_model, torch_scores

    torch.manual_seed(2)
    vae = build_model({"kind": "vae", "score": "mu2"}).eval()
    net = vae_mu_score_net(vae.encoder, vae.mu)
    x = torch.randn(32, 57)
    with torch.no_grad():
        ref = torch_scores(vae, x, torch.ones_like(x))["mu2"]
        assert torch.allclose(net(x)[:, 0], ref, rtol=1e-5, atol=1e-7)
    assert torch.equal(net.mu_copy.weight, vae.mu.weight)


def test_hls_config_assigns_input_mask_score_and_layer_precisions():
    from hotline.models.nets import build_model

    cfg = C.load_build_config()
    net = ae_score_net(build_model({"kind": "ae"}).eval(), 57, masked=True)
    hc = C.hls_config(net, [(57,), (57,)], cfg)
    layers = hc["LayerName"]
    assert layers["x"]["Precision"]["result"] == cfg.precision.input
    assert layers["mask"]["Precision"]["result"] == C.MASK_PRECISION
    dense = layers["ae_encoder_0"]["Precision"]
    assert dense["weight"] == dense["result"] == cfg.precision.default
    assert dense["accum"] == "auto"
    for name in ("sub", "sub_1", "mul", "mul_1"):
        assert layers[name]["Precision"]["result"] == cfg.precision.score
    assert layers["score_sum"]["Precision"]["weight"] == C.SCORE_WEIGHT_PRECISION
    assert hc["Model"]["Strategy"] == "Latency" and hc["Model"]["ReuseFactor"] == 1


# ----------------------------------------------------------------------------- comparison


def test_compare_scores_counts_decision_flips_and_fails_below_bound():
    rng = np.random.default_rng(0)
    sv = rng.exponential(1.0, 10000)
    thr = calibrate_thresholds(sv, [0.01, 0.001])
    assert abs((sv > thr[0.01]).mean() - 0.01) < 2e-3
    same = compare_scores(sv.copy(), sv, thr)
    assert same.passed and same.max_abs_diff == 0 and same.worst_agreement == 1.0
    check_agreement(same)
    fw = sv.copy()
    near = np.argsort(np.abs(sv - thr[0.01]))[:30]  # push 30 events across the 1 % threshold
    fw[near] = np.where(sv[near] > thr[0.01], thr[0.01] - 1e-6, thr[0.01] + 1e-6)
    sig = np.zeros(len(sv), bool)
    sig[:100] = True
    rep = compare_scores(fw, sv, thr, sig, min_agreement=0.999)
    t = rep.at(0.01)
    assert t.disagree == 30 and t.agreement == pytest.approx(1 - 30 / 10000)
    assert t.tpr_serving is not None and rep.correlation > 0.99
    assert not rep.passed
    with pytest.raises(FirmwareError, match="disagree on the trigger decision of 30 of 10000"):
        check_agreement(rep)
    with pytest.raises(FirmwareError, match="gave 3 scores for 4 events"):
        compare_scores(np.zeros(3), np.zeros(4), thr)


def test_onnx_scores_of_exported_score_net_match_torch(tmp_path):
    from hotline.firmware.standin import dense_ae, synthetic_features

    torch.manual_seed(0)
    net = ae_score_net(dense_ae().eval(), 57)
    x = synthetic_features(300, 3)
    data = export_onnx(net, (57,), tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == data
    with torch.no_grad():
        ref = net(torch.as_tensor(x))[:, 0].numpy()
    np.testing.assert_allclose(onnx_scores(data, x, batch=128), ref, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- resources


def _converted(tmp_path, cfg):
    from hotline.models.nets import build_model

    net = ae_score_net(build_model({"kind": "ae"}).eval(), 57, masked=True)
    return C.convert(net, [(57,), (57,)], cfg, tmp_path / "p").hls_model


def test_resource_estimate_counts_multiplications_and_scales_with_clock(tmp_path):
    from dataclasses import replace

    from hotline.firmware.resources import estimate, format_estimate

    cfg = C.load_build_config()
    hm = _converted(tmp_path, cfg)
    e40, e240 = estimate(hm, 40.0), estimate(hm, 240.0)
    dense = 57 * 32 + 32 * 16 + 16 * 3 + 3 * 16 + 16 * 32 + 32 * 57
    layers = {layer.name: layer for layer in e240.layers}
    assert layers["ae_encoder_0"].multiplications == 57 * 32
    assert layers["mul_1"].multiplications == 0  # x mask bit: AND gates, no multiplier
    assert layers["mul"].multiplications == 57
    assert e240.multiplications == dense + 2 * 57  # + residual square + 1/57 score weights
    assert e240.dsp == e240.multiplications  # 16-bit operands: DSPs
    assert e240.latency_cycles > e40.latency_cycles >= 2
    assert 20 < e240.latency_ns < 200 and e40.latency_ns < 200
    assert "ESTIMATE" in format_estimate(e240)[0]
    narrow = _converted(tmp_path / "n", cfg.with_precision("ap_fixed<8,3,RND,SAT>"))
    e8 = estimate(narrow, 240.0)
    assert e8.dsp < e240.dsp / 2 and e8.lut > 0  # narrow multipliers go to LUTs
    rf4 = estimate(_converted(tmp_path / "r", replace(cfg, reuse_factor=4)), 240.0, 4)
    assert layers["ae_encoder_0"].multipliers == 4 * [
        la for la in rf4.layers if la.name == "ae_encoder_0"][0].multipliers
    assert rf4.latency_cycles > e240.latency_cycles


def test_synthesis_needs_vendor_tools_and_reports_are_parsed(monkeypatch):
    from hotline.firmware.resources import parse_synthesis, synthesize, vendor_tool

    monkeypatch.setenv("PATH", "/nonexistent")
    assert vendor_tool() is None
    with pytest.raises(FirmwareError, match="vitis-run"):
        synthesize(object())
    rep = parse_synthesis({"CSynthesisReport": {"BestLatency": "9", "WorstLatency": "9",
                                                "DSP": "812", "LUT": "40211",
                                                "EstimatedClockPeriod": "3.9"}})
    assert rep["latency_best_cycles"] == 9 and rep["dsp"] == 812 and "REAL" in rep["label"]
    with pytest.raises(FirmwareError, match="no C-synthesis report"):
        parse_synthesis({})


# ----------------------------------------------------------------------------- precision


def test_profile_layers_and_smallest_safe():
    from hotline.firmware.precision import ScanPoint, format_scan, profile_layers, smallest_safe
    from hotline.firmware.standin import dense_ae, synthetic_features

    torch.manual_seed(0)
    net = ae_score_net(dense_ae().eval(), 57)
    prof = profile_layers(net, synthetic_features(500, 1))
    names = [p.name for p in prof]
    assert "ae_encoder_0" in names and "score_sum" in names
    enc = prof[names.index("ae_encoder_0")]
    assert enc.integer_bits >= 1 + int(np.ceil(np.log2(max(abs(enc.out_min), enc.out_max))))
    pts = [ScanPoint(8, 3, {1e-4: 0.99}), ScanPoint(12, 4, {1e-4: 0.9995}),
           ScanPoint(10, 4, {1e-4: 0.9991}), ScanPoint(10, 3, {}, error="boom")]
    assert smallest_safe(pts, 1e-4, 0.999).precision == "ap_fixed<10,4,RND,SAT>"
    assert smallest_safe(pts, 1e-4, 0.9999) is None
    lines = format_scan(pts, [1e-4])
    assert "failed: boom" in lines[-1] and "99.9100%" in lines[3]


def test_model_refs_and_unknown_models(tmp_path):
    from hotline.firmware.build import resolve_model
    from hotline.firmware.source import parse_model_ref

    assert parse_model_ref("ae_default") == ("ae_default", "latest")
    assert parse_model_ref("ae:3") == ("ae", "3")
    with pytest.raises(FirmwareError, match="no name"):
        parse_model_ref(":3")
    with pytest.raises(FirmwareError, match="no model 'nope'"):
        resolve_model("nope", C.load_build_config(), str(tmp_path))


# ----------------------------------------------------------------------------- pruning


def test_pruning_zeroes_weights_keeps_them_zero_and_reports_tpr():
    from hotline.firmware.pruning import (
        format_pruning,
        l1_finetune,
        magnitude_prune,
        nonzero_multiplications,
        pruning_study,
    )
    from hotline.firmware.standin import dense_ae, synthetic_features

    torch.manual_seed(0)
    net = ae_score_net(dense_ae().eval(), 57)
    full = nonzero_multiplications(net)
    assert full == 57 * 32 + 32 * 16 + 16 * 3 + 3 * 16 + 16 * 32 + 32 * 57  # score_sum excluded
    pruned, masks = magnitude_prune(net, 0.5)
    assert nonzero_multiplications(pruned) == pytest.approx(full / 2, abs=6)
    assert nonzero_multiplications(net) == full  # the original is untouched
    assert torch.equal(pruned.score_sum.weight, net.score_sum.weight)
    x = synthetic_features(2000, 1)
    tuned = l1_finetune(pruned, masks, [x], epochs=1)
    assert nonzero_multiplications(tuned) <= nonzero_multiplications(pruned)
    for name, m in tuned.named_modules():
        if name in masks:
            assert torch.all(m.weight[masks[name] == 0] == 0)
    pts = pruning_study(net, [synthetic_features(3000, 2)], [x],
                        [synthetic_features(500, 3, signal=True)], [0.01], [0.0, 0.75], 1)
    assert pts[0].multiplications == full and pts[1].multiplications < full / 3
    assert not pts[0].retrained and pts[1].retrained
    assert all(0.0 <= pt.tpr[0.01] <= 1.0 for pt in pts)
    assert "75%" in format_pruning(pts, [0.01])[2]
    with pytest.raises(ValueError, match="fraction"):
        magnitude_prune(net, 1.0)


def test_activation_table_size_from_the_reviewed_config(tmp_path):
    """The tanh lookup-table size comes from the YAML (the tanh AE needs 4096 entries)."""
    import torch

    from hotline.firmware.convert import hls_config, load_build_config

    cfg = load_build_config()  # firmware/configs/default.yaml
    assert cfg.table_size == 4096
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    hc = hls_config(m, (4,), cfg)
    sizes = [lc["TableSize"] for lc in hc["LayerName"].values() if "TableSize" in lc]
    assert sizes == [4096]
    bad = tmp_path / "bad.yaml"
    bad.write_text("table_size: 1000\n")
    with pytest.raises(ConfigError, match="table_size must be a power of two"):
        load_build_config(bad)
