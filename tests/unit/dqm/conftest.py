"""DQM fixtures: tiny conv-AEs trained into a temporary registry (seconds; plumbing only).

Detection-quality tests use the small trained models shipped in ``models/registry``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def train_tiny(registry: Path, geometries=("calo_regions",)) -> Path:
    from hotline.detectors.geometry import get_geometry
    from hotline.training.dqm import TrainSettings, train_dqm

    for g in geometries:
        s = TrainSettings(n_train=200, n_null=100, n_calib=300, epochs=2, batch_size=32,
                          seed=0, n_boot=3)
        train_dqm(get_geometry(g), s, registry=registry, progress=False)
    return registry


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("dqm-registry"))


@pytest.fixture(scope="session")
def shipped_ctx():
    """DQM context over the conv-AEs shipped in models/registry."""
    from hotline.stream.dqm_pipeline import DQMContext

    return DQMContext.from_registry(["muon_barrel", "calo_regions"], None, p_value=1e-3)
