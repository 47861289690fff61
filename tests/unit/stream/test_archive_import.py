"""``hotline archive import`` on real ROOT files: events get the run number of the import,
an existing run is replaced only with --force (no stale files), the union of the inputs'
collections is kept without inventing any, foreign schemas / duplicate events / merging
relabels are refused in one line before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hotline.alerts.store import SQLiteAlertStore
from hotline.cli import main
from hotline.errors import SourceError
from hotline.stream.archive import find_run
from hotline.stream.archive_writer import import_run, to_tree_dict, write_tree
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.replay import ReplaySource
from tests.conftest import make_events

BRANCHES = PipelineContext().branches()


def write(path: Path, arrays: ak.Array) -> Path:
    with uproot.recreate(path) as f:
        write_tree(f, "Events", to_tree_dict(arrays))
    return path


def without(arrays: ak.Array, prefix: str) -> ak.Array:
    return arrays[[f for f in arrays.fields if not f.startswith(prefix)]]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """Run 1 with photons; run 2 without any photon branch (other event numbers)."""
    a = make_events(300, seed=11, run=1)
    a = ak.with_field(a, a["Photon_pt"] * 6, "Photon_pt")  # hard photons: photon rules fire
    b = make_events(200, seed=12, run=2)
    b = ak.with_field(without(b, "Photon"), b["event"] + 10_000, "event")
    return write(tmp_path / "a.root", a), write(tmp_path / "b.root", b)


def _replay(files, store, source="hotline"):
    return run_embedded(ReplaySource(files=files, branches=BRANCHES, source=source),
                        PipelineContext(), store)


def test_import_relabels_to_the_run_and_keeps_the_union_of_collections(tmp_path, inputs,
                                                                      capsys):
    a, b = inputs
    arch = tmp_path / "arch"
    assert main(["archive", "import", "4242", str(a), str(b), "--archive", str(arch)]) == 0
    out = capsys.readouterr().out
    assert "relabelled 500 events from run(s) 1, 2 to 4242" in out
    assert "b.root has no Photon" in out and "wrote 500 events from 2 file(s)" in out
    run = find_run(arch, 4242)
    assert len(run.files) == 2  # one output per input: each keeps exactly its branches
    with uproot.open(run.files[0]) as f0, uproot.open(run.files[1]) as f1:
        assert "Photon_pt" in f0["Events"].keys() and "Photon_pt" not in f1["Events"].keys()
        assert set(f0["Events"]["run"].array(library="np")) == {4242}
        assert set(f1["Events"]["run"].array(library="np")) == {4242}
        # the other ids are the events' own
        assert np.array_equal(f1["Events"]["event"].array(library="np"),
                              np.arange(1, 201) + 10_000)
    card = json.loads((run.path / "run.json").read_text())
    assert card["relabelled"] == {"events": 500, "from_runs": [1, 2]}
    assert [i["collections"] for i in card["inputs"]][1] == ["MET", "Electron", "Muon", "Jet"]

    # the photon rule sees the photons of the file that has them, nothing is invented for
    # the other: same photon alerts as file a alone, relabelled the same way
    db = tmp_path / "a.db"
    assert main(["replay", "4242", "--archive", str(arch), "--store", f"sqlite:///{db}",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["alerts", "--store", f"sqlite:///{db}", "--run", "4242", "--json"]) == 0
    alerts = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert alerts and {x["run"] for x in alerts} == {4242}
    pho = sorted(x["event"] for x in alerts if x["rule"] in ("1pho_pt100", "3pho_pt20"))
    assert pho and all(e <= 300 for e in pho)
    arch_a = tmp_path / "arch_a"
    import_run(arch_a, 4242, [a], BRANCHES)
    with SQLiteAlertStore(tmp_path / "ref.db") as ref:
        _replay(find_run(arch_a, 4242).files, ref)
        ref_pho = sorted(x.event for x in ref.alerts(limit=None, rule=["1pho_pt100",
                                                                         "3pho_pt20"]))
    assert pho == ref_pho
    with SQLiteAlertStore(db) as st:
        sums = st.summaries(run=4242)
    assert sum(s.n_events for s in sums) == 500
    assert sum(s.rule_counts.get("1pho_pt100", 0) for s in sums) == sum(
        1 for x in alerts if x["rule"] == "1pho_pt100")
    assert all("1pho_pt100" in s.unavailable for s in sums if s.lumi <= 4)  # b's lumis


def test_existing_run_needs_force_which_removes_the_old_files(tmp_path, inputs, archive,
                                                             capsys):
    a, _ = inputs
    old = find_run(archive, 7)
    assert len(old.files) == 2
    assert main(["archive", "import", "7", str(a), "--archive", str(archive)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run 7 already exists" in err and str(old.path) in err
    assert find_run(archive, 7).files == old.files  # untouched
    assert main(["archive", "import", "7", str(a), "--archive", str(archive), "--force"]) == 0
    assert "removed its 3 old file(s)" in capsys.readouterr().out
    new = find_run(archive, 7)
    assert [p.name for p in new.files] == ["nano_0000.root"]  # no stale nano_0001.root
    assert json.loads((new.path / "run.json").read_text())["events"] == 300
    assert not [p for p in archive.iterdir() if p.name.startswith(".")]  # no temp folder


def test_foreign_schema_is_refused_in_one_line(tmp_path, inputs, capsys):
    n = 20
    scouting = ak.Array({
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
        "event": np.arange(1, n + 1, dtype=np.uint64),
        "ScoutingMuon_pt": ak.Array([[30.0]] * n), "L1_HT": np.ones(n, np.float32)})
    f = write(tmp_path / "scouting.root", scouting)
    arch = tmp_path / "arch"
    assert main(["archive", "import", "5", str(inputs[0]), str(f), "--archive",
                 str(arch)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "scouting.root" in err
    assert "no known physics collections" in err and "Muon" in err and "L1_HT" in err
    assert not arch.exists() or not list(arch.iterdir())  # nothing written


@pytest.mark.parametrize("case", ["same file twice", "overlapping files", "merging relabel"])
def test_events_that_would_count_twice_are_refused(tmp_path, inputs, case):
    a, b = inputs
    if case == "same file twice":
        files, match = [a, a], "a.root is given twice"
    elif case == "overlapping files":
        c = write(tmp_path / "c.root", make_events(300, seed=13, run=1)[250:])
        files, match = [a, c], "c.root repeats events of .*a.root .*run 1 lumisection 6 event 251"
    else:
        c = write(tmp_path / "c.root", make_events(50, seed=5, run=3))
        files, match = [a, c], ("relabelling would merge distinct events: run 1 .* and run 3 "
                                ".* both have lumisection 1 event 1")
    with pytest.raises(SourceError, match=match):
        import_run(tmp_path / "arch", 9, files, BRANCHES)
    assert not (tmp_path / "arch").exists()


def test_new_ids_continue_across_inputs(tmp_path, inputs, capsys):
    a, b = inputs
    c = write(tmp_path / "c.root", make_events(50, seed=5, run=3))  # ids clash with a's
    arch = tmp_path / "arch"
    assert main(["archive", "import", "8", str(a), str(b), str(c), "--archive", str(arch),
                 "--events-per-lumi", "120"]) == 0
    assert "gave 550 events new ids: run 8, 120 events per lumisection" in (
        capsys.readouterr().out)
    ids = []
    for f in find_run(arch, 8).files:
        with uproot.open(f) as fh:
            ids.append(fh["Events"].arrays(["run", "luminosityBlock", "event"], library="np"))
    ev = np.concatenate([x["event"] for x in ids])
    ls = np.concatenate([x["luminosityBlock"] for x in ids])
    assert np.array_equal(ev, np.arange(1, 551))
    assert np.array_equal(ls, (np.arange(550) // 120) + 1)


def test_inconsistent_collection_leaves_old_run_and_no_temp_files(tmp_path, inputs, archive):
    a, _ = inputs
    bad = tmp_path / "bad.root"
    n = 10
    with uproot.recreate(bad) as f:  # Muon_pt and Muon_eta with different multiplicities
        f["Events"] = {"run": np.full(n, 2, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
                       "event": np.arange(1, n + 1, dtype=np.uint64) + 50_000,
                       "Muon_pt": ak.Array([[20.0, 30.0]] * n),
                       "Muon_eta": ak.Array([[0.1]] * n)}
    old = find_run(archive, 7).files
    with pytest.raises(SourceError, match=r"bad.root: its collections are not consistent"):
        import_run(archive, 7, [a, bad], BRANCHES, force=True)
    assert find_run(archive, 7).files == old
    assert sorted(p.name for p in archive.iterdir()) == ["run_000007"]


@pytest.mark.parametrize(("argv", "match"), [
    (["-1"], "run number must be in 0"),
    (["5", "--events-per-lumi", "0"], "--events-per-lumi must be >= 1"),
])
def test_bad_arguments(tmp_path, inputs, capsys, argv, match):
    run, *opts = argv
    assert main(["archive", "import", run, str(inputs[0]), "--archive", str(tmp_path),
                 *opts]) == 2
    assert match in capsys.readouterr().err
