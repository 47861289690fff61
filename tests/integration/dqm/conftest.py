"""DQM integration fixtures: an archive with high-statistics lumisections."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_events


@pytest.fixture(scope="session")
def dqm_archive(tmp_path_factory) -> Path:
    """Run 11: 20,000 events, 5,000 per lumisection (4 lumisections), two ROOT files."""
    from hotline.stream.archive_writer import write_run

    root = tmp_path_factory.mktemp("dqm-archive") / "archive"
    arrays = make_events(20_000, seed=11, run=11, events_per_lumi=5_000)
    write_run(root, 11, arrays, events_per_file=10_000, card={"description": "dqm test run"})
    return root
