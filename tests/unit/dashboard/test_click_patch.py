"""A click on an alert changes data and texts only: what goes to the browser when the
selection moves between a classic, an AE and a DQM alert holds no property that makes
Bokeh lay out the page again (an element shown or hidden, resized, restyled, its children
or a table's columns replaced, a title or axis label emptied or filled) and no new model.
Real SQLite store, the real page in a Bokeh ``Document``; the events are those the server
would send to the browser."""

from __future__ import annotations

import pytest
from bokeh.document import Document
from bokeh.document.events import ModelChangedEvent

from tests.support.control_room import fill_control_room
from tests.unit.dashboard.test_at_a_glance import page_of

#: properties whose change makes BokehJS (or Panel's table) re-lay out the whole page
LAYOUT_PROPS = {"visible", "children", "height", "width", "min_height", "min_width",
                "max_height", "max_width", "sizing_mode", "margin", "css_classes",
                "stylesheets", "configuration", "columns", "layout", "above", "below",
                "left", "right", "center", "renderers"}


@pytest.fixture
def page(store, tmp_path):
    alerts = fill_control_room(store, run=300, n_lumis=30, n_alerts=400,
                               events_per_lumi=20000)
    page = page_of(store, tmp_path)
    doc = Document()
    doc.add_root(page.get_root(doc))
    return page, doc, alerts


def test_selecting_alerts_of_every_kind_sends_data_not_layout(page):
    page, doc, alerts = page
    st = page.hotline_state
    picks = [next(a for a in alerts if a.rule == "met250"),
             next(a for a in alerts if a.kind == "ae"),
             next(a for a in alerts if a.kind == "dqm"),
             next(a for a in alerts if a.rule == "ht300"),
             next(a for a in alerts if a.kind == "ae" and a.id != alerts[0].id),
             next(a for a in alerts if a.rule == "met250")]
    st.select(picks[0].id)  # the first selection may fill what was empty
    events: list = []
    doc.on_change(events.append)
    models = {m.id for m in doc.models}
    for a in picks[1:]:
        st.select(a.id)
    changed = [(type(e.model).__name__, e.attr) for e in events
               if isinstance(e, ModelChangedEvent)]
    assert changed, "the selections changed nothing"
    bad = [c for c in changed if c[1] in LAYOUT_PROPS]
    assert not bad, bad
    emptied = [(type(e.model).__name__, e.attr) for e in events
               if isinstance(e, ModelChangedEvent) and e.attr in ("text", "axis_label")
               and type(e.model).__name__ in ("Title", "LinearAxis") and not e.new]
    assert not emptied, emptied
    assert {m.id for m in doc.models} == models  # no new models per click
