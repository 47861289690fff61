"""Every alert explained: classic cuts, DQM verdicts with p-value bounds, hardware maps,
the score reference over the whole tail (pure functions, no browser)."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.menu import build_menu
from hotline.alerts.records import AlertRecord
from hotline.dashboard.alert_detail import classic_why, dqm_why, event_objects, p_text
from hotline.dashboard.alert_table import alert_row
from hotline.dashboard.dqm_display import map_frame, unit_boxes
from hotline.dashboard.model_info import reference_from_card
from hotline.dashboard.views.histogram import ratio_columns
from hotline.detectors.geometry import get_geometry
from tests.support.control_room import DQM_FLOOR, make_control_room_alerts

RULES = {r.name: r for r in build_menu()}


def _classic(rule: str, objects: list) -> AlertRecord:
    return AlertRecord.make(kind="classic", rule=rule, source="s", run=1, lumi=2, event=3,
                            payload={"objects": objects})


def test_classic_why_says_the_cut_the_value_and_the_objects():
    met = classic_why(_classic("met250", [["met", 365.4, 0.0, 1.0], ["j1", 90, 0.1, 2]]),
                      RULES["met250"])
    assert met["verdict"] == "MET 365 GeV > 250 GeV"
    assert met["cut"] == "MET > 250 GeV (MET_pt)"
    assert [r["object"] for r in met["fired"]] == ["met"]
    ht = classic_why(_classic("ht300", [["j1", 240, 1, 1], ["j2", 110, 0, 0], ["j3", 25, 2, 2],
                                        ["mu1", 50, 0, 0]]), RULES["ht300"])
    assert ht["verdict"] == "sum pT 350 GeV > 300 GeV (2 jets)"  # j3 is below 30 GeV
    assert "pT > 30 GeV" in ht["cut"] and [r["object"] for r in ht["fired"]] == ["j1", "j2"]
    mu = classic_why(_classic("2mu_pt15", [["mu1", 40, 0.3, 1], ["mu2", 22, -1, 1],
                                           ["mu3", 9, 0, 0]]), RULES["2mu_pt15"])
    assert mu["verdict"].startswith("2 muons above 15 GeV >= 2: mu1 40 GeV, mu2 22 GeV")
    assert mu["cut"] == "at least 2 muons with pT > 15 GeV"
    pho = classic_why(_classic("1pho_pt100", [["pho1", 130, 0.2, 0.1]]), RULES["1pho_pt100"])
    assert pho["verdict"].startswith("1 photon above 100 GeV >= 1: pho1 130 GeV")
    unknown = classic_why(_classic("my_rule", [["j1", 90, 0.1, 2]]), None)
    assert "not in this dashboard's rule menu" in unknown["note"]
    assert [r["object"] for r in unknown["fired"]] == ["j1"]


def _dqm(p: float, floor: float | None) -> AlertRecord:
    payload = {"subsystem": "calo_regions", "threshold": 1.5, "title": "Calo",
               "top_units": [{"level": "card", "unit": "card 05.11", "contribution": 0.6,
                              "log10_p": 872.0}]}
    if floor is not None:
        payload["p_floor"] = floor
    return AlertRecord.make(kind="dqm", rule="dqm_calo_regions", source="s", run=1, lumi=2,
                            event=0, score=9.0, p_value=p, payload=payload)


def test_a_floored_p_value_is_shown_as_a_bound_never_as_a_value():
    floored = _dqm(2.0e-6, 2.0e-6)
    assert p_text(floored) == ("< 2.0e-06", "> 4.61")
    why = dqm_why(floored)
    assert "p < 2.0e-06" in why["verdict"] and "map score 9 > threshold 1.5" in why["verdict"]
    assert "only known to be below" in why["note"]
    assert why["units"][0]["-log10 p"] == 872.0
    row = alert_row(floored)
    assert (row["p"], row["z"]) == ("< 2.0e-06", "> 4.61")
    measured = _dqm(3.0e-4, 2.0e-6)
    assert p_text(measured) == ("3.0e-04", "3.43") and "= 3.0e-04" in dqm_why(measured)["verdict"]
    assert p_text(_dqm(3.0e-4, None))[0] == "3.0e-04"  # older payloads: the value as stored
    # no "event 0" event display for a lumisection-level alert
    ev = event_objects(floored)
    assert "not one event" in ev["title"] and ev["objects"]["label"] == []


def test_calorimeter_maps_are_drawn_in_eta_and_phi():
    alert = next(a for a in make_control_room_alerts(1, 9, 10) if a.rule == "dqm_calo_regions")
    geo = get_geometry("calo_regions")
    f = map_frame(alert.payload, geo)
    assert (f["x_label"], f["y_label"]) == ("eta", "phi [rad]")
    assert (f["x0"], f["x0"] + f["dw"]) == (-3.0, 3.0)
    assert np.isclose(f["y0"], -np.pi) and np.isclose(f["dh"], 2 * np.pi)
    # the flagged card's box sits where its cells are: card 05.11 is phi rows 8-9, eta col 10
    (box,) = unit_boxes(alert.payload, geo)
    lv = geo.level("card")
    r, c = np.divmod(lv.cells(lv.names.index("card 05.11")), 14)
    assert np.isclose(box["left"], -3 + c.min() * 6 / 14)
    assert np.isclose(box["bottom"], -np.pi + r.min() * 2 * np.pi / 18)
    # the hot cells in the map are inside the box (hits/event 9 vs ~1 elsewhere)
    img = np.asarray(alert.payload["map"])
    assert img[r, c].min() == 9.0 and np.median(img) < 2


def test_muon_maps_have_labelled_wheels_stations_and_sectors():
    alert = next(a for a in make_control_room_alerts(1, 9, 10) if a.rule == "dqm_muon_barrel")
    f = map_frame(alert.payload)
    assert "sector" in f["x_label"] and f["y_label"] == "wheel / station"
    assert list(f["x_ticks"].values()) == [f"S{s:02d}" for s in range(1, 13)]
    assert f["x_ticks"][2.0] == "S01"  # 4 channels per sector: centre of columns 0-3
    assert f["y_ticks"][0.5] == "W-2 MB1" and f["y_ticks"][19.5] == "W+2 MB4"
    assert f["y_lines"] == [4.0, 8.0, 12.0, 16.0]  # between wheels
    (box,) = unit_boxes(alert.payload)
    assert (box["left"], box["right"]) == (8.0, 12.0)  # sector S03
    assert (box["bottom"], box["top"]) == (13.0, 14.0)  # W+1 MB2: row 3 * 4 + 1


def test_the_score_reference_reaches_past_every_threshold():
    card = {"reference": {"n_ref": 28500, "scores": [0.0, 0.02, 0.0372],
                          "log10_p": [0.0, -1.0, -1.6989],
                          "tail": {"u": 0.0372, "p_u": 0.02, "shape": 0.06, "scale": 0.0138}}}
    with_tail = reference_from_card(card)
    no_tail = reference_from_card({"reference": {k: v for k, v in card["reference"].items()
                                                 if k != "tail"}})
    assert with_tail.has_tail and not no_tail.has_tail
    edges = np.geomspace(1e-3, 1.0, 31)
    beyond = edges[:-1] > 0.1  # far above the table, around the p = 1e-5 threshold
    exp = with_tail.expected(edges, 1e7)
    assert exp[beyond].sum() > 1.0  # expected events beyond the table, not zero
    assert no_tail.expected(edges, 1e7)[beyond].sum() == 0.0
    sf = with_tail.survival(np.array([1e-3, 1.0]))
    assert np.isclose(exp.sum(), 1e7 * (sf[0] - sf[1]), rtol=1e-6)
    # the shipped model's card has a tail: its reference covers its 1e-5 threshold
    from hotline.models.registry import load_model

    card = load_model("ae_default").card
    ref = reference_from_card(card)
    top = max(t["threshold"] for t in card["thresholds"])
    assert ref.has_tail and ref.survival(np.array([top]))[0] == pytest.approx(1e-5, rel=0.3)


def test_ratio_panel_points_and_poisson_bands():
    r = ratio_columns(np.array([10, 0, 4, 5]), np.array([5.0, 2.0, 1e-6, 5.0]))
    assert r["ratio"][0] == 2.0 and np.isclose(r["hi"][0], 2 + np.sqrt(10) / 5)
    assert np.isnan(r["ratio"][1]) and np.isclose(r["hi"][1], 1.15 / 2)  # empty: a limit
    assert np.isnan(r["ratio"][2]) and np.isnan(r["hi"][2])  # reference expects nothing
    assert r["ratio"][3] == 1.0


def test_control_room_dqm_alerts_are_floored():
    dqm = [a for a in make_control_room_alerts(1, 9, 10) if a.kind == "dqm"]
    assert dqm and all(p_text(a)[0] == f"< {DQM_FLOOR:.1e}" for a in dqm)
