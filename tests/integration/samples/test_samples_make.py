"""``hotline samples make`` / ``list`` with real Pythia8 + fastjet on tiny recipe entries (a
few hundred events): building, skipping complete runs, a SIGKILLed make that continues to the
same events, a run made with other parameters reported and left alone, and a model trained
on the made runs whose card records the recipe entries and the code version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import pytest
import uproot

from hotline.cli import main
from hotline.training.recipe import load_recipe, make, run_status

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

RECIPE = """schema = 1
[[run]]
name = "tiny_mix"
run = 901
process = "sm_mix"
events = 120
seed = 7
chunk_size = 60
events_per_lumi = 50
fault = "none"
sample = "weighted"
used_by = ["tiny"]
[[run]]
name = "tiny_a4l"
run = 902
process = "a_4l"
events = 60
seed = 8
chunk_size = 60
sample = "data-like"
used_by = ["tiny"]
"""


def read_events(folder: Path) -> ak.Array:
    files = sorted(folder.glob("nano_*.root"))
    return ak.concatenate([uproot.open(f)["Events"].arrays() for f in files])


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny recipe made in one go through the CLI: (recipe file, archive)."""
    root = tmp_path_factory.mktemp("samples")
    recipe = root / "recipe.toml"
    recipe.write_text(RECIPE)
    archive = root / "archive"
    assert main(["samples", "make", "--recipe", str(recipe), "--archive", str(archive),
                 "--no-progress"]) == 0
    return recipe, archive


def test_make_builds_the_recipe_and_list_shows_it(made, capsys):
    recipe, archive = made
    for run, process, events in ((901, "sm_mix", 120), (902, "a_4l", 60)):
        card = json.loads((archive / f"run_{run:06d}" / "run.json").read_text())
        assert card["complete"] and card["process"] == process and card["events"] == events
        assert len(read_events(archive / f"run_{run:06d}")) == events
    card = json.loads((archive / "run_000901" / "run.json").read_text())
    assert card["seed"] == 7 and card["chunk_size"] == 60 and card["events_per_lumi"] == 50
    assert card["regenerate"] == load_recipe(recipe).get(901).command()
    capsys.readouterr()
    assert main(["samples", "list", "--recipe", str(recipe), "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "2 complete" in out and "missing" not in out
    # complete runs are skipped: nothing is generated (no file is rewritten)
    before = {f: f.stat().st_mtime_ns for f in archive.rglob("*.root")}
    assert main(["samples", "make", "--recipe", str(recipe), "--archive", str(archive),
                 "--no-progress"]) == 0
    assert "complete already: runs 901, 902" in capsys.readouterr().out
    assert {f: f.stat().st_mtime_ns for f in archive.rglob("*.root")} == before


def test_killed_make_continues_to_the_same_events(made, tmp_path, capsys):
    recipe, straight = made
    archive = tmp_path / "archive"
    cmd = [sys.executable, "-c", "import sys; from hotline.cli import main; sys.exit(main())",
           "samples", "make", "--recipe", str(recipe),
           "--archive", str(archive), "--only", "tiny_mix", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # a chunk counts once its statistics are written after its ROOT file (killed in between,
    # it is made again): wait for that, then SIGKILL
    first = archive / "run_000901" / ".generate" / "chunk_0000.json"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    entry = load_recipe(recipe).get(901)
    st = run_status(entry, archive)
    assert st.state == "partial" and st.chunks_on_disk == 1, st
    capsys.readouterr()
    assert main(["samples", "list", "--recipe", str(recipe), "--archive", str(archive),
                 "--only", "901"]) == 0
    assert "partial" in capsys.readouterr().out
    report = make([entry], archive, progress=False)
    assert report.built == [901] and report.events == 60
    assert run_status(entry, archive).state == "complete"
    a, b = read_events(archive / "run_000901"), read_events(straight / "run_000901")
    for field in ("event", "luminosityBlock", "sample", "genWeight", "Muon_pt", "Jet_pt",
                  "MET_pt"):
        assert ak.all(a[field] == b[field]), field


def test_a_run_made_otherwise_is_reported_not_reused(made, tmp_path, capsys):
    recipe, straight = made
    other = tmp_path / "recipe.toml"
    other.write_text(RECIPE.replace("seed = 8", "seed = 9"))
    archive = tmp_path / "archive"
    import shutil

    shutil.copytree(straight / "run_000902", archive / "run_000902")
    before = {f: f.stat().st_mtime_ns for f in archive.rglob("*")}
    capsys.readouterr()
    assert main(["samples", "list", "--recipe", str(other), "--archive", str(archive),
                 "--only", "tiny_a4l"]) == 0
    out = capsys.readouterr().out
    assert "differs" in out and "seed: 8 on disk, 9 in the recipe" in out
    assert main(["samples", "make", "--recipe", str(other), "--archive", str(archive),
                 "--only", "tiny_a4l", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "run 902 (tiny_a4l) differs from the recipe, left as it is" in out
    assert {f: f.stat().st_mtime_ns for f in archive.rglob("*")} == before


def test_training_on_made_runs_records_recipe_and_code(made, tmp_path, capsys):
    pytest.importorskip("torch")
    from hotline.models.registry import load_model

    recipe, archive = made
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f"""
name = "tiny"
[data]
source = "archive"
archive = "{archive}"
recipe = "{recipe}"
background = "sm_mix"
n_background = 100000
n_signal = 100000
signals = ["a_4l"]
faults = []
val_fraction = 0.2
test_fraction = 0.4
[data.runs]
sm_mix = [901]
a_4l = [902]
[training]
epochs = 2
batch_size = 32
seed = 1
[calibration]
p_values = [0.1]
n_boot = 5
[[model]]
name = "tiny_ae"
kind = "ae"
variant = "baseline"
register = true
""")
    reg = tmp_path / "registry"
    assert main(["train", "--config", str(cfg), "--register", "--registry", str(reg),
                 "--out", str(tmp_path / "runs"), "--no-plots", "--no-progress"]) == 0
    card = load_model("tiny_ae", "1", reg).card
    rec = card["training"]["recipe"]
    assert [e["run"] for e in rec["entries"]] == [901, 902]
    assert rec["entries"][0]["seed"] == 7 and rec["not_in_recipe"] == [] and not rec["differs"]
    assert rec["entries_hash"] == load_recipe(recipe).hash()
    assert len(card["training"]["code"]["source_hash"]) == 16
    # a missing pinned run names the command that makes it
    bad = cfg.read_text().replace("a_4l = [902]", "a_4l = [902]\nw_lnu = [903]")
    (tmp_path / "bad_recipe.toml").write_text(
        RECIPE + '[[run]]\nname = "tiny_w"\nrun = 903\nprocess = "w_lnu"\nevents = 60\n'
                 'seed = 3\nsample = "data-like"\n')
    bad = bad.replace(str(recipe), str(tmp_path / "bad_recipe.toml"))
    cfg.write_text(bad)
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--registry", str(reg),
                 "--out", str(tmp_path / "runs"), "--no-plots", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "runs 903 are missing or incomplete" in err
    assert "hotline samples make --only tiny_w" in err
