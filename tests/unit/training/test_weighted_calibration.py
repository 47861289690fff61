"""Weighted references: biased-sampling weights give the thresholds of the true distribution."""

from pathlib import Path

import numpy as np
import pytest

from hotline.errors import ModelError
from hotline.models.thresholds import ReferenceDistribution, calibrate
from hotline.models.weights import component_weights, kish
from hotline.training.evaluate import auc, roc_curve

DEMO_ARCHIVE = Path(__file__).resolve().parents[3] / "data" / "archive"


def _biased_exponential(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Draws from Exp(mean 2) reweighted to Exp(mean 1): heavier tail, like pTHat-biased QCD."""
    rng = np.random.default_rng(seed)
    x = rng.exponential(2.0, n)
    return x, np.exp(-x) / (0.5 * np.exp(-x / 2.0))


def test_weighted_thresholds_recover_the_true_distribution():
    x, w = _biased_exponential(60_000)
    cal = calibrate(x, (0.05, 1e-3, 1e-5), n_boot=10, weights=w)
    got = {t["p"]: t for t in cal["thresholds"]}
    for p in (0.05, 1e-3):
        assert got[p]["method"] == "empirical"
        assert got[p]["threshold"] == pytest.approx(-np.log(p), rel=0.03)
    assert got[1e-5]["method"] == "gpd"
    assert got[1e-5]["threshold"] == pytest.approx(-np.log(1e-5), rel=0.12)
    # the same sample, unweighted, is badly off: the weights matter
    unw = {t["p"]: t["threshold"] for t in calibrate(x, (1e-3,), n_boot=5)["thresholds"]}
    assert unw[1e-3] > 1.5 * -np.log(1e-3)
    assert got[1e-3]["n_eff"] == pytest.approx(kish(w), rel=1e-3)
    # the serving-time p-value table agrees with the weighted thresholds
    ref = ReferenceDistribution.from_dict(cal["reference"])
    assert ref.p_value(np.array([got[1e-3]["threshold"]]))[0] == pytest.approx(1e-3, rel=0.2)


def test_unit_weights_match_the_unweighted_calibration():
    rng = np.random.default_rng(0)
    s = rng.exponential(1.0, 30_000)
    a = calibrate(s, (0.01, 1e-3), n_boot=5)["thresholds"]
    b = calibrate(s, (0.01, 1e-3), n_boot=5, weights=np.ones_like(s))["thresholds"]
    for ta, tb in zip(a, b):
        assert tb["threshold"] == pytest.approx(ta["threshold"], rel=0.01)


def test_small_effective_size_is_refused_and_bad_weights_named():
    x, w = _biased_exponential(2_000)
    w[:5] *= 1e4  # a handful of events carry the weight: Kish size collapses
    cal = calibrate(x, (1e-3, 1e-5), n_boot=3, weights=w)
    assert {r["p"] for r in cal["refused"]} >= {1e-5}
    assert "effective" in cal["refused"][-1]["reason"]
    with pytest.raises(ModelError, match="weights"):
        calibrate(x, (0.01,), weights=np.full_like(x, np.nan))
    with pytest.raises(ModelError, match="weights"):
        calibrate(x, (0.01,), weights=w[:10])


def test_weighted_auc_and_roc():
    rng = np.random.default_rng(1)
    bkg, w = _biased_exponential(20_000)
    sig = rng.exponential(1.0, 5_000) + 1.0
    # true AUC for bkg ~ Exp(1) vs sig ~ 1 + Exp(1): P(sig > bkg) = 1 - e^-1 / 2
    assert auc(bkg, sig, w) == pytest.approx(1 - np.exp(-1) / 2, abs=0.01)
    assert auc(bkg, sig) < auc(bkg, sig, w) - 0.05  # unweighted: heavier background tail
    fpr, tpr = roc_curve(bkg, sig, w_bkg=w)
    assert np.all(np.diff(fpr) <= 1e-12) and fpr.max() <= 1.0


def test_component_weights_normalise_within_each_sample():
    sample = np.array([1, 1, 2, 2, 2, 3])
    gw = np.array([1.0, 1.0, 0.1, 0.3, 0.2, 1.0])
    w = component_weights(sample, gw)
    assert w[sample == 2].mean() == pytest.approx(1.0)
    assert w[sample == 2] == pytest.approx([0.5, 1.5, 1.0])
    assert np.all(w[sample != 2] == 1.0)
    with pytest.raises(ModelError, match="genWeight"):
        component_weights(sample, np.array([1, 1, -1, 1, 1, 1.0]))


def test_archived_runs_carry_physical_weights(tmp_path):
    """A weighted run (QCD with bias weights) loads with weights of mean 1 per sample; the
    bundled data-like demo run loads without weights (every genWeight is 1)."""
    import uproot

    from hotline.stream.archive import find_run
    from hotline.stream.samples import features_from_runs
    from tests.support.rootfiles import write_weighted_run

    demo = features_from_runs([1], DEMO_ARCHIVE, max_events=2_000)
    assert demo.weights is None and len(demo) == 2_000
    with uproot.open(find_run(DEMO_ARCHIVE, 1).files[0]) as f:
        assert np.all(f["Events"]["genWeight"].array(library="np") == 1.0)
    write_weighted_run(DEMO_ARCHIVE, tmp_path, max_events=5_000)
    fm = features_from_runs([1], tmp_path, max_events=5_000)
    assert fm.weights is not None and len(fm.weights) == len(fm) == 5_000
    run = find_run(tmp_path, 1)
    with uproot.open(run.files[0]) as f:
        codes = f["Events"]["sample"].array(library="np", entry_stop=5_000)
    assert fm.weights[codes == 2].mean() == pytest.approx(1.0)  # qcd: biased, renormalised
    assert np.all(fm.weights[codes == 1] == 1.0)  # w_lnu: unbiased
    assert kish(fm.weights) < 0.9 * len(fm)
