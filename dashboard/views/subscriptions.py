"""Alert subscriptions on the dashboard: the table, the delivery log, and (after login) changes.

Everyone sees every subscription's safe fields
(``alerts.subscription_store.subscription_overview``: owner, filter summary, channel and
target, active/paused, messages sent / failed / pending, alerts queued, the last delivery
error) and the delivery log of the selected one (``alerts.outbox.delivery_log``). Secrets
are never shown: the table has no secret column, settings come redacted, and a newly
created webhook's signing secret is shown as ``whsec_…`` with the ``hotline subscribe
secret ID --out FILE`` command that exports it on the server (what ``hotline subscribe
add`` prints).

Only an expert (role, ``alerts.access``; see ``dashboard.auth``) may pause, resume, remove
or add subscriptions; for other roles the controls are disabled, and every handler passes
the session's actor to the write function (``alerts.subscription_store``), which checks
the role again, so calling a handler directly changes nothing either. Changes are logged
with the user name and recorded in the audit log. Below the expert role a webhook's
target shows only scheme and host (``redact_target``: for chat-style webhooks the path is
the secret), and every user-supplied string shown in a message is HTML-escaped.

The table is re-read from the store by ``refresh()``, which the session's periodic
callback calls; it queries at most once per ``min_interval`` seconds (1 s) and pushes
new table data only when something changed.
"""

from __future__ import annotations

import html
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import panel as pn

from hotline.dashboard.state import DashboardState
from hotline.errors import HotlineError

__all__ = ["LOG_COLUMNS", "REFUSED", "SUB_COLUMNS", "SubscriptionsView",
           "log_frame", "overview_frame", "redact_target"]

log = logging.getLogger(__name__)

SUB_COLUMNS = ["id", "owner", "name", "channel", "target", "filter", "status", "sent",
               "failed", "pending", "queued", "retried", "last_error"]
LOG_COLUMNS = ["created", "key", "kind", "alerts", "status", "attempts", "last_attempt",
               "last_error"]
REFUSED = "**not allowed:** changing subscriptions needs the expert role"


def _utc(t: float | None) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def redact_target(channel: str, target: str) -> str:
    """A subscription's target as a reader below the expert role sees it: a webhook's
    scheme and host only (the path of a chat-style webhook is its secret)."""
    if channel != "webhook" or not target:
        return target
    from urllib.parse import urlsplit

    u = urlsplit(target)
    return f"{u.scheme}://{u.hostname or ''}{f':{u.port}' if u.port else ''}/…"


def _esc(value: object) -> str:
    """``value`` as text safe inside a Markdown pane (no HTML)."""
    return html.escape(str(value), quote=False)


def _hide(text: str, target: str, channel: str, reveal: bool) -> str:
    """``text`` (an error message naming the target) without the target's path."""
    if reveal or not target or channel != "webhook":
        return text
    return text.replace(target, redact_target(channel, target))


def overview_frame(overview: list[dict[str, Any]], reveal: bool = True) -> pd.DataFrame:
    """``subscription_overview`` rows as the table's frame (safe fields only, no secret;
    webhook targets redacted unless ``reveal``)."""
    rows = []
    for d in overview:
        st = d.get("stats") or {}
        target = d.get("target", "")
        rows.append({
            "id": d["id"], "owner": d["owner"], "name": d["name"], "channel": d["channel"],
            "target": target if reveal else redact_target(d["channel"], target),
            "filter": d.get("filter_text", ""),
            "status": "paused" if d["paused"] else "active",
            "sent": int(st.get("sent", 0)), "failed": int(st.get("failed", 0)),
            "pending": int(st.get("pending", 0)), "queued": int(st.get("queued", 0)),
            "retried": int(st.get("retried", 0)),
            "last_error": _hide(d.get("last_error") or "", target, d["channel"], reveal),
        })
    return pd.DataFrame(rows, columns=SUB_COLUMNS)


