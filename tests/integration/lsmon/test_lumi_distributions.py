"""Lumisection distribution monitoring end to end, with real parts: two runs written as
ROOT files (uproot), one with a calibration fault defined in a TOML ``[[fault]]`` table
(electron phi +0.2 rad in one eta-phi region, lumisections 5-8), replayed by ``hotline
replay`` into a SQLite store; the clean run set as the reference (``hotline reference
set``); ``hotline status`` names the faulty lumisections with the object type, the
variable and the region; ``hotline report`` lists the distribution findings."""

from __future__ import annotations

import contextlib
import io
import json
import tomllib
from pathlib import Path

import awkward as ak
import numpy as np

from hotline.cli import main
from hotline.detectors.fault_kinds import fault_from_table
from hotline.stream.archive_writer import write_run
from tests.conftest import make_events

EPL = 4000
FAULT_TOML = """
[[fault]]
name = "ele_phi_region"
code = 71
description = "electron phi mis-calibration in one region"
kind = "rotate_phi"
collection = "Electron"
eta = [0.0, 2.5]
phi = [0.0, 1.5708]
default_size = 0.2
"""


def run(args: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0, out.getvalue()[-2000:]
    return out.getvalue()


def test_toml_fault_found_and_localised_by_status_and_report(tmp_path: Path):
    archive = tmp_path / "archive"
    store = f"sqlite:///{tmp_path / 'alerts.db'}"
    write_run(archive, 11, make_events(8 * EPL, seed=31, run=11, events_per_lumi=EPL))
    table = tomllib.loads(FAULT_TOML)["fault"][0]
    fault = fault_from_table(table, "faults.toml")
    events = make_events(8 * EPL, seed=32, run=12, events_per_lumi=EPL)
    ls = np.asarray(events["luminosityBlock"])
    bad = fault.apply(events[ls >= 5], np.random.default_rng(0), fault.check_size(None))
    write_run(archive, 12, ak.concatenate([events[ls < 5], bad]))
    for r in (11, 12):
        run(["replay", str(r), "--archive", str(archive), "--store", store, "--no-model",
             "--no-progress"])
    run(["reference", "set", "11", "--store", store])
    status = json.loads(run(["status", "12", "--json", "--store", store]))
    levels = {s["lumi"]: s["level"] for s in status["lumis"]}
    assert all(levels[i] == "green" for i in range(1, 5)), levels
    assert sum(levels[i] != "green" for i in range(5, 9)) >= 3, levels
    dist = [f for s in status["lumis"] if s["lumi"] >= 5 for f in s["findings"]
            if f["kind"] == "dist" and f["level"] != "green"]
    assert dist and all("electrons" in f["quantity"] for f in dist[:3])
    # the region: the cells the rotation emptied (phi [0, 0.2]) or filled ([1.57, 1.77])
    assert any("phi [0, 1.6]" in f["where"] or "phi [1.6, 3.1]" in f["where"] for f in dist)
    assert any("eta [0, 1.2]" in f["where"] or "eta [1.2, 2.5]" in f["where"] for f in dist)
    clean = json.loads(run(["status", "11", "--json", "--store", store]))
    assert not [f for s in clean["lumis"] for f in s["findings"]
                if f["kind"] == "dist" and f["level"] != "green"]
    report = tmp_path / "r.html"
    run(["report", "12", "--store", store, "--out", str(report)])
    page = report.read_text()
    part = page[page.index("Distribution findings"):page.index("Dead letters")]
    assert "electrons/" in part and "LS 5" in part
