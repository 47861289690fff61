"""Fixtures shared by several integration areas: the real firmware builds of ae_default
(``tests/support/firmware_builds.py``), made once per session whoever asks first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import firmware_builds


@pytest.fixture(scope="session")
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``hotline firmware build ae_default`` with an empty sample cache and state folder."""
    return firmware_builds.shipped_build(tmp_path_factory.mktemp("fwloop"))


@pytest.fixture(scope="session")
def narrow_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ae_default deployed with ap_fixed<16,2>: two integer bits saturate its inputs."""
    return firmware_builds.narrow_build(tmp_path_factory.mktemp("narrow") / "ae_default")
