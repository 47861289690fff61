"""Fixtures for the firmware integration tests: a tiny trained registry (AE + VAE)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def fw_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with ``ae_fw`` (dense AE) and ``vae_fw`` (VAE scored by mu2), trained for
    a few seconds on the synthetic sample by the real training driver."""
    from hotline.training.train import TrainConfig, run_training

    cfg = TrainConfig.from_dict({
        "name": "fwtest",
        "data": {"source": "synthetic", "background": "sm", "n_background": 12000,
                 "n_signal": 1000, "signals": ["A4l"], "faults": []},
        "normalisation": {"scheme": "custom"},
        "training": {"epochs": 3, "batch_size": 512, "lr": 0.003, "patience": 3, "seed": 1,
                     "threads": 1},
        "calibration": {"p_values": [0.01, 1e-3]},
        "model": [{"name": "ae_fw", "kind": "ae", "hidden": [32, 16], "latent": 3},
                  {"name": "vae_fw", "kind": "vae", "hidden": [32, 16], "latent": 3,
                   "score": "mu2"}],
    })
    out = tmp_path_factory.mktemp("fwtrain")
    res = run_training(cfg, out=out, progress=False, plots=False)
    return Path(res["models"]["ae_fw"]["registry"]).parent.parent


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """A reviewed-style YAML with a small validation sample (fast comparisons)."""
    p = tmp_path / "small.yaml"
    p.write_text(
        "target: vu13p\nclock_mhz: 240\nio_type: io_parallel\nstrategy: Latency\n"
        "reuse_factor: 1\n"
        "precision:\n  input: ap_fixed<16,6,RND,SAT>\n  default: ap_fixed<16,6,RND,SAT>\n"
        "  accum: auto\n  score: ap_fixed<26,8,RND,SAT>\n"
        "validation:\n  n_events: 4000\n  n_signal: 1000\n  p_values: [0.01, 0.001]\n"
        "  min_agreement: 0.999\n"
        "scan:\n  widths: [10]\n  integers: [4]\n"
    )
    return p
