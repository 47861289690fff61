"""``hotline status``, ``hotline reference`` and ``hotline certify`` end to end on small real
ROOT runs replayed into a SQLite store (classic rules only: the expectations come from a
reference run, then from the run itself)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hotline.cli import main
from tests.conftest import make_events
from tests.support.rootfiles import write_events


def _run_with_fault(run: int, seed: int, fault: range | None) -> ak.Array:
    """40 lumisections of 100 events; in ``fault`` every event gets MET 400 (met250 fires)."""
    arrays = make_events(4000, seed=seed, run=run, events_per_lumi=100)
    if fault is not None:
        ls = ak.to_numpy(arrays["luminosityBlock"])
        met = ak.to_numpy(arrays["MET_pt"]).copy()
        hit = np.isin(ls, list(fault)) & (np.arange(len(met)) % 4 == 0)
        met[hit] = 400.0
        arrays = ak.with_field(arrays, met, "MET_pt")
    return arrays


@pytest.fixture
def replayed(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    for run, seed, fault in ((1, 5, None), (2, 6, range(25, 33))):
        f = write_events(tmp_path / f"run{run}.root", _run_with_fault(run, seed, fault))
        assert main(["replay", "--files", str(f), "--store", url, "--no-progress",
                     "--no-model"]) == 0
    return url


def test_status_reference_certify_end_to_end(replayed, tmp_path, capsys):
    capsys.readouterr()
    assert main(["reference", "show", "--store", replayed]) == 0
    assert "no reference set" in capsys.readouterr().out
    assert main(["reference", "set", "1", "--store", replayed, "--comment", "clean run",
                 "--user", "alice"]) == 0
    out = capsys.readouterr().out
    assert "reference set: run 1" in out and "alice" in out and "met250" in out
    assert main(["reference", "show", "--json", "--store", replayed]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert ref["run"] == 1 and ref["n_lumis"] == 40 and ref["comment"] == "clean run"

    assert main(["status", "2", "--store", replayed, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["level"] == "red" and st["reference"]["reference"]["run"] == 1
    bad = [ls["lumi"] for ls in st["lumis"] if ls["level"] != "green"]
    # every faulty LS flagged, and the clean ones after the fault (where the distribution
    # checks' 5-LS windows still hold it) are not
    assert set(range(25, 33)) <= set(bad) and len(bad) <= 10
    rng = next(r for r in st["ranges"] if r["first"] <= 28 <= r["last"])
    assert "met250 rate is" in rng["reason"] and "the reference" in rng["reason"]
    assert main(["status", "2", "--store", replayed]) == 0
    out = capsys.readouterr().out
    assert "RED" in out and "LS 25-32" in out and "reference run 1" in out

    golden, badf = tmp_path / "golden.json", tmp_path / "bad.json"
    assert main(["certify", "2", "--store", replayed, "--out", str(golden),
                 "--bad", str(badf)]) == 0
    g = json.loads(golden.read_text())
    assert list(g) == ["2"] and all(a <= b for a, b in g["2"])
    good = {ls for a, b in g["2"] for ls in range(a, b + 1)}
    assert not good & set(range(25, 33)) and len(good) >= 30
    b = json.loads(badf.read_text())
    assert any(x["first"] <= 25 and x["decided_by"] == "auto" and "met250" in x["reason"]
               for x in b["bad"])
    # the expert overrides LS 25-26 (kept with the comment and user)
    assert main(["certify", "2", "--store", replayed, "--out", str(golden), "--bad", str(badf),
                 "--set", "25-26=good", "--comment", "beam test, fine", "--user", "carol"]) == 0
    good2 = {ls for a, b in json.loads(golden.read_text())["2"] for ls in range(a, b + 1)}
    assert good2 == good | {25, 26}
    # re-running the assessment keeps the override
    assert main(["certify", "2", "--store", replayed, "--out", str(golden)]) == 0
    good3 = {ls for a, b in json.loads(golden.read_text())["2"] for ls in range(a, b + 1)}
    assert good3 == good2


def test_cli_errors_are_one_line(replayed, capsys):
    assert main(["status", "9", "--store", replayed]) == 2
    err = capsys.readouterr().err
    assert "no lumisection summaries for run 9" in err and err.count("\n") == 1
    assert main(["certify", "2", "--store", replayed, "--set", "25-32=bad"]) == 2
    assert "--comment" in capsys.readouterr().err
    assert main(["certify", "2", "--store", replayed, "--set", "x=bad", "--comment", "c"]) == 2
    assert "expected RANGES=good" in capsys.readouterr().err
    assert main(["reference", "set", "1", "--lumis", "5-2", "--store", replayed]) == 2
    assert "ends before it starts" in capsys.readouterr().err


def test_reference_card_travels_between_stores(replayed, tmp_path, capsys):
    """`show --json` writes a card that `load` stores elsewhere; the status there compares
    with it; a broken card is a one-line error naming the file."""
    assert main(["reference", "set", "1", "--store", replayed, "--user", "bob"]) == 0
    capsys.readouterr()
    assert main(["reference", "show", "--json", "--store", replayed]) == 0
    card = tmp_path / "ref.json"
    card.write_text(capsys.readouterr().out)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    f = write_events(tmp_path / "run2b.root", _run_with_fault(2, 6, range(25, 33)))
    assert main(["replay", "--files", str(f), "--store", other, "--no-progress",
                 "--no-model"]) == 0
    assert main(["reference", "load", str(card), "--store", other]) == 0
    assert "reference loaded from" in capsys.readouterr().out
    assert main(["status", "2", "--store", other, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["reference"]["reference"]["run"] == 1
    assert st["reference"]["reference"]["set_by"] == "bob"
    broken = tmp_path / "broken.json"
    broken.write_text('{"n_lumis": 3}')
    assert main(["reference", "load", str(broken), "--store", other]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and len(err.strip().splitlines()) == 1
