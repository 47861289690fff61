"""``hotline alerts`` and ``hotline deadletters`` on real SQLite stores and ROOT files:
JSON exports every matching row, tables say "50 of 338", a mistyped --store is one line
and creates nothing, dead letters are listed once however often a file is replayed, and
--redrive replays fixed files / re-processes kept Kafka payloads, resolving only what
now goes through."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hotline.alerts.records import AlertRecord, DeadLetter
from hotline.alerts.store import SQLiteAlertStore
from hotline.cli import main
from hotline.stream.archive_writer import to_tree_dict, write_tree
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def alert_db(tmp_path: Path) -> str:
    with SQLiteAlertStore(tmp_path / "alerts.db") as st:
        st.add_alerts([AlertRecord.make(kind="classic", rule="r1" if i % 3 else "r2",
                                        source="s", run=1 + i % 2, lumi=1 + i // 100, event=i,
                                        created=1000.0 + i // 10) for i in range(338)])
    return f"sqlite:///{tmp_path / 'alerts.db'}"


def test_alerts_json_exports_every_matching_row(alert_db, capsys):
    rc, out, _ = _run(capsys, "alerts", "--store", alert_db, "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert rc == 0 and len(rows) == 338 and len({r["id"] for r in rows}) == 338
    rc, out, _ = _run(capsys, "alerts", "--store", alert_db, "--json", "--run", "2",
                      "--rule", "r1")
    assert len(out.splitlines()) == sum(1 for i in range(338) if i % 2 and i % 3)
    rc, out, _ = _run(capsys, "alerts", "--store", alert_db, "--json", "--limit", "7")
    assert len(out.splitlines()) == 7


def test_alerts_table_says_how_many_it_shows(alert_db, capsys):
    rc, out, _ = _run(capsys, "alerts", "--store", alert_db)
    assert rc == 0 and "50 of 338 alerts" in out and "--limit 0 shows all" in out
    rc, out, _ = _run(capsys, "alerts", "--store", alert_db, "--limit", "0")
    assert "338 alerts" in out and " of " not in out.splitlines()[0]
    rc, out, _ = _run(capsys, "alerts", "--store", alert_db, "--run", "1", "--lumi", "4")
    assert "19 alerts" in out and "of" not in out.splitlines()[0]


@pytest.mark.parametrize("command", [["alerts"], ["alerts", "--json"], ["deadletters"],
                                     ["deadletters", "--redrive"], ["subscribe", "list"]])
def test_mistyped_store_is_one_line_and_creates_nothing(tmp_path, capsys, command):
    typo = tmp_path / "alerst.db"
    rc, out, err = _run(capsys, *command, "--store", f"sqlite:///{typo}")
    assert rc == 2 and err.count("\n") == 1
    assert f"no alert store at {typo}" in err and "does not exist" in err
    assert not typo.exists()


# ------------------------------------------------------------------------ dead letters


def _write(path: Path, arrays: ak.Array) -> Path:
    with uproot.recreate(path) as f:
        write_tree(f, "Events", to_tree_dict(arrays))
    return path


@pytest.fixture
def nan_file(tmp_path: Path) -> Path:
    """Run 9, 200 events (50 per lumisection); NaN MET in events 4, 61 and 62."""
    a = make_events(200, seed=7, run=9)
    met = ak.to_numpy(a["MET_pt"]).copy()
    met[[3, 60, 61]] = np.nan
    return _write(tmp_path / "nan.root", ak.with_field(a, met, "MET_pt"))


def _replay(capsys, store: str, *files: Path) -> None:
    rc, _, err = _run(capsys, "replay", "--files", *map(str, files), "--store", store,
                      "--no-progress")
    assert rc == 0, err


def test_deadletters_listed_once_however_often_replayed(tmp_path, nan_file, capsys):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    for _ in range(3):
        _replay(capsys, db, nan_file)
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert rc == 0 and sorted((r["lumi"], r["events"]) for r in rows) == [(1, [4]),
                                                                         (2, [61, 62])]
    assert all(r["run"] == 9 and r["origin"] == str(nan_file) and "NaN" in r["reason"]
               and r["resolved"] is None for r in rows)
    rc, out, _ = _run(capsys, "deadletters", "--store", db)
    assert "2 open dead letters" in out and str(nan_file.name) in out
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--limit", "1")
    assert "1 of 2 open dead letters" in out
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--run", "9", "--json",
                      "--id", rows[0]["id"][:10])
    assert [json.loads(x)["id"] for x in out.splitlines()] == [rows[0]["id"]]
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--run", "8", "--json")
    assert rc == 0 and out == ""


def test_redrive_resolves_fixed_files_and_reports_what_still_fails(tmp_path, nan_file,
                                                                  capsys):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    gone = _write(tmp_path / "gone.root", make_events(50, seed=8, run=10))
    _replay(capsys, db, nan_file)
    with SQLiteAlertStore(tmp_path / "a.db") as st:  # a file-level failure of a lost file
        st.add_deadletters([DeadLetter("hotline", str(gone), "file is damaged after 10 events")])
    gone.unlink()
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--redrive", "--dry-run")
    assert rc == 0 and "would re-drive 3 open dead letter(s) from 2 input(s)" in out
    # nothing fixed yet: the NaN events are quarantined again, the lost file is still lost
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--redrive")
    assert rc == 1 and "0 dead letter(s) resolved, 3 still failing" in out
    assert "NaN or inf" in out and "does not exist" in out
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        assert st.count_deadletters() == 3 and st.count_deadletters(resolved=False) == 3
        before = {s.key: s.n_events for s in st.summaries()}

    fixed = make_events(200, seed=7, run=9)  # the same events, MET repaired
    shutil.copy(nan_file, tmp_path / "nan.bak")
    _write(nan_file, fixed)
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--redrive", "--run", "9")
    assert rc == 0 and "2 dead letter(s) resolved, 0 still failing" in out
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        assert st.count_deadletters(resolved=False) == 1  # the lost file (run unknown)
        [r] = st.deadletters(run=9, lumi=2, resolved=True)
        assert "re-driven" in r.resolution and "file replayed (200 events" in r.resolution
        # same events, same part ids: the summaries are not counted again
        assert {s.key: s.n_events for s in st.summaries()} == before
    rc, out, _ = _run(capsys, "deadletters", "--store", db)
    assert "1 open dead letter" in out and "2 resolved not shown" in out
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--state", "resolved", "--json")
    assert len(out.splitlines()) == 2
    # the broken file replayed again later: the same failures are open again, not copied
    shutil.copy(tmp_path / "nan.bak", nan_file)
    _replay(capsys, db, nan_file)
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        assert st.count_deadletters() == 3 and st.count_deadletters(resolved=False) == 3


def test_redrive_reprocesses_kept_kafka_payloads(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    from hotline.stream.codecs import encode_alert, encode_batch

    batch = EventBatch(make_events(300, seed=4, run=12), source="hotline", origin="x.root")
    expected = process_batch(batch, PipelineContext())
    assert expected.alerts
    good = encode_batch(batch)
    alert = AlertRecord.make(kind="classic", rule="r", source="s", run=1, lumi=1, event=1)
    letters = [
        DeadLetter("kafka", "hotline.events[0]@5", "scoring failed (a bug since fixed)",
                   payload=good),
        DeadLetter("kafka", "hotline.events[0]@6", "event batch is corrupt",
                   payload=b"HLEV\x00\x01garbage"),
        DeadLetter("kafka", "hotline.alerts[1]@9", "store was down", payload=encode_alert(alert)),
        DeadLetter("kafka", "hotline.events[0]@7", "reason only, no payload kept"),
    ]
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        st.add_deadletters(letters)
    db = f"sqlite:///{tmp_path / 'a.db'}"
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--redrive")
    assert rc == 1 and "2 dead letter(s) resolved, 2 still failing" in out
    assert "no payload was kept" in out
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        open_ = {d.origin: d for d in st.deadletters(resolved=False)}
        assert set(open_) == {"hotline.events[0]@6", "hotline.events[0]@7"}
        assert {a.id for a in st.alerts(limit=None)} == {a.id for a in expected.alerts} | {
            alert.id}
        assert sum(s.n_events for s in st.summaries()) == 300
    rc, out, _ = _run(capsys, "deadletters", "--store", db, "--redrive")  # again: no change
    assert rc == 1 and "0 dead letter(s) resolved, 2 still failing" in out
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        assert sum(s.n_events for s in st.summaries()) == 300


def test_redrive_with_nothing_open(tmp_path, capsys):
    with SQLiteAlertStore(tmp_path / "a.db"):
        pass
    rc, out, _ = _run(capsys, "deadletters", "--store", f"sqlite:///{tmp_path / 'a.db'}",
                      "--redrive")
    assert rc == 0 and "nothing to re-drive" in out
