"""hls4ml builds compiled with g++ and compared with onnxruntime (4 compiles in total)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hotline.errors import FirmwareError

pytestmark = pytest.mark.firmware


def test_cli_build_of_registered_ae_agrees_with_serving(fw_registry, small_config, tmp_path,
                                                         capsys):
    from hotline.cli import main

    out = tmp_path / "builds"
    rc = main(["firmware", "build", "ae_fw", "--registry", str(fw_registry), "--out", str(out),
               "--fw-config", str(small_config), "--trace"])
    text = capsys.readouterr().out
    assert rc == 0, text
    build = out / "ae_fw" / "1"
    report = json.loads((build / "report.json").read_text())
    emu = report["emulation"]
    assert emu["passed"] and emu["n_events"] == 5000
    assert emu["correlation"] > 0.999
    assert all(t["agreement"] >= 0.999 for t in emu["thresholds"])
    assert {t["p"] for t in emu["thresholds"]} >= {0.01}
    # the conversion and compile times are recorded (bench_firmware holds them to the budget)
    assert report["convert_s"] > 0 and report["compile_s"] > 0
    assert (build / "emulation.png").stat().st_size > 1000
    assert (build / "config.yaml").read_text() == small_config.read_text()
    assert list((build / "hls" / "firmware").glob("myproject*.so"))
    est = report["estimates"]
    assert est["240MHz"]["latency_cycles"] > est["40MHz"]["latency_cycles"] >= 2
    assert est["240MHz"]["multiplications"] > 3000  # 57x32 + 32x16 + ... twice
    assert "ESTIMATE" in text and "PASS" in text
    trace = report["trace_max_abs_diff"]  # per-layer: firmware vs torch
    assert {"ae_encoder_0", "ae_decoder_4", "score_sum"} <= set(trace)
    assert 0 < trace["ae_encoder_0"] < 0.05 and trace["score_sum"] < 1e-3


def test_build_fails_when_decisions_disagree(fw_registry, small_config, tmp_path):
    """The VAE mu^2 encoder at ap_fixed<6,3> cannot resolve its thresholds: the build fails."""
    from dataclasses import replace

    from hotline.firmware.build import build, resolve_model
    from hotline.firmware.convert import load_build_config

    cfg = load_build_config(small_config)
    src = resolve_model("vae_fw", cfg, str(fw_registry))
    assert src.kind == "vae" and src.input_shape == (57,)
    narrow = replace(cfg, precision=replace(cfg.precision, default="ap_fixed<6,3,RND,SAT>",
                                            input="ap_fixed<6,3,RND,SAT>"))
    with pytest.raises(FirmwareError, match="disagree on the trigger decision"):
        build(src, narrow, tmp_path / "vae")
    report = json.loads((tmp_path / "vae" / "report.json").read_text())
    assert report["emulation"]["passed"] is False
    assert report["emulation"]["worst_agreement"] < 0.999


def test_width_scan_point_and_outputs(fw_registry, small_config, tmp_path):
    from hotline.firmware.build import resolve_model
    from hotline.firmware.convert import load_build_config
    from hotline.firmware.precision import save_scan, smallest_safe, width_scan

    cfg = load_build_config(small_config)
    src = resolve_model("ae_fw", cfg, str(fw_registry))
    points = width_scan(src, cfg, [10], [4], tmp_path / "work")
    assert len(points) == 1 and not points[0].error
    pt = points[0]
    assert pt.precision == "ap_fixed<10,4,RND,SAT>"
    assert set(pt.agreement) == set(src.thresholds)
    assert all(0.9 < a <= 1.0 for a in pt.agreement.values())
    assert 0.9 < pt.correlation <= 1.0
    best = smallest_safe(points, 0.01, 0.0)
    assert best is pt
    save_scan(points, tmp_path / "scan", sorted(src.thresholds), 0.999)
    assert (tmp_path / "scan" / "scan.png").stat().st_size > 1000
    assert not (tmp_path / "work" / "w10_i4").exists()  # scan projects are cleaned up


def test_dense_to_view_conv_ae_is_reordered_correctly(tmp_path):
    """Linear -> view(-1,C,H,W) -> upsample -> conv: rows permuted, output matches torch."""
    import torch

    from hotline.firmware.convert import compile_emulation, convert, load_build_config
    from hotline.firmware.standin import conv_ae

    torch.manual_seed(3)
    net = conv_ae(shape=(8, 6), dense_bottleneck=True).eval()
    cfg = load_build_config(Path(__file__).resolve().parents[3] / "firmware/configs/conv-ae.yaml")
    conv = compile_emulation(convert(net, (1, 8, 6), cfg, tmp_path / "conv"))
    assert conv.graph.view_fixes == [("dec", (4, 4, 3))]
    x = np.random.default_rng(1).normal(1.0, 0.3, (200, 1, 8, 6)).astype(np.float32)
    ref = net(torch.as_tensor(x)).detach().numpy()
    y = np.asarray(conv.hls_model.predict(np.ascontiguousarray(np.moveaxis(x, 1, -1))))
    y = np.moveaxis(y.reshape(200, 8, 6, 1), -1, 1)
    # without the permutation the map is scrambled: differences of the order of the outputs
    assert np.abs(y - ref).max() < 0.02 * max(1.0, np.abs(ref).max())
