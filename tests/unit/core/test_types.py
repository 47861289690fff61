"""The type checker passes on the core modules, detectors, models, alerts and stream.

Runs ``mypy`` from the repository root with the project configuration (``[tool.mypy]`` in
pyproject.toml: which packages, how strict, which third-party packages have no types), as CI
and a developer would, with a fresh cache so a stale one cannot hide an error.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_mypy_configuration_covers_the_checked_packages():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(cfg["packages"]) == {"hotline.detectors", "hotline.models", "hotline.alerts",
                                    "hotline.stream"}
    assert set(cfg["modules"]) >= {"hotline.config", "hotline.errors", "hotline.registry"}
    assert cfg["disallow_untyped_defs"] and cfg["check_untyped_defs"]


def test_mypy_passes(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
         "--cache-dir", str(tmp_path / "mypy_cache"), "--no-color-output", "--no-pretty"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    print(r.stdout)
    print(r.stderr, file=sys.stderr)
    assert r.returncode == 0, f"mypy failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"
