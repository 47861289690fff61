"""Crew acknowledgements on the page: of the selected alert, and of the selected
lumisections' flags, each with a required comment.

``AlertAck`` sits in the "why" card, ``LumiAck`` under the status strip. Both write through
the session's state (``DashboardState.acknowledge_alert`` / ``acknowledge_lumis``, which
check the session's role and call the store API ``alerts.acknowledgements`` as the
session's actor: role checked again, one audit record) under the session's user name,
never a name typed on the page, and show one line saying what was stored or why not, plus
who already acknowledged what. Below the shifter role (guests, expired sessions) the
controls are disabled and the handlers refuse again on the server.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import panel as pn

from hotline.dashboard.state import DashboardState

__all__ = ["AlertAck", "LumiAck"]


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class _Ack(pn.viewable.Viewer):
    label = "Acknowledge"
    placeholder = "what you checked (required)"
    action = "ack_alert"  #: the write action (``alerts.access``)

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        ok = state.may(self.action)
        self.comment_w = pn.widgets.TextInput(placeholder=self.placeholder, width=260,
                                              disabled=not ok)
        self.button = pn.widgets.Button(label=self.label, color="success", width=170,
                                        disabled=not ok)
        self.button.on_click(self._click)
        self.msg = pn.pane.Markdown("" if ok else
                                    "*log in as a shifter to acknowledge*", margin=(0, 8),
                                    css_classes=["hotline-ack-message"])
        self.history = pn.pane.HTML("", margin=(0, 8), css_classes=["hotline-ack-history"])

    def _write(self, comment: str) -> str:
        raise NotImplementedError

    def _click(self, *_: Any) -> None:
        self.msg.object = self._write(self.comment_w.value or self.comment_w.value_input or "")
        if not self.msg.object.startswith("**"):
            self.comment_w.value = ""
        self.show_history()

    def show_history(self, *_: Any) -> None:
        raise NotImplementedError

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.FlexBox(self.comment_w, self.button, align_items="center"),
                         self.msg, self.history, sizing_mode="stretch_width")


class AlertAck(_Ack):
    """Acknowledge the selected alert."""

    label = "Acknowledge alert"

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(state, **params)
        state.param.watch(self.show_history, "selected_id")

    def _write(self, comment: str) -> str:
        return self.state.acknowledge_alert(comment)

    def show_history(self, *_: Any) -> None:
        a = self.state.selected
        if a is None:
            self.history.object = ""
            return
        mine = [x for x in self.state.acknowledgements() if x.alert_id == a.id]
        self.history.object = "".join(
            f"<div style='font-size:12px;color:#1b5e20'>acknowledged by "
            f"<b>{html.escape(x.acked_by)}</b> {_utc(x.at)}: {html.escape(x.comment)}</div>"
            for x in mine[-3:])


class LumiAck(_Ack):
    """Acknowledge the flags of the selected lumisections."""

    label = "Acknowledge LS flags"
    action = "ack_flag"
    placeholder = "comment on the selected lumisections (required)"

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(state, **params)
        state.param.watch(self.show_history, ["run", "selection_version"])
        self.show_history()

    def _write(self, comment: str) -> str:
        return self.state.acknowledge_lumis(comment)

    def show_history(self, *_: Any) -> None:
        s = self.state
        acks = [x for x in s.acknowledgements() if not x.alert_id]
        if s.ls_first is not None and s.ls_last is not None:
            lo, hi = s.ls_first, s.ls_last
            acks = [x for x in acks if x.first_lumi <= hi and x.last_lumi >= lo]
        self.history.object = "".join(
            f"<div style='font-size:12px;color:#1b5e20'>{html.escape(x.lumis)} acknowledged "
            f"by <b>{html.escape(x.acked_by)}</b> {_utc(x.at)}: {html.escape(x.comment)} "
            f"<span style='color:#666'>({html.escape(x.what)})</span></div>"
            for x in acks[-3:])
