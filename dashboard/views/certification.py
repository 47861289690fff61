"""Lumisection certification of the run on screen: flags, golden JSON, (after login) overrides.

Everyone sees the run's effective certification flags (``alerts.certification.flags``) as
merged ranges of consecutive lumisections with the same decision (``flag_ranges``: good or
bad, the assessed level and reason, who decided, the expert's comment, when, in UTC) and the
run's CMS golden JSON in a ``<pre>`` block to copy.

A shifter (role, ``alerts.access``; see ``dashboard.auth``) may press *assess and certify*
(``alerts.run_status.assess_run`` + ``certification.record_assessment``, as ``hotline
certify RUN`` does); an expert may apply an override: lumisection ranges (``"25-32,35"``),
good or bad and a required comment; the override is stored by ``certification.override``
under the session's user name (never a name typed on the page), logged and recorded in the
audit log. Controls the session's role may not use are disabled, and every handler passes
the session's actor to the write function, which checks the role again and refuses, so
calling a handler directly changes nothing either. Bad input
(unparseable ranges, lumisections the run does not have, no comment) gives one line on the
page and stores nothing (``parse_override``).

The flags are re-read by ``refresh()`` (the session's periodic callback, at most once per
``min_interval`` seconds, and at once when the run on screen changes or after a change made
here); new table data are pushed only when something changed.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import panel as pn

from hotline.alerts.lumi_status import LumiFlag
from hotline.dashboard.state import DashboardState
from hotline.errors import ConfigError, HotlineError

__all__ = ["FLAG_COLUMNS", "REFUSED", "CertificationView", "flag_frame", "flag_ranges",
           "parse_override"]

log = logging.getLogger(__name__)

FLAG_COLUMNS = ["lumisections", "flag", "level", "reason", "decided_by", "comment", "when"]
REFUSED = ("**not allowed:** log in to certify lumisections (certifying needs the shifter "
           "role, overriding the expert role)")


def _utc(t: float) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _label(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def flag_ranges(flag_list: Sequence[LumiFlag]) -> list[dict[str, Any]]:
    """Consecutive lumisections with the same decision (good/bad, level, who, comment) as
    one range each, by lumisection: ``first``, ``last``, ``good``, ``level``, the distinct
    ``reasons`` in order, ``decided_by``, ``comment`` and ``at`` (the latest decision)."""
    out: list[dict[str, Any]] = []
    for f in sorted(flag_list, key=lambda f: (f.run, f.lumi)):
        key = (f.run, f.good, f.level, f.decided_by, f.comment)
        if out and out[-1]["_key"] == key and out[-1]["last"] == f.lumi - 1:
            g = out[-1]
            g["last"] = f.lumi
            g["at"] = max(g["at"], f.at)
            if f.reason not in g["reasons"]:
                g["reasons"].append(f.reason)
            continue
        out.append({"_key": key, "run": f.run, "first": f.lumi, "last": f.lumi,
                    "good": f.good, "level": f.level, "reasons": [f.reason],
                    "decided_by": f.decided_by, "comment": f.comment, "at": f.at})
    for g in out:
        del g["_key"]
    return out


def flag_frame(flag_list: Sequence[LumiFlag]) -> pd.DataFrame:
    """The flags table: one row per range of ``flag_ranges``, times in UTC."""
    rows = []
    for g in flag_ranges(flag_list):
        reasons = g["reasons"]
        reason = " | ".join(reasons[:2]) + (f" | +{len(reasons) - 2} more"
                                            if len(reasons) > 2 else "")
        rows.append({"lumisections": _label(g["first"], g["last"]),
                     "flag": "good" if g["good"] else "bad", "level": g["level"],
                     "reason": reason, "decided_by": g["decided_by"],
                     "comment": g["comment"], "when": _utc(g["at"])})
    return pd.DataFrame(rows, columns=FLAG_COLUMNS)


def parse_override(ranges: str, verdict: str, comment: str,
                   known: Collection[int]) -> tuple[list[int], bool, str]:
    """The override form's input as (lumisections, good, comment); ``ConfigError`` in one
    line naming the bad input: ranges that do not parse, lumisections not in ``known`` (the
    run's lumisections), a verdict other than good/bad, an empty comment."""
    from hotline.alerts.reference import parse_lumi_ranges

    text = (ranges or "").strip()
    if not text:
        raise ConfigError("give the lumisections to override, e.g. 25-32,35")
    lumis = sorted({ls for a, b in parse_lumi_ranges(text) for ls in range(a, b + 1)})
    unknown = [ls for ls in lumis if ls not in known]
    if unknown:
        from hotline.alerts.certification import merge_ranges

        shown = ", ".join(_label(a, b) for a, b in merge_ranges(unknown)[:5])
        have = merge_ranges(known)
        span = ", ".join(_label(a, b) for a, b in have[:5]) + (" ..." if len(have) > 5 else "")
        raise ConfigError(f"lumisections {text!r}: the run has no lumisection {shown} "
                          f"(it has {span or 'none'})")
    if verdict not in ("good", "bad"):
        raise ConfigError(f"flag {verdict!r}: choose good or bad")
    if not (comment or "").strip():
        raise ConfigError("an override needs a comment saying why")
    return lumis, verdict == "good", comment.strip()


class CertificationView(pn.viewable.Viewer):
    """Flags table and golden JSON of the run on screen; assess and override after login."""

    def __init__(self, state: DashboardState, min_interval: float = 1.0,
                 **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.store = state.feed.store
        self.min_interval = min_interval
        self.queries = 0  #: store reads done by refresh (for tests)
        self.run: int | None = None  #: the run whose flags are shown
        self.source: str | None = None
        self.flags: list[LumiFlag] = []
        self.golden_text = ""  #: the golden JSON shown ("" when not certified)
        self._last = -float("inf")
        self.title = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-cert-title"])
        self.table = pn.widgets.Tabulator(
            flag_frame([]), disabled=True, show_index=False, height=220,
            sizing_mode="stretch_width", layout="fit_data_stretch",
            titles={"decided_by": "decided by", "when": "when (UTC)"},
            css_classes=["hotline-cert-flags"])
        self.golden = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.msg = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-cert-message"])
        self.assess_w = pn.widgets.Button(label="Assess and certify", color="primary",
                                          width=160)
        self.ranges_w = pn.widgets.TextInput(label="lumisections", width=160,
                                             placeholder="e.g. 25-32,35")
        self.verdict_w = pn.widgets.RadioButtonGroup(label="flag", options=["bad", "good"],
                                                     value="bad", width=120)
        self.comment_w = pn.widgets.TextInput(label="comment (required)", width=360,
                                              placeholder="why: what you checked")
        self.apply_w = pn.widgets.Button(label="Apply override", color="warning", width=130)
        self.assess_w.on_click(self.assess)
        self.apply_w.on_click(self.apply_override)
        self.controls = [self.assess_w, self.ranges_w, self.verdict_w, self.comment_w,
                         self.apply_w]
        # flags live in the SQL alert store (``lumi_flags``)
        self.available = hasattr(self.store, "transaction") and hasattr(self.store, "ph")
        if not self.available:
            self.msg.object = ("*certification is not available with this alert store "
                               f"({type(self.store).__name__})*")
        if state.may("override_flags"):
            self.login = pn.pane.HTML(f"<span style='color:#666'>logged in as "
                                      f"<b>{html.escape(state.user)}</b>: overrides are "
                                      "stored under this name</span>")
        elif state.may("assess_run"):
            self.login = pn.pane.HTML(f"<span style='color:#666'>logged in as "
                                      f"<b>{html.escape(state.user)}</b> "
                                      f"({html.escape(state.role)}): overrides need the "
                                      "expert role</span>")
        else:
            self.login = pn.pane.HTML("<span style='color:#666'>certification is shown "
                                      "read-only: <a href='/login'>log in</a> to certify "
                                      "(shifters) or override (experts)</span>")
        self.assess_w.disabled = not (state.may("assess_run") and self.available)
        for w in self.controls[1:]:
            w.disabled = not (state.may("override_flags") and self.available)
        state.param.watch(self._on_run, "run")
        self.refresh(force=True)

    # ------------------------------------------------------------ reading

    def _on_run(self, *_: Any) -> None:
        self.refresh(force=True)

    def refresh(self, *_: Any, force: bool = False) -> bool:
        """Re-read the flags of the run on screen (at most once per ``min_interval``
        unless ``force``); True if re-read."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return False
        self._last = now
        run = self.state.run
        if not self.available:
            return False
        if run is None:
            self.run, self.source, self.flags = None, None, []
            self._show()
            return True
        from hotline.alerts.certification import flags
        from hotline.alerts.reference import run_source

        self.queries += 1
        source: str | None
        try:
            source = run_source(self.store, run, self.state.feed.source)
            got = flags(self.store, run, source)
        except HotlineError as exc:  # a store hiccup (or a run not stored yet) keeps the page
            log.debug("dashboard: cannot read the certification of run %s: %s", run, exc)
            source, got = self.state.feed.source, []
        self.run, self.source, self.flags = run, source, got
        self._show()
        return True

    def _show(self) -> None:
        from hotline.alerts.certification import golden_json

        frame = flag_frame(self.flags)
        if not frame.equals(self.table.value):
            self.table.value = frame
        if self.run is None:
            title = "*no run on screen yet*"
        elif not self.flags:
            title = (f"**run {self.run}** is not certified yet: *Assess and certify* "
                     "(logged in) stores a flag per lumisection")
        else:
            n_good = sum(f.good for f in self.flags)
            n_exp = sum(f.decided_by != "auto" for f in self.flags)
            title = (f"**run {self.run}:** {n_good} of {len(self.flags)} lumisections "
                     f"certified good; {n_exp} decided by an expert")
        if title != self.title.object:
            self.title.object = title
        text = json.dumps(golden_json(self.flags)) if self.flags else ""
        self.golden_text = text
        golden = ("<div style='font-size:11px;color:#666'>golden JSON (good lumisections)"
                  "</div><pre class='hotline-golden-json' style='user-select:all;"
                  "background:#f5f5f5;padding:6px;margin:2px 0;white-space:pre-wrap'>"
                  f"{html.escape(text)}</pre>") if text else ""
        if golden != self.golden.object:
            self.golden.object = golden

    def known_lumis(self) -> set[int]:
        """The lumisections of the run shown: those with data in the store or a flag."""
        if self.run is None:
            return set()
        sums = self.store.summaries(source=self.source, run=self.run)
        return {s.lumi for s in sums} | {f.lumi for f in self.flags}

    # ------------------------------------------------------------ changing (login required)

    def _allowed(self, action: str) -> bool:
        if not self.available:
            self.msg.object = "*certification is not available with this alert store*"
            return False
        if not self.state.may(action):
            self.msg.object = REFUSED
            log.warning("dashboard: user %r (%s) may not %s", self.state.user,
                        self.state.role, action)
            return False
        self.refresh(force=True)
        if self.run is None or self.source is None:
            self.msg.object = "**no run on screen to certify**"
            return False
        return True

    def assess(self, *_: Any) -> None:
        """Assess the run on screen and store the engine's flags (``hotline certify RUN``)."""
        if not self._allowed("assess_run"):
            return
        from hotline.alerts.certification import record_assessment
        from hotline.alerts.run_status import assess_run

        run, source = self.run, self.source
        assert run is not None and source is not None
        try:
            st = assess_run(self.store, run, source, model=self.state.ae_model or None)
            got = record_assessment(self.store, st, actor=self.state.actor())
        except HotlineError as exc:
            self.msg.object = f"**cannot assess run {run}:** {html.escape(str(exc), quote=False)}"
            return
        n_good = sum(f.good for f in got)
        log.info("dashboard: %s: assessed and certified run %d (%s): %d of %d LS good",
                 self.state.user, run, source, n_good, len(got))
        self.msg.object = (f"run {run} assessed: {st.level} - {html.escape(st.reason)}; "
                           f"{n_good} of "
                           f"{len(got)} lumisections certified good")
        self.refresh(force=True)

    def apply_override(self, *_: Any) -> None:
        """Store the form's override under the session's user name, with its comment."""
        if not self._allowed("override_flags"):
            return
        from hotline.alerts.certification import merge_ranges, override

        run, source = self.run, self.source
        assert run is not None and source is not None
        try:
            lumis, good, comment = parse_override(self.ranges_w.value or "",
                                                  str(self.verdict_w.value),
                                                  self.comment_w.value or "", self.known_lumis())
            override(self.store, source, run, lumis, good, comment, self.state.user,
                     actor=self.state.actor())
        except HotlineError as exc:
            self.msg.object = f"**override not stored:** {html.escape(str(exc), quote=False)}"
            return
        ranges = ",".join(_label(a, b) for a, b in merge_ranges(lumis))
        verdict = "good" if good else "bad"
        log.info("dashboard: %s: override run %d (%s) LS %s -> %s: %s", self.state.user, run,
                 source, ranges, verdict, comment)
        self.msg.object = (f"run {run} LS {ranges} certified {verdict} by "
                           f"{html.escape(self.state.user)}: {html.escape(comment)}")
        self.ranges_w.value = ""
        self.comment_w.value = ""
        self.refresh(force=True)

    # ------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.title,
            self.table,
            self.golden,
            pn.FlexBox(pn.Column(pn.Spacer(height=18), self.assess_w), self.ranges_w,
                       pn.Column(pn.Spacer(height=18), self.verdict_w), self.comment_w,
                       pn.Column(pn.Spacer(height=18), self.apply_w)),
            self.msg,
            self.login,
            sizing_mode="stretch_width",
        )
