"""Partial schemas degrade per input, not per file: a missing feature branch makes the
features and the AE rule *unavailable* for those lumisections; every rule whose inputs are
there still runs (real ROOT files, a tiny trained model)."""

from __future__ import annotations

from hotline.alerts.ae_rule import AERule
from hotline.alerts.menu import build_menu
from hotline.cli import main
from hotline.models.scorer import Scorer
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import ReplaySource
from tests.conftest import make_events
from tests.support.rootfiles import write_events


def _ctx(tiny_registry) -> PipelineContext:
    rule = AERule(Scorer.from_registry("tiny", registry=tiny_registry), 0.05, name="ae")
    return PipelineContext(rules=[*build_menu(), rule], features_required=True)


def _without(arrays, *branches):
    return arrays[[f for f in arrays.fields if f not in branches]]


def test_missing_feature_branch_makes_the_ae_unavailable_not_the_batch(tiny_registry):
    ctx = _ctx(tiny_registry)
    arrays = _without(make_events(150, seed=3), "Muon_eta")
    res = process_batch(EventBatch(arrays, "s", "partial.root"), ctx)
    assert res.deadletters == []
    assert res.unavailable == {"ae": ["Muon_eta"]}
    for s in res.summaries.values():
        assert "ae" in s.unavailable and "ae" not in s.score_hist
        assert {"1mu_pt100", "2mu_pt15", "ht300", "1pho_pt100"} <= set(s.rule_counts)
    full = process_batch(EventBatch(make_events(150, seed=3), "s"), ctx)
    # the cut rules give exactly what they give on the full file (Muon_pt is there)
    for key, s in res.summaries.items():
        assert s.rule_counts == {r: n for r, n in full.summaries[key].rule_counts.items()
                                 if r != "ae"}
    assert {a.rule for a in res.alerts} >= {"2mu_pt15", "ht300"}
    # a collection missing entirely, with no fallback: all its branches are named
    res = process_batch(EventBatch(_without(make_events(20), "Jet_pt", "Jet_eta", "Jet_phi"),
                                   "s"), ctx)
    assert res.unavailable["ae"] == ["Jet_pt", "Jet_eta", "Jet_phi"]
    assert set(res.unavailable) == {"ae", "1jet_pt200", "5jets_pt40", "ht300"}


def test_replay_mixed_files_reports_ae_unavailable_per_lumisection(tiny_registry, tmp_path,
                                                                    store):
    ctx = _ctx(tiny_registry)
    good = write_events(tmp_path / "good.root", make_events(100, seed=1, run=4))
    later = make_events(200, seed=2, run=4)[100:]  # lumisections 3 and 4
    partial = write_events(tmp_path / "partial.root", _without(later, "Muon_eta"))
    src = ReplaySource([good, partial], branches=ctx.branches())
    rep = run_embedded(src, ctx, store)
    assert rep.events == 200 and rep.deadletters == 0 and not src.errors
    assert [(o.events, o.status) for o in src.files_report] == [(100, "ok"), (100, "ok")]
    assert rep.unavailable == {"ae": ["Muon_eta"]} and "ae" in rep.available
    sums = {s.lumi: s for s in store.summaries(run=4)}
    assert [("ae" in sums[ls].unavailable) for ls in (1, 2, 3, 4)] == [False, False, True, True]
    assert sum(sums[1].score_hist["ae"]) == 50
    assert store.count_alerts(rule="2mu_pt15") > 0
    ae_lumis = {a.lumi for a in store.alerts(rule="ae")}
    assert ae_lumis and ae_lumis <= {1, 2}


def test_cli_replay_with_a_model_and_a_partial_file(tiny_registry, tmp_path, capsys):
    good = write_events(tmp_path / "good.root", make_events(100, seed=1, run=4))
    partial = write_events(tmp_path / "partial.root",
                           _without(make_events(200, seed=2, run=4)[100:], "Muon_eta"))
    cfg = tmp_path / "hotline.toml"
    cfg.write_text(f'[model]\nregistry = "{tiny_registry}"\nname = "tiny"\np_value = 0.05\n')
    rc = main(["--config", str(cfg), "replay", "--files", str(good), str(partial),
               "--store", f"sqlite:///{tmp_path / 'a.db'}", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "replayed 200 events" in out and "0 dead letters" in out
    [row] = [line for line in out.splitlines() if "tiny_p5e-02" in line and "│" in line]
    assert "unavailable for part of the data: no Muon_eta" in row
