"""Shared fixtures: tiny real ROOT files (good and bad), CMS NanoAOD samples, stores, and
tiny trained models (an AE, a VAE, a DQM conv-AE) in temporary registries (seconds).

Detection-quality tests use the small trained models shipped in ``models/registry``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from tests.support.models import make_tiny_model, train_tiny_dqm

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def secrets_key_file(tmp_path_factory) -> Iterator[Path]:
    """The key of the webhook signing secrets for the whole session (and the processes it
    starts), never the user's own default key file (``alerts.secrets_at_rest``)."""
    from hotline.alerts.secrets_at_rest import KEY_ENV, KEY_FILE_ENV

    path = tmp_path_factory.mktemp("secrets") / "secrets.key"
    saved = {k: os.environ.pop(k, None) for k in (KEY_ENV, KEY_FILE_ENV)}
    os.environ[KEY_FILE_ENV] = str(path)
    yield path
    for k, v in saved.items():
        os.environ.pop(k, None)
        if v is not None:
            os.environ[k] = v


def make_events(n: int, seed: int = 1, run: int = 1, events_per_lumi: int = 50) -> ak.Array:
    """A small NanoAOD-like chunk with electrons, muons, jets, photons and MET."""
    rng = np.random.default_rng(seed)

    def coll(mean_n: float, pt_scale: float, eta_max: float) -> ak.Array:
        counts = rng.poisson(mean_n, n)
        tot = int(counts.sum())
        pt = (rng.exponential(pt_scale, tot) + 5).astype(np.float32)
        eta = rng.uniform(-eta_max, eta_max, tot).astype(np.float32)
        phi = rng.uniform(-np.pi, np.pi, tot).astype(np.float32)
        return ak.unflatten(ak.zip({"pt": pt, "eta": eta, "phi": phi}), counts)

    idx = np.arange(n)
    fields = {
        "run": np.full(n, run, np.uint32),
        "luminosityBlock": (idx // events_per_lumi + 1).astype(np.uint32),
        "event": (idx + 1).astype(np.uint64),
        "MET_pt": rng.exponential(40, n).astype(np.float32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
    }
    for name, (m, s, e) in {"Electron": (0.6, 25, 2.5), "Muon": (0.8, 25, 2.4),
                            "Jet": (3.0, 40, 4.7), "Photon": (0.3, 20, 2.5)}.items():
        c = coll(m, s, e)
        for f in ("pt", "eta", "phi"):
            fields[f"{name}_{f}"] = c[f]
    return ak.Array(fields)


@pytest.fixture(scope="session")
def cms_samples() -> Path:
    """Real CMS NanoAOD files (coffea sdist from PyPI, cached)."""
    from tests.support.fetch import cms_samples as fetch

    try:
        return fetch()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            raise
        pytest.skip(f"CMS samples unavailable ({exc}); run python -m tests.support.fetch")


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """An archive with run 7 (two good files, 600 events, 50 events per lumisection)."""
    from hotline.stream.archive_writer import write_run

    arrays = make_events(600, seed=3, run=7)
    write_run(tmp_path / "archive", 7, arrays, events_per_file=300,
              card={"description": "test run"})
    return tmp_path / "archive"


@pytest.fixture
def store(tmp_path: Path):
    from hotline.alerts.store import SQLiteAlertStore

    s = SQLiteAlertStore(tmp_path / "alerts.db")
    yield s
    s.close()


# --------------------------------------------------------------------- tiny trained models


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
