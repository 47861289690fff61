"""The dashboard pages: the per-session page factory and ``serve``.

``create_page(hub)`` is called once per browser session: it builds that session's
``DashboardState`` (``hub.Hub.new_state``), the views over it, and a periodic callback
(``[dashboard] update_ms``, 1 s by default) that pulls the feed and lets every view push
its increments inside one ``hold()``. ``serve(cfg)`` runs the Bokeh/Tornado server over
one ``hub.build_hub(cfg)``; nothing is loaded at import time (Panel is imported inside).
"""

from __future__ import annotations

import html
import logging
import time
from typing import Any

from hotline.alerts.store import AlertStore
from hotline.dashboard.auth import GUEST, cookie_issued_at, origins, session_role, sign_in_mode
from hotline.dashboard.hub import Hub, build_hub

__all__ = ["TITLE", "alert_from_args", "create_page", "serve"]

log = logging.getLogger(__name__)

TITLE = "Hotline - shift crew"


def alert_from_args(args: dict[str, Any]) -> str:
    """The alert id of a ``?alert=<id>`` page URL (e-mails link there); "" if absent."""
    vals = args.get("alert") or []
    val = vals[0] if vals else b""
    return (val.decode(errors="replace") if isinstance(val, bytes) else str(val)).strip()


def session_identity(hub: Hub) -> tuple[str, list[str], float | None]:
    """(user, groups, sign-in time) of the current Bokeh session (``pn.state``)."""
    import panel as pn

    user = pn.state.user or GUEST
    groups: list[str] = []
    claim = hub.cfg.dashboard.oidc_groups_claim if hub.cfg is not None else "groups"
    if user != GUEST:
        info = pn.state.user_info or {}
        raw = info.get(claim) or []
        groups = [raw] if isinstance(raw, str) else [str(g) for g in raw]
    issued = cookie_issued_at(pn.state.cookies.get("user")) if user != GUEST else None
    return user, groups, issued


