"""Lumisection histograms: one lumisection's histogram against its reference, with pulls.

Owns ``LumiHistogramView`` (the panel) and ``hist_comparison`` (pure: the numbers it
draws). The histograms are the summaries' per-lumisection ``LumiSummary.hists``
(``detectors.event_histograms``), read from the store for the run on screen; the
reference is the stored reference run's (``alerts.reference.current_reference``) or,
without one, the run's other lumisections, as the distribution checks use
(``alerts.distribution_checks``). The upper plot shows the lumisection's entries per bin
and the reference scaled to the same entries; the lower plot the two-sample pull per bin
``(O - R n/m) / sqrt(n p (1 + n/m))`` with ``p`` the pooled fraction (both samples'
statistics). The lumisection and histogram default to the most significant distribution
finding of the run (``dist_findings`` over the histograms read; else the latest
lumisection and ``muons/pt``); both can be chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure

from hotline.alerts.distribution_checks import dist_findings
from hotline.alerts.lumi_status import Finding
from hotline.alerts.records import LumiSummary
from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import FIG_STYLE
from hotline.detectors.event_histograms import HistBook, LumiHists, book_for

__all__ = ["LumiHistogramView", "bin_labels", "hist_comparison", "worst_dist_finding"]

DEFAULT_HIST = "muons/pt"


def bin_labels(book: HistBook, name: str, size: int) -> list[str]:
    """A label per bin of histogram ``name`` (``"eta [0, 0.24), phi [...)"``, ...)."""
    t, _, var = name.partition("/")
    o = book.object_axes(t)
    if o is None:
        ax = book.scalar_axis(name)
        return [ax.bin_label(c) for c in range(size)]
    if var == "pt_region":
        row = o.pt.size
        return [f"{o.region_label(i // row)}; pT {o.pt.bin_label(i % row)}" for i in range(size)]
    if var == "etaphi":
        row = o.phi.size
        return [f"eta {o.eta.bin_label(i // row)}, phi {o.phi.bin_label(i % row)}"
                for i in range(size)]
    if var == "n":
        return [str(max(c - 1, 0)) if 0 < c <= o.n.n else f">= {o.n.n}" for c in range(size)]
    ax = getattr(o, var)
    return [ax.bin_label(c) for c in range(size)]


def hist_comparison(obs: np.ndarray, ref: np.ndarray) -> dict[str, list[float]]:
    """Per bin: the lumisection's entries, the reference scaled to them, the two-sample
    pull (0 where both are empty; see the module docstring)."""
    o = np.asarray(obs, dtype=float)
    r = np.asarray(ref, dtype=float)
    n, m = float(o.sum()), float(r.sum())
    if n <= 0 or m <= 0:
        return {"obs": o.tolist(), "ref": np.zeros_like(o).tolist(),
                "pull": np.zeros_like(o).tolist()}
    expect = r * n / m
    pooled = (o + r) / (n + m)
    var = n * pooled * (1.0 + n / m)
    pull = np.where(var > 0, (o - expect) / np.sqrt(np.maximum(var, 1e-300)), 0.0)
    return {"obs": o.tolist(), "ref": expect.tolist(), "pull": pull.tolist()}


def worst_dist_finding(lumis: Sequence[int],
                       findings: Sequence[Sequence[Finding]]) -> tuple[int, str] | None:
    """(lumisection, histogram) of the most significant non-green distribution finding
    (``findings`` per lumisection of ``lumis``, as ``dist_findings`` gives them), or None."""
    best: tuple[float, int, str] | None = None
    for lumi, fs in zip(lumis, findings):
        for f in fs:
            if f.kind != "dist" or f.level not in ("amber", "red"):
                continue
            name = f.quantity.removeprefix("trend:").removeprefix("dist:").split("@")[0]
            if best is None or f.p_corrected < best[0]:
                best = (f.p_corrected, lumi, name)
    return None if best is None else (best[1], best[2])


class LumiHistogramView(pn.viewable.Viewer):
    """The selected lumisection's histogram against its reference (upper) and the pulls
    (lower); lumisection and histogram selectable."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.sums: list[LumiSummary] = []
        self.reference: LumiHists | None = None
        self.scales: dict[str, float] = {}
        self.reference_label = ""
        self._seen: tuple[Any, ...] = ()
        self.lumi = pn.widgets.Select(label="lumisection", options=[], width=140)
        self.hist = pn.widgets.Select(label="histogram", options=[], width=220)
        self.note = pn.pane.Markdown("*No lumisection histograms yet.*", margin=(0, 10))
        self.source = ColumnDataSource({"x": [], "left": [], "right": [], "obs": [], "ref": [],
                                        "pull": [], "label": []})
        hover = HoverTool(tooltips=[("bin", "@label"), ("this LS", "@obs{0}"),
                                    ("reference", "@ref{0.0}"), ("pull", "@pull{0.00}")])
        self.fig = figure(height=240, title="lumisection vs reference",
                          y_axis_label="entries / bin", **FIG_STYLE)
        self.fig.add_tools(hover)
        self.fig.quad(left="left", right="right", top="obs", bottom=0, source=self.source,
                      fill_color="#4a78b5", line_color="#2b4f80", fill_alpha=0.7,
                      legend_label="this lumisection")
        self.fig.scatter(x="x", y="ref", source=self.source, color="black", size=4,
                         legend_label="reference (scaled)")
        self.fig.legend.location = "top_right"
        self.fig.legend.background_fill_alpha = 0.7
        self.pull_fig = figure(height=140, y_axis_label="pull", x_axis_label="bin",
                               x_range=self.fig.x_range, **FIG_STYLE)
        self.pull_fig.add_tools(HoverTool(tooltips=[("bin", "@label"), ("pull", "@pull{0.00}")]))
        self.pull_fig.vbar(x="x", top="pull", width=0.9, source=self.source,
                           color="#d62728", alpha=0.7)
        for y in (-3.0, 3.0):
            self.pull_fig.add_layout(Span(location=y, dimension="width", line_dash="dashed",
                                          line_color="#757575"))
        self.lumi.param.watch(self._draw, "value")
        self.hist.param.watch(self._draw, "value")
        self.refresh(force=True)

    def __panel__(self) -> Any:
        return pn.Column(pn.Row(self.lumi, self.hist), self.note,
                         pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
                         pn.pane.Bokeh(self.pull_fig, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")

    # ------------------------------------------------------------ data

    def _read(self) -> None:
        feed = self.state.feed
        run = self.state.run
        self.sums = []
        self.reference, self.reference_label = None, ""
        if run is None:
            return
        try:
            self.sums = [s for s in feed.store.summaries(source=feed.source, run=run, hists=True)
                         if s.hists is not None]
        except Exception:  # noqa: BLE001 - an older store without histograms: nothing to show
            self.sums = []
        from hotline.alerts.reference import current_reference

        try:
            ref = current_reference(feed.store, feed.source)
        except Exception:  # noqa: BLE001 - no references table: leave-one-out
            ref = None
        self.scales = {}
        if ref is not None and ref.run != run:
            self.reference = ref.lumi_hists()
            self.scales = dict(ref.hist_scale)
            self.reference_label = f"reference run {ref.run}"

    def refresh(self, force: bool = False) -> None:
        """Re-read the run's histograms when the run on screen or its latest lumisection
        changed (the selection stays unless it no longer exists)."""
        key = (self.state.run, self.state.lumi)
        if not force and key == self._seen:
            return
        self._seen = key
        self._read()
        lumis = [s.lumi for s in self.sums]
        names = sorted({n for s in self.sums for n in (s.hists.counts if s.hists else {})})
        pick = None
        if lumis and (self.lumi.value not in lumis or self.hist.value not in names):
            found = dist_findings([s.hists for s in self.sums], self.reference, self.scales,
                                  lumis=lumis)
            pick = worst_dist_finding(lumis, found)
        with pn.io.hold():
            self.hist.options = names
            self.lumi.options = lumis
            if pick is not None and pick[0] in lumis and pick[1] in names:
                self.lumi.value, self.hist.value = pick
            else:
                if self.lumi.value not in lumis and lumis:
                    self.lumi.value = lumis[-1]
                if self.hist.value not in names and names:
                    self.hist.value = DEFAULT_HIST if DEFAULT_HIST in names else names[0]
        self._draw()

    def _draw(self, *_: Any) -> None:
        mine = [s for s in self.sums if s.lumi == self.lumi.value]
        name = self.hist.value
        if not mine or not name or mine[0].hists is None or name not in mine[0].hists.counts:
            self.note.object = "*No lumisection histograms yet.*"
            self.source.data = {k: [] for k in self.source.data}
            return
        h = mine[0].hists
        obs = h.counts[name]
        if self.reference is not None and self.reference.book == h.book and \
                name in self.reference.counts and self.reference.counts[name].size == obs.size:
            ref = self.reference.counts[name]
            label = self.reference_label
        else:
            ref = _others(self.sums, mine[0], name, obs.size)
            label = "the run's other lumisections"
        d = hist_comparison(obs, ref)
        try:
            labels = bin_labels(book_for(h.book), name, obs.size)
        except Exception:  # noqa: BLE001 - an unknown book: bin numbers only
            labels = [str(i) for i in range(obs.size)]
        x = list(range(obs.size))
        self.source.data = {"x": x, "left": [i - 0.45 for i in x],
                            "right": [i + 0.45 for i in x], "label": labels, **d}
        worst = int(np.argmax(np.abs(d["pull"]))) if obs.size else 0
        self.fig.title.text = f"{name}, LS {self.lumi.value} vs {label}"
        big = max((abs(p) for p in d["pull"]), default=0.0)
        self.note.object = (f"{int(obs.sum()):,} entries against {label} "
                            f"({int(np.sum(ref)):,}); largest pull {big:.1f} in "
                            f"{labels[worst] if labels else '-'}"
                            if math.isfinite(big) else "")


def _others(sums: Sequence[LumiSummary], mine: LumiSummary, name: str, size: int) -> np.ndarray:
    """The sum of histogram ``name`` over the run's other lumisections (same book)."""
    out = np.zeros(size, np.int64)
    for s in sums:
        if s is mine or s.hists is None or s.hists.book != (mine.hists.book if mine.hists
                                                            else None):
            continue
        c = s.hists.counts.get(name)
        if c is not None and c.size == size:
            out += c
    return out
