"""Firmware in the loop: ``hotline firmware build ae_default`` on a fresh machine, its L1 menu
and library in the stream, and a mis-quantised build caught within one lumisection.

Two g++ compiles of ae_default in all (session fixtures of ``tests/integration/conftest.py``,
shared with the dashboard's browser test): the shipped build, made by the CLI with an empty
sample cache, and one with too few integer bits, built in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from tests.support.rootfiles import write_events

pytestmark = pytest.mark.firmware

RUN = 777
EVENTS_PER_LUMI = 20_000


@pytest.fixture(scope="session")
def one_big_lumi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo run's 20,000 events as one lumisection of run 777 (a real ROOT file)."""
    import uproot

    from hotline.config import package_path

    files = sorted(Path(package_path("hotline.data", "archive")).glob("run_000001/*.root"))
    arrays = ak.concatenate([uproot.open(f)["Events"].arrays() for f in files])
    assert len(arrays) == EVENTS_PER_LUMI
    arrays = ak.with_field(arrays, np.full(len(arrays), RUN, np.uint32), "run")
    arrays = ak.with_field(arrays, np.ones(len(arrays), np.uint32), "luminosityBlock")
    arrays = ak.with_field(arrays, np.arange(1, len(arrays) + 1, dtype=np.uint64), "event")
    return write_events(tmp_path_factory.mktemp("lumi") / "run_000777" / "nano_0000.root",
                        arrays)


def test_fresh_clone_build_validates_on_the_shipped_held_out_runs(fresh_build):
    build, text = fresh_build
    report = json.loads((build / "report.json").read_text())
    val = report["validation"]
    assert "shipped validation set validation/" in val["source"]
    assert [r["run"] for r in val["background"]["runs"]] == [250]
    assert val["background"]["runs"][0]["seed"] == 240
    assert val["background"]["n_events"] == 4000
    assert [r["run"] for r in val["signal"]["runs"]] == [251]
    assert "validated on 4000 sm_mix events of run 250 (seed 240)" in text
    assert report["emulation"]["passed"]
    menu = json.loads((build / "l1_menu.json").read_text())
    assert [s["label"] for s in menu["seeds"]] == ["VLoose", "Loose", "Nominal", "Tight",
                                                   "VTight"]
    assert all(s["fixed"] == int(np.floor(s["threshold"] * 2 ** menu["frac_bits"]))
               for s in menu["seeds"])
    assert (build / menu["library"]).is_file() and report["l1_menu"]["build"] == menu["build"]


def test_stream_emulation_of_the_shipped_build(fresh_build, one_big_lumi, tmp_path):
    from hotline.alerts.backends import open_store
    from hotline.config import load_config
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    build, _ = fresh_build
    cfg = load_config(None, {"model": {"name": "none"},
                             "firmware": {"emulate": str(build), "emulate_fraction": 0.1,
                                          "emulate_seed": "VTight"}})
    ctx = PipelineContext.from_config(cfg)
    rule = ctx.rules[-1]
    assert rule.kind == "l1" and rule.name == "l1_ae_default_VTight"
    store = open_store(str(tmp_path / "alerts.db"))
    run_embedded(ReplaySource(files=[one_big_lumi], branches=ctx.branches()), ctx, store)
    (s,) = store.summaries(run=RUN)
    assert s.n_events == EVENTS_PER_LUMI
    agg = s.l1
    assert 1800 < agg.n < 2200 and agg.n_failed == 0  # 10 % sampled by event number
    assert all(agg.agreement(label) >= 0.999 for label, *_ in agg.header.seeds)
    assert agg.correlation > 0.999 and len(agg.top) == 5
    assert not [a for a in store.iter_alerts(kind="dqm")]


def test_mis_quantised_build_is_caught_within_one_lumisection(narrow_build, one_big_lumi,
                                                              tmp_path, capsys):
    from hotline.alerts.backends import open_store
    from hotline.alerts.run_status import assess_run
    from hotline.config import load_config
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    cfg = load_config(None, {"model": {"name": "none"},
                             "firmware": {"emulate": str(narrow_build),
                                          "emulate_fraction": 0.1}})
    ctx = PipelineContext.from_config(cfg)
    store = open_store(str(tmp_path / "alerts.db"))
    run_embedded(ReplaySource(files=[one_big_lumi], branches=ctx.branches()), ctx, store)
    alarms = list(store.iter_alerts(kind="dqm"))
    assert alarms and all(a.lumi == 1 and a.run == RUN for a in alarms)
    menu = json.loads((narrow_build / "l1_menu.json").read_text())
    seeds = {a.payload["seed"] for a in alarms}
    assert seeds and seeds <= {s["label"] for s in menu["seeds"]}
    a = alarms[0]
    assert a.payload["model"] == "ae_default" and a.payload["build"] == menu["build"]
    assert a.payload["agreement"] < 0.999 and a.rule.startswith("l1_divergence:ae_default:")
    with capsys.disabled():
        print(f"\nmis-quantised build, LS 1: {a.payload['n_emulated']} emulated; " + ", ".join(
            f"{x.payload['seed']} {x.payload['disagree']} differ (p = {x.p_value:.2g}, "
            f"{x.payload['level']})" for x in alarms))
    # exact binomial test against the allowed 0.1 %, Sidak over the seeds: red at 5 sigma
    assert any(x.payload["level"] == "red" and x.p_value < 2.87e-7 for x in alarms)
    status = assess_run(store, RUN, reference=False, model=False)
    (lumi,) = status.lumis
    assert any(f.quantity == "dqm:L1 ae_default" and f.level == "red" for f in lumi.findings)


def test_shipped_build_on_the_demo_run_raises_no_divergence(fresh_build, tmp_path, capsys):
    """``hotline replay 1 --emulate BUILD``: every event of the demo run's 40 lumisections of
    500 events emulated. The shipped build differs from serving on a few events (a single
    one is 0.2 % of a lumisection); none of that is significant against the allowed 0.1 %."""
    from hotline.alerts.backends import open_store
    from hotline.cli import main

    build, _ = fresh_build
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    rc = main(["replay", "1", "--no-model", "--no-progress", "--store", url,
               "--emulate", str(build), "--emulate-fraction", "1"])
    assert rc == 0
    with open_store(url, create=False) as store:
        sums = store.summaries(run=1)
        alarms = list(store.iter_alerts(kind="dqm"))
    assert len(sums) == 40 and all(s.l1 is not None and s.l1.n == s.n_events for s in sums)
    assert sum(s.l1.n for s in sums) == 20_000
    assert all(s.l1.n_failed == 0 for s in sums)
    differing = {s.lumi: s.l1.disagree for s in sums if any(s.l1.disagree.values())}
    literal = [ls for ls, d in differing.items() if max(d.values()) / 500 > 0.001]
    with capsys.disabled():
        print(f"\ndemo run, shipped build, every event emulated: {len(literal)} lumisections "
              f"below 99.9 % literally ({differing}); divergence alerts {len(alarms)} "
              "(limit 0)")
    assert alarms == []
