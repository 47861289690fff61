"""Per-type calibrated evidence (models.type_evidence): p-value calibration, Sidak and Fisher
combinations, attribution, and the scorer / AE rule / firmware plan of a per-type card."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hotline.alerts.ae_rule import AERule
from hotline.errors import ModelError
from hotline.models.kinds import get_model_kind
from hotline.models.registry import update_card
from hotline.models.scorer import Scorer
from hotline.models.type_evidence import (
    TypeEvidence,
    calibrate_types,
    combine,
    type_energy,
)
from tests.support.models import tiny_features

LABELS = ["MET", "electrons", "muons", "jets"]


def _background(n: int, seed: int) -> np.ndarray:
    """Per-type 'losses': jets with a long tail, electrons often absent (0)."""
    rng = np.random.default_rng(seed)
    c = np.column_stack([rng.exponential(1.0, n), rng.exponential(0.1, n),
                         rng.exponential(0.1, n), rng.pareto(2.5, n) * 5])
    c[rng.random(n) < 0.5, 1] = 0.0
    return c


def test_combinations_match_their_definitions():
    rng = np.random.default_rng(1)
    p = rng.uniform(1e-6, 1, (200, 5))
    want_sidak = 1 - (1 - p.min(axis=1)) ** 5
    np.testing.assert_allclose(combine(p, "sidak"), want_sidak, rtol=1e-9)
    want_fisher = stats.chi2.sf(-2 * np.log(p).sum(axis=1), 10)
    np.testing.assert_allclose(combine(p, "fisher"), want_fisher, rtol=1e-9)
    with pytest.raises(ModelError, match="unknown per-type combination 'max'"):
        combine(p, "max")


def test_calibrated_p_values_are_uniform_on_fresh_background():
    cal, fresh = _background(40_000, 1), _background(40_000, 2)
    te = calibrate_types(cal, LABELS, "sidak")
    p = te.p_values(fresh)
    for k in (0, 3):  # every event has the type: P(p < a) = a
        for a in (0.1, 0.01):
            assert abs((p[:, k] < a).mean() - a) < 0.25 * a + 0.002, (k, a)
    # an absent type is no evidence; the present half is calibrated over all events
    assert (p[fresh[:, 1] == 0, 1] == 1.0).all()
    assert abs((p[:, 1] < 0.01).mean() - 0.01) < 0.004
    # the combined score is a monotone function of the combined p, and round-trips
    te2 = TypeEvidence.from_dict(te.to_dict())
    np.testing.assert_array_equal(te2.p_values(fresh[:100]), p[:100])


def test_the_type_far_in_its_own_tail_explains_the_event_not_the_big_type():
    cal = _background(20_000, 3)
    te = calibrate_types(cal, LABELS, "sidak")
    ev = np.array([[0.5, 3.0, 0.0, 8.0],     # electrons 3.0: far beyond their tail
                   [0.5, 0.0, 0.0, 500.0],   # jets far out
                   [40.0, 0.05, 0.0, 8.0]])  # MET far out: MET, never "followed" to jets
    p = te.p_values(ev)
    assert [LABELS[k] for k in te.explain(p, ev)] == ["electrons", "jets", "MET"]
    # the larger raw jet loss does not win event 0
    assert ev[0].argmax() == 3


def test_energy_statistic_sees_a_well_reconstructed_hard_object():
    n = 20_000
    rng = np.random.default_rng(4)
    loss = _background(n, 4)
    energy = np.column_stack([rng.exponential(30, n), rng.exponential(20, n),
                              rng.exponential(20, n), rng.exponential(80, n)])
    te = calibrate_types(loss, LABELS, "sidak", statistics=("loss", "energy"), energy=energy)
    ev_loss = np.array([[0.5, 0.05, 0.0, 2.0]])  # an ordinary loss everywhere ...
    ev_energy = np.array([[30.0, 1000.0, 0.0, 80.0]])  # ... but a 1 TeV electron
    p = te.p_values(ev_loss, ev_energy)
    assert p.shape == (1, 8)
    assert te.score(p)[0] > 10  # p < 1e-10
    assert LABELS[te.explain(p, ev_loss)[0]] == "electrons"
    with pytest.raises(ModelError, match="energy"):
        te.p_values(ev_loss)


def test_type_energy_sums_pt_per_type():
    fm = tiny_features(50, seed=2)
    from hotline.detectors.spec import DEFAULT_SPEC

    e = type_energy(fm.x, fm.mask, DEFAULT_SPEC.object_type_index(), 4)
    jets = fm.x[:, 3 * 9::3][:, :10] * fm.mask[:, 9:]
    np.testing.assert_allclose(e[:, 3], jets.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(e[:, 0], fm.x[:, 0], rtol=1e-6)


@pytest.fixture(scope="module")
def typed_model(tiny_registry, tmp_path_factory):
    import shutil

    from hotline.models.registry import load_model

    dest = tmp_path_factory.mktemp("typed") / "reg"
    shutil.copytree(tiny_registry / "tiny", dest / "tiny")
    reg = load_model("tiny", "latest", dest)
    sc = Scorer(reg)
    ref = tiny_features(4000, seed=8)
    r = sc.score(ref)
    from hotline.detectors.spec import DEFAULT_SPEC

    energy = type_energy(ref.x, ref.mask, DEFAULT_SPEC.object_type_index(), 4)
    te = calibrate_types(r.per_type, r.type_labels, "sidak", statistics=("loss", "energy"),
                         energy=energy)
    reg = update_card(reg, type_calibration=te.to_dict(), score="types_sidak")
    from hotline.models.thresholds import calibrate

    reg = update_card(reg, **calibrate(Scorer(reg).score(ref).total.astype(np.float64),
                                       n_boot=5))
    return reg


def test_typed_card_scores_combined_evidence_and_keeps_raw_contributions(typed_model):
    sc = Scorer(typed_model)
    fm = tiny_features(300, seed=9)
    r = sc.score(fm)
    np.testing.assert_allclose(r.per_type.sum(axis=1), r.extra["recon"], rtol=1e-4, atol=1e-6)
    lp = r.extra["type_log10_p"]
    assert lp.shape == (300, 8) and (lp <= 0).all()
    want = -np.log10(combine(np.power(10.0, lp), "sidak"))
    np.testing.assert_allclose(r.total, want, rtol=1e-5)
    te = sc.type_evidence
    # the log-space serving path equals p_values() of the thresholds' ReferenceDistribution
    from hotline.detectors.spec import DEFAULT_SPEC

    energy = type_energy(fm.x, fm.mask, DEFAULT_SPEC.object_type_index(), 4)
    ev = te.evidence(r.per_type, energy)
    direct = np.column_stack([ref.p_value(ev[:, k]) for k, ref in enumerate(te.references)])
    direct[ev <= 0] = 1.0
    # the lookup grid is conservative (never a smaller p) and within a grid step of it
    ld = np.log10(np.maximum(direct, 1e-300))
    assert (lp >= ld - 1e-6).all()
    assert np.median(np.abs(lp - ld)) < 1e-3 and np.abs(lp - ld).max() < 0.05
    assert sc.type_p_values(r).shape == (300, 4)


def test_ae_rule_explains_a_hard_electron_by_electrons(typed_model):
    sc = Scorer(typed_model)
    fm = tiny_features(400, seed=10)
    fm.x[7, 3:6] = [1500.0, 0.3, 1.0]  # e1: a 1.5 TeV electron
    fm.mask[7, 1] = True
    rule = AERule(sc, 1e-2)
    out = rule.evaluate(None, {"features": fm})
    assert out.mask[7]
    d = out.details(7)
    assert d["explained_by"] == "electrons"
    assert d["type_p_values"]["electrons"] < 1e-4
    assert set(d["contributions"]["types"]) == set(LABELS)  # raw contributions kept


def test_typed_card_needs_its_calibration_and_is_not_firmware(typed_model, tmp_path):
    import shutil

    from hotline.models.registry import load_model

    plan = get_model_kind("ae").firmware_plan(typed_model.card)
    assert plan.refused and "per-type" in plan.refused
    assert get_model_kind("ae").firmware_plan({"score": "recon"}).refused is None
    shutil.copytree(typed_model.path.parent.parent, tmp_path / "reg")
    copy = load_model(typed_model.name, typed_model.version, tmp_path / "reg")
    bad = update_card(copy, type_calibration=None)
    with pytest.raises(ModelError, match="needs the card's type_calibration"):
        Scorer(bad)


def test_weighted_bonferroni_keeps_the_whole_loss_order_in_the_bulk():
    n = 20_000
    rng = np.random.default_rng(5)
    loss = _background(n, 5)
    energy = rng.exponential(30, (n, 4))
    te = calibrate_types(loss, LABELS, "weighted", statistics=("total", "loss", "energy"),
                         energy=energy, total_weight=0.5)
    assert te.columns()[0] == ("total", None) and len(te.references) == 9
    np.testing.assert_allclose(te.weights().sum(), 1.0)
    lp = te.log10_p_values(loss[:2000], energy[:2000])
    s = te.score_log10(lp)
    # by definition: -log10 min_j p_j / w_j, at least 0
    want = np.maximum(-(lp - np.log10(te.weights())).min(axis=1), 0.0)
    np.testing.assert_allclose(s, want, rtol=1e-5)
    # the whole-loss column names no type
    assert te.type_p(np.power(10.0, lp)).shape == (2000, 4)
    with pytest.raises(ModelError, match="'weighted' needs the 'total' statistic"):
        calibrate_types(loss, LABELS, "weighted", statistics=("loss",))


def test_rare_type_and_light_tails_keep_p_decreasing_far_out():
    n = 30_000
    rng = np.random.default_rng(6)
    loss = _background(n, 6)
    loss[:, 0] = rng.uniform(0, 1, n)  # a bounded statistic: the Pareto fit has shape < 0
    energy = np.zeros((n, 4))
    energy[:, 0] = rng.exponential(30, n)
    energy[:60, 2] = rng.exponential(20, 60) + 10  # a rare type: 60 events
    te = calibrate_types(loss, LABELS, "sidak", statistics=("loss", "energy"), energy=energy)
    assert all(r.shape is None or r.shape >= 0 for r in te.references)
    rare = te.references[4 + 2]
    assert rare.u is not None  # an exponential tail, not a cap at 1 / 60
    probe = np.array([[0.5, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0]])
    e = np.array([[30.0, 0.0, 200.0, 0.0], [30.0, 0.0, 750.0, 0.0]])
    lp = te.log10_p_values(probe, e)
    assert lp[1, 6] < lp[0, 6] < -4  # farther is more significant, beyond 1 / 60
    far = te.log10_p_values(np.array([[5.0, 0, 0, 1.0]]), np.array([[30.0, 0, 0, 0]]))
    assert -300 < far[0, 0] < lp[0, 0]  # beyond the bounded range: small, not p = 0


def test_budget_split_is_the_whole_loss_p_in_the_bulk_and_a_tail_beyond():
    n = 20_000
    rng = np.random.default_rng(7)
    loss = _background(n, 7)
    energy = rng.exponential(30, (n, 4))
    te = calibrate_types(loss, LABELS, "budget", statistics=("total", "loss", "energy"),
                         energy=energy, total_weight=0.5, tail_p=1e-3)
    assert TypeEvidence.from_dict(te.to_dict()).tail_p == 1e-3
    lp = te.log10_p_values(loss[:4000], energy[:4000])
    s = te.score_log10(lp)
    typed_tail = (lp[:, 1:] < -3).any(axis=1)
    # no type beyond tail_p: exactly the whole loss's p (no cap, no ties in the bulk)
    np.testing.assert_allclose(s[~typed_tail], -lp[~typed_tail, 0], rtol=1e-6)
    bulk = ~typed_tail
    order = np.argsort(loss[:4000][bulk].sum(axis=1))
    assert (np.diff(s[bulk][order]) >= 0).all()  # the whole loss's order (grid cells tie)
    assert (s[bulk] == 0).mean() < 0.01  # no cap: the weighted minimum ties half at 0
    assert (te.score_log10(lp, "weighted")[bulk] == 0).mean() > 0.3
    # beyond it: w_total / w_j times the type's p, when smaller than the whole loss's
    w = te.weights()
    want = np.minimum(lp[:, 0], (lp[:, 1:] + np.log10(w[0] / w[1:])).min(axis=1))
    np.testing.assert_allclose(s[typed_tail], -want[typed_tail], rtol=1e-5)
    # a striking object in one type decides the event
    e = energy[:2].copy()
    e[1, 1] = 5000.0
    s2 = te.score_log10(te.log10_p_values(loss[:2], e))
    assert s2[1] > s2[0] + 5
    with pytest.raises(ModelError, match="'budget' needs the 'total' statistic"):
        calibrate_types(loss, LABELS, "budget", statistics=("energy",), energy=energy)
    with pytest.raises(ModelError, match="tail_p"):
        calibrate_types(loss, LABELS, "budget", statistics=("total", "loss"), tail_p=2.0)


def test_one_table_lookup_equals_each_reference_own_survival():
    """The vectorised grid of all statistics gives each reference's table value (left
    grid point) and its exact tail beyond the grid."""
    n = 20_000
    rng = np.random.default_rng(8)
    loss = _background(n, 8)
    energy = rng.exponential(30, (n, 4))
    te = calibrate_types(loss, LABELS, "sidak", statistics=("loss", "energy"), energy=energy)
    probe_l = np.vstack([loss[:500], loss[:500] * 40, np.zeros((2, 4))])
    probe_e = np.vstack([energy[:500], energy[:500] * 40, np.zeros((2, 4))])
    lp = te.log10_p_values(probe_l, probe_e)
    ev = te.evidence(probe_l, probe_e)
    for j, ref in enumerate(te.references):
        s = ev[:, j]
        want = np.log10(np.clip(ref.p_value(s), 1e-300, 1))
        tail = ref.tail()
        top = tail[0] if tail is not None else ref.scores[-1]
        inside = (s > 0) & (s < top)
        # grid: the left grid point of the float32 statistic (conservative up to rounding)
        assert (lp[inside, j] >= want[inside] - 1e-3).all()
        np.testing.assert_allclose(lp[inside, j], want[inside], atol=0.02)
        assert (lp[s <= 0, j] == 0.0).all()  # absent: p = 1
        if tail is not None:
            beyond = s > top
            np.testing.assert_allclose(lp[beyond, j], want[beyond], rtol=1e-6, atol=1e-9)


def test_budget_card_scores_from_the_tails_only_and_explains_on_request(typed_model,
                                                                          tmp_path):
    """A ``types_budget`` card: the serving score (the whole loss's p-value, the per-type
    p-values looked up only for events in a tail) equals the budget combination of all
    p-values; those are computed when an explanation asks for them."""
    import shutil

    from hotline.detectors.spec import DEFAULT_SPEC
    from hotline.models.registry import load_model

    shutil.copytree(typed_model.path.parent.parent, tmp_path / "reg")
    reg = load_model(typed_model.name, typed_model.version, tmp_path / "reg")
    sc0 = Scorer(reg)
    ref = tiny_features(4000, seed=8)
    r0 = sc0.score(ref)
    energy = type_energy(ref.x, ref.mask, DEFAULT_SPEC.object_type_index(), 4)
    te = calibrate_types(r0.per_type, r0.type_labels, "budget",
                         statistics=("total", "loss", "energy"), energy=energy,
                         total_weight=0.5, tail_p=1e-2)
    sc = Scorer(update_card(reg, type_calibration=te.to_dict(), score="types_budget"))
    fm = tiny_features(3000, seed=11)
    fm.x[5, 3:6] = [1500.0, 0.3, 1.0]  # a 1.5 TeV electron
    fm.mask[5, 1] = True
    r = sc.score(fm)
    assert "type_log10_p" not in r.extra and r.extra["type_evidence"].shape == (3000, 9)
    e = type_energy(fm.x, fm.mask, DEFAULT_SPEC.object_type_index(), 4)
    lp = te.log10_p_values(r.per_type, e)
    np.testing.assert_allclose(r.total, te.score_log10(lp), rtol=1e-6)
    in_tail = (lp[:, 1:] < -2).any(axis=1)
    assert 0 < in_tail.sum() < 300 and in_tail[5]
    np.testing.assert_allclose(r.total[~in_tail], -lp[~in_tail, 0], rtol=1e-6)
    np.testing.assert_array_equal(sc.type_log10_p(r), lp)  # on request, then kept
    assert sc.type_p_values(r).shape == (3000, 4)
    assert r.type_labels[int(sc.explain(r)[5])] == "electrons"
