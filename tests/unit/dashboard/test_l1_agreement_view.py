"""The live L1 agreement view as Bokeh models over a real SQLite store: seeds, alarms marked,
the selection's numbers, live updates, and one line for a run that was not emulated."""

from __future__ import annotations

import pytest

from hotline.alerts.records import LumiSummary
from hotline.config import load_config
from hotline.dashboard.hub import build_hub
from hotline.dashboard.views.l1_agreement import L1AgreementView, y_window
from hotline.stream.l1_emulation import divergence_alerts
from tests.support.l1_summaries import BAD, emulated_lumi


def _view(store, tmp_path, min_agreement: float = 0.999) -> L1AgreementView:
    cfg = load_config(environ={}, cli={"store": {"url": store.url},
                                       "source": {"archive": str(tmp_path)}})
    hub = build_hub(cfg, store=store, replay=False)
    hub.feed.min_interval = 0.0
    state = hub.new_state()
    state.update(force=True)
    return L1AgreementView(state, min_agreement=min_agreement)


def _fill(store, sums):
    store.upsert_summaries(sums)
    store.add_alerts([a for s in sums for a in divergence_alerts(s, 0.999)])


def test_a_run_without_emulation_gets_one_line_and_no_plot(store, tmp_path):
    view = _view(store, tmp_path)
    assert "No lumisection summaries yet" in view.note.object and not view.plot.visible
    store.upsert_summaries([LumiSummary("hotline", 8, ls, n_events=100) for ls in (1, 2)])
    view.state.update(force=True)
    assert not view.plot.visible and view.detail.object == ""
    assert "Run 8 was not emulated" in view.note.object
    assert "<code>--emulate BUILD_DIR</code>" in view.note.object


def test_seeds_alarms_and_the_minimum_line(store, tmp_path):
    _fill(store, [emulated_lumi(1), emulated_lumi(2, 1), emulated_lumi(3, 30),
                  emulated_lumi(4, 40, header=BAD),
                  LumiSummary("hotline", 7, 5, n_events=4000)])
    view = _view(store, tmp_path)
    assert view.plot.visible
    assert list(view.seed_sources) == ["Loose", "Tight"]
    assert [i.label["value"] for i in view.legend.items] == ["Loose", "Tight"]
    tight = view.seed_sources["Tight"][0].data
    assert list(tight["lumi"]) == [1, 2, 3, 4]
    assert list(tight["differ"]) == [0, 1, 30, 40]
    assert list(tight["alarm"]) == ["", "", "Tight red", "Tight red"]
    # alarmed lumisections shaded over the whole height, the alarmed seeds crossed
    assert list(view.bands.data["lumi"]) == [3, 4]
    assert sorted(zip(view.marks.data["lumi"], view.marks.data["seed"])) == [
        (3, "Loose"), (3, "Tight"), (4, "Loose"), (4, "Tight")]
    assert view.min_line.location == 0.999
    lo, hi = view.fig.y_range.start, view.fig.y_range.end
    assert lo < min(tight["agreement"]) and lo < 0.999 and hi > 1.0
    assert "divergence alarms in LS 3-4" in view.note.object
    assert "build b0123456789a" in view.builds.object
    assert "build ffffeeee0000" in view.builds.object
    assert "the build changed during the run" in view.builds.object
    assert "not emulated: LS 5" in view.builds.object
    # no selection: the whole run, one block per build
    assert view.detail.object.count("hotline-l1-sel") == 2
    assert "all lumisections" in view.detail.object


def test_selection_follows_the_strip_and_a_click_on_a_point(store, tmp_path):
    _fill(store, [emulated_lumi(1), emulated_lumi(2, 1), emulated_lumi(3, 30)])
    view = _view(store, tmp_path)
    view.state.select_lumis(3)  # as the status strip does
    assert view.shade.visible and (view.shade.left, view.shade.right) == (2.5, 3.5)
    d = view.detail.object
    assert "<b>LS 3</b>" in d and d.count("hotline-l1-sel") == 1
    assert ">300068<" in d  # the event with the largest difference (module helper)
    assert "<td>Tight</td><td class='num'>0.001</td><td class='num'>26214</td>" \
           "<td class='num'>30</td>" in d
    assert "red" in d
    # a click on a point selects its lumisection for every view
    src, _ = view.seed_sources["Loose"]
    src.selected.indices = [list(src.data["lumi"]).index(2)]
    assert (view.state.ls_first, view.state.ls_last) == (2, 2)
    assert "<b>LS 2</b>" in view.detail.object
    view.state.select_lumis(None)
    assert not view.shade.visible and "all lumisections" in view.detail.object


def test_updates_live_as_summaries_arrive(store, tmp_path):
    _fill(store, [emulated_lumi(1), emulated_lumi(2)])
    view = _view(store, tmp_path)
    src, sync = view.seed_sources["Loose"]
    n0 = view.redraws
    assert list(src.data["lumi"]) == [1, 2]
    view.state.update(force=True)  # nothing new: nothing redrawn
    assert view.redraws == n0
    _fill(store, [emulated_lumi(3, 30)])
    view.state.update(force=True)  # the periodic tick
    assert list(src.data["lumi"]) == [1, 2, 3]
    assert list(view.bands.data["lumi"]) == [3] and view.redraws == n0 + 1
    # the new lumisection was streamed, the series never replaced
    assert sync.streams == 1 and sync.resets == 0
    # the open lumisection fills: its point is patched in place
    store.upsert_summaries([emulated_lumi(3, 31, n_events=5000)])
    view.state.update(force=True)
    assert list(src.data["differ"]) == [0, 0, 31] and list(src.data["n_good"])[2] == 4990
    assert sync.patches == 1 and sync.resets == 0


def test_y_window_keeps_the_minimum_line_in_view():
    lo, hi = y_window([1.0, 0.9995], 0.999)
    assert lo < 0.999 and hi > 1.0
    lo, hi = y_window([0.5, float("nan")], 0.999)
    assert lo < 0.5
    assert y_window([], 0.999)[0] == pytest.approx(0.999 - 2e-4)
