"""``hotline replay`` over several files: exit status, per-file summary, each problem once,
clear reasons for empty / tiny / damaged files, impossible options refused before any file
is read, and --from-lumi past the end said as such. Real ROOT files written with uproot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hotline.cli import main
from tests.conftest import make_events
from tests.support.rootfiles import damage_basket, write_events


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = write_events(tmp_path / "good.root", make_events(300, seed=1, run=6))  # LS 1-6
    damaged = write_events(tmp_path / "damaged.root",
                           make_events(1000, seed=2, run=6)[300:], basket_events=100)
    damage_basket(damaged, "Jet_pt", 4)  # events 400..499 of this file cannot be read
    empty = tmp_path / "empty.root"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.root"
    tiny.write_bytes(b"not a ROOT file\n" * 20)  # 320 bytes
    return {"good": good, "damaged": damaged, "empty": empty, "tiny": tiny}


def _run(capsys, *argv: str, tmp_path: Path) -> tuple[int, str, str]:
    rc = main(["replay", *argv, "--store", f"sqlite:///{tmp_path / 'a.db'}", "--no-progress"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_multi_file_replay_summary_and_exit_status(files, tmp_path, capsys):
    order = ["good", "empty", "damaged", "tiny"]
    rc, out, err = _run(capsys, "--files", *(str(files[k]) for k in order), "--step-size",
                        "100", tmp_path=tmp_path)
    assert rc == 1  # some files failed, the rest was replayed
    assert "replayed 700 events" in out
    rows = {k: next(line for line in out.splitlines() if files[k].name in line)
            for k in order}
    assert re.search(r"ok +300 events", rows["good"])
    assert re.search(r"FAILED +0 events .*empty.root: empty file \(0 bytes\)", rows["empty"])
    assert re.search(r"FAILED +0 events .*tiny.root: not a ROOT file \(320 bytes", rows["tiny"])
    # the damaged file's own count (400), not the running total (700)
    assert re.search(r"FAILED +400 events .*damaged.root: file is damaged after 400 of its 700 "
                     r"events \(error: ", rows["damaged"])
    assert "files: 4 given, 3 failed" in out and "Chunk of length" not in out
    # every problem printed once: no log warnings, no repeated warning lines
    assert err == ""
    for k in ("empty", "damaged", "tiny"):
        assert (out + err).count(files[k].name) == 1


def test_all_files_bad_is_one_line_naming_them(files, tmp_path, capsys):
    rc, out, err = _run(capsys, "--files", str(files["empty"]), str(files["tiny"]),
                        tmp_path=tmp_path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "no events were replayed" in err
    assert "empty.root: empty file (0 bytes)" in err and "tiny.root: not a ROOT file" in err


@pytest.mark.parametrize("rate", ["nan", "inf", "-5", "0"])
def test_impossible_rate_refused_before_any_file(files, tmp_path, capsys, rate):
    rc, out, err = _run(capsys, "--files", str(files["good"]), "--rate", rate,
                        tmp_path=tmp_path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "--rate must be a positive, finite number" in err
    assert "good.root" not in err


def test_from_lumi_checked_and_past_the_end_said(files, tmp_path, capsys):
    rc, _, err = _run(capsys, "--files", str(files["good"]), "--from-lumi", "-1",
                      tmp_path=tmp_path)
    assert rc == 2 and "--from-lumi must be a lumisection number (>= 0), got -1" in err
    rc, out, err = _run(capsys, "--files", str(files["good"]), "--from-lumi", "40",
                        tmp_path=tmp_path)
    assert rc == 2 and out == ""
    assert err.strip().endswith("no events at or after lumisection 40; the files end at "
                                "lumisection 6")
    rc, out, _ = _run(capsys, "--files", str(files["good"]), "--from-lumi", "5",
                      tmp_path=tmp_path)
    assert rc == 0 and "replayed 100 events" in out


def test_a_rule_unavailable_in_one_file_is_listed_once(tmp_path, capsys):
    with_photons = write_events(tmp_path / "a.root", make_events(200, seed=3, run=2))
    later = make_events(400, seed=4, run=2)[200:]
    no_photons = write_events(tmp_path / "b.root",
                              later[[f for f in later.fields if not f.startswith("Photon")]])
    rc, out, _ = _run(capsys, "--files", str(with_photons), str(no_photons), tmp_path=tmp_path)
    assert rc == 0
    table = out.split("alerts per rule")[1].split("alerts per lumisection")[0]
    rows = [line for line in table.splitlines() if "1pho_pt100" in line]
    assert len(rows) == 1 and "unavailable for part of the data: no Photon_pt" in rows[0]
    assert re.search(r"│ 3pho_pt20 +│ +\d+ \(unavailable for part", table)


def test_short_files_are_named_for_what_they_are(files, tmp_path):
    from hotline.stream.replay import ReplaySource

    cut = tmp_path / "cut.root"
    cut.write_bytes(files["good"].read_bytes()[:300])  # a ROOT header, then nothing
    src = ReplaySource([files["empty"], files["tiny"], cut, tmp_path / "absent.root"],
                       branches=["Muon_pt"])
    assert list(src) == []
    assert [o.status for o in src.files_report] == [
        "empty file (0 bytes)", "not a ROOT file (320 bytes, no ROOT header)",
        "truncated ROOT file (shorter than its own header says)", "file does not exist"]
