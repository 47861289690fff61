"""Helpers shared by the dashboard views: incremental ColumnDataSource updates, colours.

``SeriesSync`` pushes a per-lumisection series into a ``ColumnDataSource`` the way
Bokeh likes it: new lumisections are ``stream``-ed (with ``rollover``), lumisections
that are still filling are ``patch``-ed, and only a change of run (or out-of-order
data) replaces the data. Views never rebuild their figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bokeh.models import ColumnDataSource

from hotline.dashboard.state import SERIES_LUMIS

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]

TYPE_COLORS = {"MET": "#d62728", "electron": "#1f77b4", "muon": "#2ca02c", "jet": "#ff7f0e",
               "photon": "#9467bd", "tau": "#8c564b", "other": "#7f7f7f"}

FIG_STYLE: dict[str, Any] = {"toolbar_location": "above",
                             "tools": "pan,wheel_zoom,box_zoom,reset,save",
                             "sizing_mode": "stretch_width"}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class SeriesSync:
    """Keep ``source`` equal to a column dict keyed by ``key`` with stream/patch only."""

    def __init__(self, source: ColumnDataSource, key: str = "lumi",
                 rollover: int = SERIES_LUMIS) -> None:
        self.source = source
        self.key = key
        self.rollover = rollover
        self.resets = 0  #: how often the data had to be replaced (run change); for tests
        self.streams = 0
        self.patches = 0

    def apply(self, data: Mapping[str, Sequence[Any]]) -> None:
        cur = self.source.data
        cur_keys = list(cur.get(self.key, []))
        new_keys = list(data[self.key])
        pos_new = {k: i for i, k in enumerate(new_keys)}
        dropped = [k for k in cur_keys if k not in pos_new]
        if set(cur.keys()) != set(data.keys()) or (
            dropped and cur_keys[: len(dropped)] != dropped
        ):
            self.source.data = {c: list(v) for c, v in data.items()}
            self.resets += 1
            return
        kept = cur_keys[len(dropped):]
        # the kept keys must be the leading keys of the new data, in order
        appended = new_keys[len(kept):]
        if kept != new_keys[: len(kept)] or (cur_keys and not kept) or (
            cur_keys and appended and appended[0] <= cur_keys[-1]
        ):
            self.source.data = {c: list(v) for c, v in data.items()}
            self.resets += 1
            return
        patches: dict[str, list[tuple[int, Any]]] = {}
        off = len(dropped)
        for c, values in data.items():
            old = cur[c]
            for j in range(len(kept)):
                if not _same(old[off + j], values[j]):
                    patches.setdefault(c, []).append((off + j, values[j]))
        if patches:
            self.source.patch(patches)
            self.patches += 1
        if len(new_keys) > len(kept):
            n0 = len(kept)
            self.source.stream({c: list(v[n0:]) for c, v in data.items()},
                               rollover=self.rollover)
            self.streams += 1
