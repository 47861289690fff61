"""Unit-test fixtures shared across packages: tiny trained models (seconds; plumbing only).

Detection-quality tests use the small trained models shipped in ``models/registry``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import make_tiny_model, train_tiny_dqm


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    """A registry with a tiny AE ('tiny') and a tiny VAE scored by mu^2 ('tiny_vae')."""
    reg = tmp_path_factory.mktemp("models") / "registry"
    make_tiny_model(reg, "tiny", {"kind": "ae", "variant": "leaky_bn"})
    make_tiny_model(reg, "tiny_vae", {"kind": "vae", "variant": "elu_bn", "score": "mu2"})
    return reg


@pytest.fixture(scope="session")
def tiny_dqm_registry(tmp_path_factory) -> Path:
    """A registry with a tiny conv-AE for the calo_regions subsystem."""
    return train_tiny_dqm(tmp_path_factory.mktemp("dqm-registry"))


@pytest.fixture(scope="session")
def shipped_ctx():
    """DQM context over the conv-AEs shipped in models/registry."""
    from hotline.stream.dqm_pipeline import DQMContext

    return DQMContext.from_registry(["muon_barrel", "calo_regions"], None, p_value=1e-3)
