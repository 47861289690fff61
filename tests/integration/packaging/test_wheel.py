"""The built wheel, installed into clean virtual environments, as a new user gets it.

The wheel's only top-level import name is ``hotline``; its base install (no torch, Kafka,
Panel, hls4ml) runs ``hotline demo`` from package data and writes nothing into
site-packages; a command needing a missing extra names it in one line; with the
``firmware`` extra, ``hotline firmware build`` converts, compiles and validates a model,
writing its project to the user state folder. Packages come from uv's cache (hard links),
so each clean environment takes seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UV = Path(sys.executable).with_name("uv")

pytestmark = pytest.mark.packaging


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the source tree (no stale build/ folder, no local state)."""
    src = tmp_path_factory.mktemp("src") / "hotline-src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "builds", "results",
        "tests", ".*_cache"))
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                str(out), str(src)])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (whl,) = out.glob("hotline-*.whl")
    return whl


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "base"
    res = _run([str(UV), "venv", "-q", "-p", sys.executable, str(venv)])
    assert res.returncode == 0, res.stderr
    res = _run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                str(wheel)])
    assert res.returncode == 0, res.stderr
    return venv


def _user_env(home: Path) -> dict[str, str]:
    """A user whose state and cache folders are fresh (platformdirs reads XDG_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(XDG_STATE_HOME=str(home / "state"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    return env


def _site_files(venv: Path) -> set[str]:
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    return {str(p.relative_to(site)) for p in site.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_wheel_holds_one_top_level_package_and_its_data(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"hotline"}
    for needed in ("hotline/models/registry/ae_default/4/model.onnx",
                   "hotline/models/registry/ae_default/4/card.json",
                   "hotline/models/registry/ae_default/4/weights.pt",
                   "hotline/models/registry/ae_default/4/validation.json",
                   "hotline/models/registry/ae_default/validation/aec6db0ca434.npz",
                   "hotline/data/archive/run_000001/run.json",
                   "hotline/data/archive/run_000001/nano_0000.root",
                   "hotline/firmware/configs/default.yaml",
                   "hotline/detectors/geometry/muon_barrel.toml",
                   "hotline/detectors/fastsim_params.toml",
                   "hotline/detectors/aliases/run3_scouting.toml",
                   "hotline/training/configs/default.toml",
                   "hotline/training/samples.toml",
                   "hotline/training/process_defs/README.md",
                   "hotline/training/process_defs/battery.toml",
                   "hotline/models/registry/ae_typed/1/card.json"):
        assert needed in names, needed
    assert not [n for n in names if "/builds/" in n or n.endswith((".db", ".pyc"))]


def test_base_install_runs_the_demo_without_torch(clean_venv: Path, tmp_path: Path):
    py = str(clean_venv / "bin" / "python")
    for optional in ("torch", "faust", "panel", "hls4ml", "psycopg", "pythia8mc"):
        res = _run([py, "-c", f"import {optional}"])
        assert res.returncode != 0, f"{optional} is in the base install"
    before = _site_files(clean_venv)
    env = _user_env(tmp_path)
    res = _run([str(clean_venv / "bin" / "hotline"), "demo"], env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "replayed 20,000 events" in res.stdout
    assert "ae_default" in res.stdout  # the shipped anomaly model scored (onnxruntime)
    # the verdict, the certification and (without the dashboard extra) no report
    assert "Verdict: run 1 is RED" in res.stdout and "LS 25-32: red" in res.stdout
    assert "certified good: 32 of 40" in res.stdout
    # the bundled reference card (package data) gave the expectations
    assert "expectations: reference run 230 (bundled demo reference)" in res.stdout
    assert "run report: needs the dashboard extra" in res.stdout
    # the demo's alert store is in the user's state folder, not in the package, and stays
    # there for a look afterwards
    db = tmp_path / "state" / "hotline" / "demo" / "alerts.db"
    assert db.is_file() and f"alert store: sqlite:///{db}" in res.stdout
    # the sample recipe is package data and its listing needs no extra
    res = _run([str(clean_venv / "bin" / "hotline"), "samples", "list"], env=env, cwd=tmp_path)
    assert res.returncode == 0 and "sm_mix_203" in res.stdout, res.stderr
    assert _site_files(clean_venv) == before  # nothing written into site-packages
    res = _run([str(clean_venv / "bin" / "hotline"), "alerts", "--summary", "--store",
                f"sqlite:///{db}"], env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "ae_default" in res.stdout


@pytest.mark.parametrize(("command", "extra"), [
    (["dashboard", "--port", "0"], "dashboard"),
    (["report", "1"], "dashboard"),
    (["worker"], "kafka"),
    (["train", "--config", "x.toml"], "train"),
    (["samples", "make", "--only", "sm_mix_200"], "sim"),
])
def test_missing_extra_is_named_in_one_line(clean_venv: Path, tmp_path: Path,
                                            command: list[str], extra: str):
    res = _run([str(clean_venv / "bin" / "hotline"), *command], env=_user_env(tmp_path),
               cwd=tmp_path, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'hotline[{extra}]'" in lines[0], res.stderr


@pytest.mark.firmware
def test_firmware_extra_builds_firmware_into_the_state_folder(clean_venv: Path, wheel: Path,
                                                              tmp_path: Path):
    res = _run([str(UV), "pip", "install", "-q", "--python", str(clean_venv / "bin" / "python"),
                f"{wheel}[firmware]"])
    assert res.returncode == 0, res.stderr
    before = _site_files(clean_venv)
    env = _user_env(tmp_path)
    res = _run([str(clean_venv / "bin" / "hotline"), "firmware", "build", "standin-ae"],
               env=env, cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    build = tmp_path / "state" / "hotline" / "firmware" / "standin-ae" / "0"
    assert (build / "report.json").is_file() and (build / "hls").is_dir()
    assert _site_files(clean_venv) == before
