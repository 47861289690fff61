"""The per-statistics calibration table of occupancy models: interpolation and range."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.errors import ModelError
from hotline.models.occupancy_statistics import StatisticsTable, level_grid


def _level(n: int, shift: float) -> dict:
    """A level whose reference scores are exponential + shift (survival known exactly)."""
    logp = np.linspace(0.0, -4.0, 41)
    scores = shift - logp * np.log(10.0)
    thresholds = [{"p": p, "threshold": shift + np.log(1 / p), "uncertainty": 0.1}
                  for p in (0.05, 0.01, 1e-3)]
    return {"n_events": n, "n_ref": 100_000, "thresholds": thresholds,
            "reference": {"n_ref": 100_000, "scores": scores.tolist(),
                          "log10_p": logp.tolist(), "tail": None}}


@pytest.fixture(scope="module")
def table() -> StatisticsTable:
    card = {"name": "conv_test", "version": "3", "statistics_calibration": {
        "levels": [_level(1000, 2.0), _level(100, 6.0), _level(10_000, 1.0)]}}
    t = StatisticsTable.from_card(card)
    assert t is not None
    return t


def test_levels_are_sorted_and_give_the_range(table):
    assert [lv.n_events for lv in table.levels] == [100, 1000, 10_000]
    assert (table.min_events, table.max_events) == (100, 10_000)


def test_threshold_at_a_level_is_the_level_s_and_interpolates_in_log_n(table):
    t100 = table.levels[0].threshold(1e-3)
    t1000 = table.levels[1].threshold(1e-3)
    assert float(table.threshold(1e-3, 100)) == pytest.approx(t100)
    assert float(table.threshold(1e-3, 1000)) == pytest.approx(t1000)
    # sqrt(100 * 1000) is halfway in log n
    assert float(table.threshold(1e-3, np.sqrt(1e5))) == pytest.approx((t100 + t1000) / 2)
    # an exponential tail: the 1e-3 threshold is shift + ln(1000) ~ 6.9 above the shift
    assert t100 == pytest.approx(6.0 + np.log(1000))
    # vectorised and monotone between levels
    ts = table.threshold(1e-3, np.array([100, 200, 500, 1000]))
    assert ts.shape == (4,) and np.all(np.diff(ts) < 0)


def test_a_p_value_not_listed_comes_from_the_level_reference(table):
    t = float(table.threshold(0.02, 1000))
    assert table.levels[1].threshold(0.05) < t < table.levels[1].threshold(0.01)


def test_p_values_follow_the_level_and_are_nan_outside_the_range(table):
    thr = float(table.threshold(1e-3, 1000))
    p = table.p_value(np.array([thr, thr, thr]), np.array([1000, 50, 50_000]))
    assert p[0] == pytest.approx(1e-3, rel=1e-6)
    assert np.isnan(p[1]) and np.isnan(p[2])
    # at 100 events the same score is common (the level's scores are shifted up by 4)
    assert table.p_value(np.array([thr]), np.array([100]))[0] == pytest.approx(
        np.exp(-(thr - 6.0)), rel=1e-6)


def test_outside_the_range_is_one_line_naming_the_numbers(table):
    assert table.problem(100) is None and table.problem(10_000) is None
    msg = table.problem(40)
    assert msg is not None and "\n" not in msg
    assert "40 events per lumisection" in msg and "100 to 10,000" in msg
    assert "conv_test v3" in msg and "not scored" in msg
    assert "50,000" in table.problem(50_000)


def test_cards_without_a_table_and_broken_tables():
    assert StatisticsTable.from_card({"name": "x"}) is None
    with pytest.raises(ModelError, match="invalid statistics_calibration"):
        StatisticsTable.from_card({"name": "x", "statistics_calibration": {
            "levels": [{"n_events": 100}]}})
    lv = _level(100, 1.0)
    with pytest.raises(ModelError, match="lists a level twice"):
        StatisticsTable.from_card({"name": "x", "statistics_calibration": {
            "levels": [lv, lv]}})


def test_level_grid_is_log_spaced():
    assert level_grid(100, 10_000, 3) == [100, 1000, 10_000]
    assert len(level_grid(100, 20_000, 10)) == 10
    with pytest.raises(ModelError):
        level_grid(1000, 100, 3)
