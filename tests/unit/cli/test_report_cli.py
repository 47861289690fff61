"""``hotline report``: a one-line error for a run the store does not have; the page written."""

from __future__ import annotations

import pytest

from hotline.cli import main
from tests.support.report_run import RUN, replay_run


def test_unknown_run_is_one_line_naming_run_and_store(store, capsys):
    rc = main(["report", "99", "--store", store.url])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "run 99 has no lumisection summaries in" in err[0]
    assert store.url in err[0] and "hotline replay 99" in err[0]


def test_report_of_a_replayed_run(tmp_path, capsys):
    # the status engine and the certification are another slice's modules
    pytest.importorskip("hotline.alerts.run_status")
    pytest.importorskip("hotline.alerts.certification")
    db = replay_run(tmp_path)
    out = tmp_path / "e-log" / "run42.html"
    rc = main(["report", str(RUN), "--store", f"sqlite:///{db}", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert f"run {RUN}: " in printed and f"report: {out}" in printed
    page = out.read_text()
    assert f"Run {RUN}" in page and "Certification" in page
    assert "p=1e-2" in page  # the thresholds of the model named by the run's AE alerts