def create_page(hub: Hub, user: str | None = None, alert: str | None = None,
                groups: list[str] | None = None, signed_in_at: float | None = None) -> Any:
    """One session's page (call inside a Bokeh session, or without one for tests).

    ``user`` / ``groups`` (default: the session's sign-in, ``session_identity``) give the
    session's role (``dashboard.auth.session_role``); the sign-in ends ``session_hours``
    after ``signed_in_at`` (default: now). ``alert`` (default: the ``?alert=<id>`` URL
    query) is selected once the views exist.
    """
    import panel as pn
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import MISSING_RENDERERS

    from hotline.dashboard.views.alerts import AlertTable
    from hotline.dashboard.views.audit import AuditView
    from hotline.dashboard.views.certification import CertificationView
    from hotline.dashboard.views.contributions import Contributions
    from hotline.dashboard.views.event_display import EventDisplay
    from hotline.dashboard.views.histogram import ScoreHistogram
    from hotline.dashboard.views.occupancy import OccupancyView
    from hotline.dashboard.views.overview import RunOverview
    from hotline.dashboard.views.replay import ReplayControl
    from hotline.dashboard.views.subscriptions import SubscriptionsView

    silence(MISSING_RENDERERS, True)  # rule / AE figures get their lines when data arrive
    if user is None:
        user, groups, signed_in_at = session_identity(hub)
    mode = sign_in_mode(hub.cfg.dashboard) if hub.cfg is not None else "none"
    role, why = session_role(hub.feed.store, user, groups or [], mode)
    expires = None
    if user != GUEST and hub.cfg is not None:
        start = signed_in_at if signed_in_at is not None else time.time()
        expires = start + float(hub.cfg.dashboard.session_hours) * 3600.0
    log.info("dashboard session: user %r, role %s (%s)", user, role, why)
    state = hub.new_state(user=user, role=role, can_control=role != GUEST,
                          session_expires=expires)
    state.update(force=True)
    if alert is None:
        alert = alert_from_args(pn.state.session_args or {})
    dashboard_url = (f"http://{hub.cfg.dashboard.host}:{hub.cfg.dashboard.port}/"
                     if hub.cfg is not None else "")
    overview = RunOverview(state)
    views: dict[str, Any] = {"overview": overview}

    def card(title: str, *objs: Any, **kw: Any) -> Any:
        return pn.Card(*objs, title=title, collapsible=False, sizing_mode="stretch_width",
                       header_background="#eceff1", margin=(4, 4), **kw)

    def build_details() -> list[Any]:
        """Score histogram, alert table, drill-down, replay, occupancy, certification,
        subscriptions (second stage)."""
        views.update(histogram=ScoreHistogram(state), alerts=AlertTable(state),
                     contributions=Contributions(state), event_display=EventDisplay(state),
                     occupancy=OccupancyView(state), replay=ReplayControl(state),
                     certification=CertificationView(state),
                     subscriptions=SubscriptionsView(state, dashboard_url=dashboard_url),
                     audit=AuditView(state))
        return [
            pn.Row(card("Alerts (newest first)", views["alerts"]),
                   card("Why did it fire? Loss contributions", views["contributions"]),
                   sizing_mode="stretch_width"),
            pn.Row(card("Event display", views["event_display"]),
                   pn.Column(card("Replay control", views["replay"]),
                             card("Occupancy maps (DQM)", views["occupancy"]),
                             sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            card("Lumisection certification", views["certification"]),
            card("Alert subscriptions and delivery log", views["subscriptions"]),
            card("Audit log (who changed what)", views["audit"]),
        ]

    hist_slot = pn.Column(pn.indicators.LoadingSpinner(value=True, size=30),
                          sizing_mode="stretch_width")
    details = pn.Column(sizing_mode="stretch_width")
    top = pn.Row(
        card("Classic rule rates", pn.pane.Bokeh(overview.fig_rules, sizing_mode="stretch_width"),
             pn.pane.Bokeh(overview.fig_input, sizing_mode="stretch_width")),
        card("Anomaly rate per threshold", pn.pane.Bokeh(overview.fig_ae,
                                                         sizing_mode="stretch_width"),
             overview.ae_note),
        card("Score distribution", hist_slot), sizing_mode="stretch_width")
    who = (f"user: {html.escape(user)} ({role}) - <a style='color:#cfd8dc' "
           "href='/logout'>log out</a>" if user != GUEST else
           "guest (read-only)" + (" - <a style='color:#cfd8dc' href='/login'>log in</a>"
                                  if mode != "none" else ""))
    page = pn.Column(
        pn.pane.HTML(
            f"<div style='background:#263238;color:white;padding:8px 14px;font-size:20px;"
            f"font-weight:600'>{TITLE}"
            f"<span class='hotline-user' style='float:right;font-size:13px;font-weight:400'>"
            f"{who}</span></div>",
            sizing_mode="stretch_width", margin=0),
        overview.header, top, details, sizing_mode="stretch_width", margin=0,
    )
    page.hotline_state = state  # for tests and the benchmark
    page.hotline_views = views

    def fill() -> None:
        # the status and rate plots go out first; the heavier detail views follow
        rows = build_details()
        hist_slot.objects = [views["histogram"]]
        details.objects = rows
        if alert:
            state.select(alert)

    in_session = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
    if not in_session:
        fill()
        return page
    pn.state.onload(fill)
    period = hub.cfg.dashboard.update_ms if hub.cfg is not None else 1000

    def tick() -> None:
        with pn.io.hold():
            state.update()
            if "replay" in views and state.replay is not None:
                views["replay"].refresh()
            if "subscriptions" in views:
                views["subscriptions"].refresh()  # re-reads the store at most once per second
            if "certification" in views:
                views["certification"].refresh()  # idem
            if "audit" in views:
                views["audit"].refresh()  # idem

    pn.state.add_periodic_callback(tick, period=max(int(period), 1000))
    return page


def serve(cfg: Any, *, store: AlertStore | None = None, hub: Hub | None = None,
          port: int | None = None, host: str | None = None, threaded: bool = False,
          show: bool = False, **extra: Any) -> Any:
    """Serve the dashboard; returns the server (a thread with ``threaded=True``)."""
    import panel as pn

    hub = hub or build_hub(cfg, store=store)
    host = host or cfg.dashboard.host
    port = cfg.dashboard.port if port is None else port
    allowed = origins(cfg.dashboard.allowed_origins)
    for h in {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {host}:
        if port and f"{h}:{port}" not in allowed:
            allowed.append(f"{h}:{port}")
    from hotline.dashboard.login import server_kwargs

    kwargs: dict[str, Any] = dict(
        port=port, address=host, websocket_origin=allowed, show=show, threaded=threaded,
        title=TITLE, **server_kwargs(cfg.dashboard, port),
        liveness=True,  # GET /liveness: the server's loop answers (`hotline health dashboard`)
    )
    kwargs.update(extra)
    log.info("serving the dashboard on http://%s:%s", host, port)
    return pn.serve({"/": lambda: create_page(hub)}, **kwargs)
