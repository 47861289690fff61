"""``hotline demo`` tells the run's story: the bundled run replayed with the rules, the default
anomaly model and the DQM conv-AEs, then the verdict found by the status engine (never read
from the run card), the certification and the run report beside the demo's store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.config import DEFAULT_ARCHIVE
from hotline.stream.archive import find_run


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'alerts.db'}"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--store", url]) == 0
    return out.getvalue(), folder


def test_verdict_names_the_faulty_range_and_where(demo):
    text, _ = demo
    card = json.loads((find_run(DEFAULT_ARCHIVE, 1).path / "run.json").read_text())
    first, last = card["fault"]["lumisections"]
    assert re.search(r"Verdict: run 1 is (RED|AMBER)", text), text[-2000:]
    ranges = re.findall(r"^  LS (\d+)(?:-(\d+))?: (amber|red) - (.*)$", text, re.M)
    assert ranges, text[-2000:]
    spans = [(int(a), int(b or a), lv, why) for a, b, lv, why in ranges]
    # the fault's lumisections are one red range, and it says where: the calo DQM region and
    # the jets the AE and classic alerts point to
    hit = [s for s in spans if s[0] <= first and s[1] >= last]
    assert hit and hit[0][2] == "red", spans
    assert hit[0][1] - hit[0][0] <= last - first + 2, spans
    assert "calo_regions" in hit[0][3] and "jets" in hit[0][3]
    # clean lumisections: at most two flagged outside the fault (>= 95 % green of 32)
    outside = sum(b - a + 1 for a, b, _, _ in spans if b < first or a > last)
    assert outside <= 1, spans


def test_demo_writes_certification_and_report(demo):
    text, folder = demo
    golden = json.loads((folder / "run1-golden.json").read_text())
    card = json.loads((find_run(DEFAULT_ARCHIVE, 1).path / "run.json").read_text())
    first, last = card["fault"]["lumisections"]
    good = {ls for a, b in golden["1"] for ls in range(a, b + 1)}
    assert not good & set(range(first, last + 1))
    assert len(good) >= 30
    html = (folder / "run1-report.html").read_text()
    assert f"LS {first}-{last}" in html and "<script src=" not in html
    assert "run report:" in text and "certified good:" in text


def test_demo_compares_with_the_bundled_reference(demo):
    """The classic rules are judged against the shipped reference card (a clean data-like
    run of the recipe), not against the demo run itself."""
    from hotline.config import package_path

    card = json.loads((package_path("hotline.data", "references") / "demo.json").read_text())
    text, _ = demo
    assert f"expectations: reference run {card['run']} (bundled demo reference)" in text
    assert card["n_lumis"] >= 40 and card["rules"] and card["events"] >= 20_000