def log_frame(deliveries: list[Any]) -> pd.DataFrame:
    """``delivery_log`` rows (``alerts.outbox.Delivery``) as the log table's frame."""
    rows = [{"created": _utc(d.created), "key": d.message_id, "kind": f"{d.kind}/{d.reason}",
             "alerts": int(d.n_alerts), "status": d.status, "attempts": int(d.attempts),
             "last_attempt": _utc(d.last_attempt), "last_error": d.last_error or ""}
            for d in deliveries]
    return pd.DataFrame(rows, columns=LOG_COLUMNS)


def _split(text: str) -> list[str]:
    return [x.strip() for x in (text or "").replace(";", ",").split(",") if x.strip()]


class SubscriptionsView(pn.viewable.Viewer):
    """Subscription table, delivery log of the selected one, controls and an add form."""

    def __init__(self, state: DashboardState, dashboard_url: str = "",
                 min_interval: float = 1.0, log_rows: int = 50, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.store = state.feed.store
        self.dashboard_url = dashboard_url
        self.min_interval = min_interval
        self.log_rows = log_rows
        self.selected_sub = ""
        self._targets: dict[str, tuple[str, str]] = {}
        self.queries = 0  #: store reads done by refresh (for tests)
        self._last = -float("inf")
        self.table = pn.widgets.Tabulator(
            overview_frame([]), selectable=1, disabled=True, show_index=False, height=200,
            sizing_mode="stretch_width", layout="fit_data_stretch",
            titles={"last_error": "last error"}, css_classes=["hotline-subscriptions"])
        self.log_title = pn.pane.Markdown("*select a subscription to see its delivery log*",
                                          margin=(0, 10))
        self.log_table = pn.widgets.Tabulator(
            log_frame([]), disabled=True, show_index=False, height=200,
            sizing_mode="stretch_width", layout="fit_data_stretch",
            titles={"key": "idempotency key", "last_attempt": "last attempt",
                    "last_error": "last error", "created": "created (UTC)"},
            css_classes=["hotline-delivery-log"])
        self.msg = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-subs-message"])
        # --- controls on the selected subscription
        self.pause_w = pn.widgets.Button(label="Pause", width=90)
        self.resume_w = pn.widgets.Button(label="Resume", color="primary", width=90)
        self.retry_w = pn.widgets.Checkbox(label="re-queue failed messages", value=False)
        self.confirm_w = pn.widgets.Checkbox(label="confirm remove", value=False)
        self.remove_w = pn.widgets.Button(label="Remove", color="danger", width=90)
        self.pause_w.on_click(self.pause)
        self.resume_w.on_click(self.resume)
        self.remove_w.on_click(self.remove)
        # --- the add form
        self.owner_w = pn.widgets.TextInput(label="owner", value=state.user, width=140)
        self.channel_w = pn.widgets.Select(label="channel", options=["webhook", "email"],
                                           width=100)
        self.target_w = pn.widgets.TextInput(label="URL or e-mail address", width=260,
                                             placeholder="https://... or someone@example.org")
        self.kinds_w = pn.widgets.MultiChoice(label="alert kinds", options=["classic", "ae",
                                                                            "dqm"],
                                              placeholder="all kinds", width=200)
        self.rules_w = pn.widgets.TextInput(label="rules (comma separated)", width=200,
                                            placeholder="all rules")
        from hotline.detectors.spec import DEFAULT_SPEC

        self.types_w = pn.widgets.MultiChoice(label="AE alerts pointing to",
                                              options=list(DEFAULT_SPEC.object_types),
                                              placeholder="any object type", width=200)
        self.max_p_w = pn.widgets.FloatInput(label="max p-value", value=None, width=110,
                                             placeholder="any")
        self.min_z_w = pn.widgets.FloatInput(label="min significance (Z)", value=None,
                                             width=130, placeholder="any")
        self.smtp_w = pn.widgets.TextInput(label="SMTP host:port (e-mail)",
                                           value="localhost:25", width=170)
        self.add_w = pn.widgets.Button(label="Add subscription", color="primary",
                                       width=140)
        self.add_w.on_click(self.add)
        # subscriptions need an SQL alert store with insert hooks (alerts.outbox)
        self.available = hasattr(self.store, "transaction") and hasattr(self.store,
                                                                        "on_new_alerts")
        if not self.available:
            self.msg.object = ("*subscriptions are not available with this alert store "
                               f"({type(self.store).__name__})*")
        self.controls = [self.pause_w, self.resume_w, self.retry_w, self.confirm_w,
                         self.remove_w, self.owner_w, self.channel_w, self.target_w,
                         self.kinds_w, self.rules_w, self.types_w, self.max_p_w, self.min_z_w,
                         self.smtp_w, self.add_w]
        if state.may("subscription_add"):
            self.login = pn.pane.HTML(f"<span style='color:#666'>logged in as "
                                      f"<b>{html.escape(state.user)}</b>: you may change "
                                      "subscriptions</span>")
        else:
            self.login = pn.pane.HTML("<span style='color:#666'>subscriptions are shown "
                                      "read-only: <a href='/login'>log in</a> as an expert "
                                      "to change subscriptions (you: "
                                      f"{html.escape(state.role)})</span>")
        self.table.param.watch(self._on_select, "selection")
        self.refresh(force=True)
        self._set_enabled()

    # ------------------------------------------------------------ reading

    def _set_enabled(self) -> None:
        ok = self.state.may("subscription_add") and self.available
        for w in self.controls:
            w.disabled = not ok

    def refresh(self, *_: Any, force: bool = False) -> bool:
        """Re-read the subscriptions (at most once per ``min_interval``); True if re-read."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return False
        self._last = now
        from hotline.alerts.subscription_store import subscription_overview

        if not self.available:
            return False
        self.queries += 1
        try:
            overview = subscription_overview(self.store)
            self._targets = {d["id"]: (d.get("target", ""), d["channel"]) for d in overview}
            frame = overview_frame(overview, reveal=self.state.may("subscription_add"))
        except HotlineError as exc:  # a store hiccup must not kill the page
            log.warning("dashboard: cannot read subscriptions: %s", exc)
            self.msg.object = f"*cannot read the subscriptions: {_esc(exc)}*"
            return True
        if not frame.equals(self.table.value):
            self.table.value = frame
        ids = list(frame["id"])
        if self.selected_sub and self.selected_sub not in ids:
            self.selected_sub = ""
        want = [ids.index(self.selected_sub)] if self.selected_sub else []
        if list(self.table.selection) != want:
            self.table.selection = want
        self._refresh_log()
        return True

    def _refresh_log(self) -> None:
        if not self.selected_sub:
            self.log_title.object = "*select a subscription to see its delivery log*"
            frame = log_frame([])
        else:
            from hotline.alerts.outbox import delivery_log

            try:
                frame = log_frame(delivery_log(self.store, self.selected_sub,
                                               limit=self.log_rows))
                target, channel = self._targets.get(self.selected_sub, ("", ""))
                reveal = self.state.may("subscription_add")
                frame["last_error"] = [_hide(e, target, channel, reveal)
                                       for e in frame["last_error"]]
            except HotlineError as exc:
                frame = log_frame([])
                self.msg.object = f"**cannot read the delivery log:** {_esc(exc)}"
            title = (f"**delivery log of {self.selected_sub}** (newest {self.log_rows} "
                     "messages first)")
            if self.log_title.object != title:
                self.log_title.object = title
        if not frame.equals(self.log_table.value):
            self.log_table.value = frame

    def _on_select(self, event: Any) -> None:
        sel = event.new
        value = self.table.value
        sub = str(value.iloc[sel[0]]["id"]) if sel and sel[0] < len(value) else ""
        if sub != self.selected_sub:
            self.selected_sub = sub
            self._refresh_log()

    def select(self, sub_id: str) -> None:
        """Select a subscription by id (as a click on its row does)."""
        ids = list(self.table.value["id"])
        self.table.selection = [ids.index(sub_id)] if sub_id in ids else []

    # ------------------------------------------------------------ changing (login required)

    def _allowed(self) -> bool:
        if not self.available:
            self.msg.object = "*subscriptions are not available with this alert store*"
            return False
        if not self.state.may("subscription_add"):
            self.msg.object = REFUSED
            log.warning("dashboard: user %r (%s) tried to change a subscription",
                        self.state.user, self.state.role)
            return False
        return True

    def _selected_or_note(self) -> str:
        if not self.selected_sub:
            self.msg.object = "**select a subscription in the table first**"
        return self.selected_sub

    def _change(self, what: str, fn: Any) -> None:
        if not self._allowed():
            return
        sub = self._selected_or_note()
        if not sub:
            return
        try:
            fn(sub)
        except HotlineError as exc:
            self.msg.object = f"**cannot {what} {sub}:** {_esc(exc)}"
            return
        log.info("dashboard: %s: %s subscription %s", self.state.user, what, sub)
        self.msg.object = {"pause": f"subscription {sub} paused; matching alerts keep "
                                    "queueing until resumed",
                           "resume": f"subscription {sub} resumed",
                           "remove": f"subscription {sub} removed"}[what]
        self.refresh(force=True)

    def pause(self, *_: Any) -> None:
        from hotline.alerts.subscription_store import pause_subscription

        self._change("pause", lambda s: pause_subscription(self.store, s,
                                                           actor=self.state.actor()))

    def resume(self, *_: Any) -> None:
        from hotline.alerts.subscription_store import resume_subscription

        retry = bool(self.retry_w.value)
        self._change("resume", lambda s: resume_subscription(
            self.store, s, retry_failed=retry, actor=self.state.actor()))

    def remove(self, *_: Any) -> None:
        from hotline.alerts.subscription_store import remove_subscription

        if not self._allowed() or not self._selected_or_note():
            return
        if not self.confirm_w.value:
            self.msg.object = "**tick 'confirm remove' first** (the delivery log goes too)"
            return
        self._change("remove", lambda s: remove_subscription(self.store, s,
                                                             actor=self.state.actor()))
        self.confirm_w.value = False

    def add(self, *_: Any) -> None:
        """Create a webhook or e-mail subscription from the form."""
        if not self._allowed():
            return
        from hotline.alerts.subscription_store import add_subscription

        channel = self.channel_w.value
        target = (self.target_w.value or "").strip()
        flt = {"kinds": list(self.kinds_w.value), "rules": _split(self.rules_w.value),
               "object_types": list(self.types_w.value),
               "max_p": self.max_p_w.value, "min_significance": self.min_z_w.value}
        try:
            if not target:
                raise HotlineError(f"give the {'URL' if channel == 'webhook' else 'address'}")
            if channel == "webhook":
                settings: dict[str, Any] = {"url": target}
            else:
                host, _, port = (self.smtp_w.value or "localhost").partition(":")
                try:
                    port_n = int(port or 25)
                except ValueError:
                    raise HotlineError(f"SMTP port {port!r} is not a number") from None
                settings = {"to": _split(target), "smtp_host": host or "localhost",
                            "smtp_port": port_n}
                if self.dashboard_url:
                    settings["dashboard_url"] = self.dashboard_url
            sub = add_subscription(self.store, owner=self.owner_w.value or self.state.user,
                                   channel=channel, settings=settings, filter=flt,
                                   actor=self.state.actor())
        except HotlineError as exc:
            self.msg.object = f"**cannot add the subscription:** {_esc(exc)}"
            return
        log.info("dashboard: %s: added subscription %s (%s -> %s)", self.state.user, sub.id,
                 sub.channel, sub.target())
        text = (f"subscription {sub.id} created for {html.escape(sub.owner)}: {sub.channel} "
                f"-> {html.escape(sub.target())} ({html.escape(sub.filter.describe())})")
        if channel == "webhook":
            text += (f"; signing secret {sub.public_dict()['secret']} - export it on the "
                     f"server with `hotline subscribe secret {sub.id} --out FILE`")
        self.msg.object = text
        self.target_w.value = ""
        self.selected_sub = sub.id
        self.refresh(force=True)

    # ------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.table,
            pn.FlexBox(self.pause_w, self.resume_w, self.retry_w, self.confirm_w, self.remove_w),
            pn.FlexBox(self.owner_w, self.channel_w, self.target_w, self.kinds_w, self.rules_w,
                       self.types_w, self.max_p_w, self.min_z_w, self.smtp_w,
                       pn.Column(pn.Spacer(height=18), self.add_w)),
            self.msg,
            self.login,
            self.log_title,
            self.log_table,
            sizing_mode="stretch_width",
        )
