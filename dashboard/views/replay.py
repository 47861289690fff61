"""Replay control: choose an archived run and a rate, start / stop an embedded replay.

Starting and stopping replays needs the admin role (``alerts.access``, see
``dashboard.auth``): the controls are enabled only for admins, every handler checks the
session's actor again, and each start or stop is recorded in the audit log
(``alerts.audit``); everyone else sees the progress read-only. The page is honest about the
replay: *Start* is disabled while a replay runs and *Stop* while none does, the rate shown
is the live input rate while it runs and the fixed average once it ended
(``ReplayController.describe``), and a re-replay of a run already in the store says why the
counts do not grow.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import panel as pn

from hotline.dashboard.state import DashboardState

log = logging.getLogger(__name__)

__all__ = ["ReplayControl"]


class ReplayControl(pn.viewable.Viewer):
    """Run selector, rate, start/stop buttons, progress bar."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.runs = self._runs()
        options = {f"run {r.run} ({r.card.get('description', '')[:40]})": r.run
                   for r in self.runs}
        self.run_w = pn.widgets.Select(label="archived run", options=options or {"none": None},
                                       width=260)
        self.rate_w = pn.widgets.IntInput(label="rate (events/s, 0 = max)", value=50_000,
                                          start=0, step=1000, width=160)
        self.start_w = pn.widgets.Button(label="Start replay", color="primary", width=120)
        self.stop_w = pn.widgets.Button(label="Stop", color="danger", width=80)
        self.progress = pn.indicators.Progress(value=0, max=1000, width=300, bar_color="info")
        self.text = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-replay-status"])
        self.start_w.on_click(self._start)
        self.stop_w.on_click(self._stop)
        self._set_enabled()
        ctl = state.replay is not None and state.may("replay_start")
        if state.replay is None:
            self.login = pn.pane.Markdown("*replay control is not available on this server*")
        elif not ctl:
            self.login = pn.pane.HTML("<span style='color:#666'>read-only view - "
                                      "<a href='/login'>log in</a> as an admin to start or "
                                      f"stop replays (you: {html.escape(state.role)})</span>")
        else:
            self.login = pn.pane.HTML(f"<span style='color:#666'>logged in as "
                                      f"<b>{html.escape(state.user)}</b> - "
                                      "<a href='/logout'>log out</a></span>")
        state.param.watch(self.refresh, "tick")
        self.refresh()

    def _set_enabled(self) -> None:
        rp = self.state.replay
        ctl = rp is not None and self.state.may("replay_start")
        running = rp is not None and rp.running
        for w, off in ((self.run_w, running), (self.rate_w, running),
                       (self.start_w, running), (self.stop_w, not running)):
            if w.disabled != (not ctl or off):
                w.disabled = not ctl or off

    def _runs(self) -> list:
        if not self.state.archive:
            return []
        try:
            from hotline.stream.archive import list_runs

            return list_runs(self.state.archive, scan=False)
        except Exception:  # noqa: BLE001 - an unreadable archive just means no choices
            return []

    def _authorised(self, action: str, target: str, after: Any) -> bool:
        """Role check and audit record of a start / stop (False, with a message, if refused)."""
        from hotline.alerts.access import AccessDenied, require
        from hotline.alerts.audit import record

        actor = self.state.actor()
        try:
            require(actor, action)
            if hasattr(self.state.feed.store, "transaction"):
                record(self.state.feed.store, actor, action, target, None, after)
        except AccessDenied as exc:
            log.warning("dashboard: %s", exc)
            self.text.object = f"**not allowed:** {html.escape(str(exc), quote=False)}"
            return False
        return True

    def _start(self, *_: Any) -> None:
        rp = self.state.replay
        if rp is None:
            self.text.object = "**replay control is not available on this server**"
            return
        if not self.state.may("replay_start"):
            self.text.object = ("**not allowed:** starting replays needs the admin role "
                                f"(you: {html.escape(self.state.role)})")
            log.warning("dashboard: user %r (%s) tried to start a replay", self.state.user,
                        self.state.role)
            return
        run = next((r for r in self.runs if r.run == self.run_w.value), None)
        if run is None:
            self.text.object = "**choose a run first**"
            return
        rate = float(self.rate_w.value) or None
        if not self._authorised("replay_start", f"run {run.run}",
                                {"run": run.run, "rate": rate}):
            return
        try:
            rp.start(run.files, run.run, rate=rate)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.text.object = f"**cannot start:** {html.escape(str(exc), quote=False)}"
            return
        self.start_w.disabled = True  # at once, before the next tick
        self.refresh()

    def _stop(self, *_: Any) -> None:
        if self.state.replay is not None and self._authorised("replay_stop", "replay", None):
            self.state.replay.request_stop()  # do not block the server thread on join
        self.refresh()

    def refresh(self, *_: Any) -> None:
        rp = self.state.replay
        if rp is None:
            self.text.object = ""
            return
        value = int(1000 * rp.progress)
        if value != self.progress.value:
            self.progress.value = value
        if self.progress.active != rp.running:
            self.progress.active = rp.running
        self._set_enabled()
        text = rp.describe()
        if text != self.text.object:
            self.text.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.FlexBox(self.run_w, self.rate_w, pn.Column(pn.Spacer(height=18),
                                                          pn.Row(self.start_w, self.stop_w))),
            pn.FlexBox(self.progress, self.text),
            self.login,
            sizing_mode="stretch_width",
        )
