"""Fixtures for model integration tests: a tiny trained AE and VAE in a temporary registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import make_tiny_model


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    """A registry with a tiny AE ('tiny') and a tiny VAE scored by mu^2 ('tiny_vae')."""
    reg = tmp_path_factory.mktemp("models") / "registry"
    make_tiny_model(reg, "tiny", {"kind": "ae", "variant": "leaky_bn"})
    make_tiny_model(reg, "tiny_vae", {"kind": "vae", "variant": "elu_bn", "score": "mu2"})
    return reg
