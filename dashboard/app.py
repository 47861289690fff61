"""The dashboard pages: the per-session page factory and ``serve``.

``create_page(hub)`` is called once per browser session: it builds that session's
``DashboardState`` (``hub.Hub.new_state``), the views over it (the crew page: status,
lumisection strip, rates, score distribution, timeline, alert map, alerts and why, event
display, DQM maps, replay, acknowledgements, certification, subscriptions; cards side by
side while they fit and stacked on narrow windows, so 1280 px wide windows never scroll
sideways; or, for ``?wall=1``, the wall display ``views.wall``), and a periodic callback
(``[dashboard] update_ms``, 1 s by default) that pulls the feed and lets every view push
its increments inside one ``hold()``. The first stage (status, strip, rate plots and the
alert table's first page) goes out with the page; the detail views follow in stages, the
"why" card first, ``STAGE_GAP_MS`` apart. ``serve(cfg)`` runs the
Bokeh/Tornado server over one ``hub.build_hub(cfg)`` and warms it up in the background
(``warm_up``: one throwaway page) so the first browser after a start is served as fast as
the next; nothing is loaded at import time (Panel is imported inside).
The glance stage also holds the L1 emulation agreement per lumisection
(``views.l1_agreement``).
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import Any

from hotline.alerts.store import AlertStore
from hotline.dashboard.auth import GUEST, cookie_issued_at, origins, session_role, sign_in_mode
from hotline.dashboard.hub import Hub, build_hub

__all__ = ["TITLE", "alert_from_args", "create_page", "serve", "wall_from_args", "warm_up"]

log = logging.getLogger(__name__)

TITLE = "Hotline - shift crew"


def alert_from_args(args: dict[str, Any]) -> str:
    """The alert id of a ``?alert=<id>`` page URL (e-mails link there); "" if absent."""
    return _arg(args, "alert")


def _arg(args: dict[str, Any], name: str) -> str:
    vals = args.get(name) or []
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


def wall_from_args(args: dict[str, Any]) -> float | None:
    """The wall display's cycle in seconds for a ``?wall=1[&cycle=S]`` URL; None otherwise."""
    from hotline.dashboard.views.wall import CYCLE_S

    if _arg(args, "wall") not in ("1", "true", "yes", "on"):
        return None
    try:
        return max(float(_arg(args, "cycle") or CYCLE_S), 2.0)
    except ValueError:
        return CYCLE_S


def _card(title: str, *objs: Any, flex: str = "", **kw: Any) -> Any:
    import panel as pn

    styles = {"flex": flex, "min-width": "0"} if flex else {}
    return pn.Card(*objs, title=title, collapsible=False, sizing_mode="stretch_width",
                   header_background="#eceff1", margin=(4, 4), styles=styles, **kw)


def _row(*cards: Any) -> Any:
    """Cards side by side while they fit, stacked when the window is narrow (no
    horizontal scroll at 1280 px)."""
    import panel as pn

    return pn.FlexBox(*cards, flex_wrap="wrap", sizing_mode="stretch_width",
                      align_items="flex-start")


def create_page(hub: Hub, user: str | None = None, alert: str | None = None,
                groups: list[str] | None = None, signed_in_at: float | None = None,
                wall: float | None = None) -> Any:
    """One session's page (call inside a Bokeh session, or without one for tests).

    ``user`` / ``groups`` (default: the session's sign-in, ``session_identity``) give the
    session's role (``dashboard.auth.session_role``); the sign-in ends ``session_hours``
    after ``signed_in_at`` (default: now). ``alert`` (default: the ``?alert=<id>`` URL
    query) is selected once the views exist; ``wall`` (default: ``?wall=1&cycle=S``) gives
    the wall display cycling every ``wall`` seconds instead of the crew page.
    """
    import panel as pn
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import MISSING_RENDERERS

    from hotline.dashboard.views.acknowledge import LumiAck
    from hotline.dashboard.views.alert_map import AlertMap
    from hotline.dashboard.views.alerts import AlertTable
    from hotline.dashboard.views.audit import AuditView
    from hotline.dashboard.views.certification import CertificationView
    from hotline.dashboard.views.contributions import Contributions
    from hotline.dashboard.views.event_display import EventDisplay
    from hotline.dashboard.views.histogram import ScoreHistogram
    from hotline.dashboard.views.l1_agreement import L1AgreementView
    from hotline.dashboard.views.ls_histograms import LumiHistogramView
    from hotline.dashboard.views.occupancy import OccupancyView
    from hotline.dashboard.views.overview import RunOverview
    from hotline.dashboard.views.replay import ReplayControl
    from hotline.dashboard.views.status_strip import StatusStrip
    from hotline.dashboard.views.subscriptions import SubscriptionsView
    from hotline.dashboard.views.timeline import StateTimeline

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
    args = pn.state.session_args or {}
    if alert is None:
        alert = alert_from_args(args)
    if wall is None:
        wall = wall_from_args(args)
    in_session = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
    period = hub.cfg.dashboard.update_ms if hub.cfg is not None else 1000
    if wall is not None:
        return _wall_page(state, wall, in_session, max(int(period), 1000))
    dashboard_url = (f"http://{hub.cfg.dashboard.host}:{hub.cfg.dashboard.port}/"
                     if hub.cfg is not None else "")
    min_agreement = hub.cfg.firmware.min_agreement if hub.cfg is not None else 0.999
    overview = RunOverview(state)
    strip = StatusStrip(state)
    table = AlertTable(state)  # one page of rows: cheap enough for the first message
    views: dict[str, Any] = {"overview": overview, "strip": strip, "alerts": table}

    def stage_why() -> list[Any]:
        views.update(histogram=ScoreHistogram(state), contributions=Contributions(state))
        hist_slot.objects = [views["histogram"]]
        why_slot.objects = [views["contributions"]]
        return []

    def stage_glance() -> list[Any]:
        views.update(timeline=StateTimeline(state), alert_map=AlertMap(state),
                     l1_agreement=L1AgreementView(state, min_agreement=min_agreement))
        return [_row(_card("Significance per quantity and lumisection", views["timeline"],
                           flex="2 1 600px"),
                     _card("Alert objects in eta-phi (selected lumisections)",
                           views["alert_map"], flex="1 1 420px")),
                _card("L1 emulation agreement per lumisection", views["l1_agreement"])]

    def stage_drilldown() -> list[Any]:
        views.update(event_display=EventDisplay(state), occupancy=OccupancyView(state))
        return [_row(_card("Event display", views["event_display"], flex="1 1 560px"),
                     _card("Occupancy maps (DQM)", views["occupancy"], flex="1 1 560px"))]

    def stage_crew() -> list[Any]:
        views.update(replay=ReplayControl(state), lumi_ack=LumiAck(state),
                     certification=CertificationView(state),
                     ls_histograms=LumiHistogramView(state),
                     subscriptions=SubscriptionsView(state, dashboard_url=dashboard_url),
                     audit=AuditView(state))
        return [_row(_card("Replay control", views["replay"], flex="1 1 560px"),
                     _card("Acknowledge lumisection flags", views["lumi_ack"],
                           flex="1 1 420px")),
                _card("Lumisection certification", views["certification"]),
                _card("Lumisection histograms vs reference", views["ls_histograms"]),
                _card("Alert subscriptions and delivery log", views["subscriptions"]),
                _card("Audit log (who changed what)", views["audit"])]

    #: after the status, rate plots and the alert table's first page, the detail views go
    #: out in this order, one message each, so what a shifter reads first is on screen
    #: before the rest is even built
    stages = [stage_why, stage_glance, stage_drilldown, stage_crew]

    hist_slot = pn.Column(pn.indicators.LoadingSpinner(value=True, size=30),
                          sizing_mode="stretch_width")
    why_slot = pn.Column(pn.indicators.LoadingSpinner(value=True, size=30),
                         sizing_mode="stretch_width")
    details = pn.Column(sizing_mode="stretch_width")
    top = _row(
        _card("Classic rule rates", pn.pane.Bokeh(overview.fig_rules,
                                                  sizing_mode="stretch_width"),
              pn.pane.Bokeh(overview.fig_input, sizing_mode="stretch_width"),
              flex="1 1 380px"),
        _card("Anomaly rate per threshold", pn.pane.Bokeh(overview.fig_ae,
                                                          sizing_mode="stretch_width"),
              overview.ae_note, flex="1 1 380px"),
        _card("Score distribution", hist_slot, flex="1 1 380px"))
    who = (f"user: {html.escape(user)} ({role}) - <a style='color:#cfd8dc' "
           "href='/logout'>log out</a>" if user != GUEST else
           "guest (read-only)" + (" - <a style='color:#cfd8dc' href='/login'>log in</a>"
                                  if mode != "none" else ""))
    page = pn.Column(
        pn.pane.HTML(
            f"<div style='background:#263238;color:white;padding:8px 14px;font-size:20px;"
            f"font-weight:600'>{TITLE}"
            f"<span class='hotline-user' style='float:right;font-size:13px;font-weight:400'>"
            f"<a href='?wall=1' style='color:#b0bec5;margin-right:14px'>wall display</a>"
            f"{who}</span></div>",
            sizing_mode="stretch_width", margin=0),
        overview.header, _card("Lumisection status (click to filter)", strip),
        top, _row(_card("Alerts (newest first)", table, flex="3 1 640px"),
                  _card("Why did it fire?", why_slot, flex="2 1 420px")),
        details, sizing_mode="stretch_width", margin=0,
        stylesheets=[PAGE_CSS],
    )
    page.hotline_state = state  # for tests and the benchmark
    page.hotline_views = views

    def finish() -> None:
        if alert:
            state.select(alert)

    if not in_session:
        details.objects = [row for stage in stages for row in stage()]
        finish()
        return page
    def fill(i: int = 0) -> None:
        with pn.io.hold():
            details.objects = [*details.objects, *stages[i]()]
            if state.selected_id:  # a row clicked before this stage's views existed
                state.param.trigger("selected_id")
        if i + 1 < len(stages):
            # a pause between stages: the browser draws the alert table before the next
            # stage's models reach it (it handles the messages one after the other)
            pn.state.add_periodic_callback(lambda: fill(i + 1), period=STAGE_GAP_MS, count=1)
        else:
            finish()

    pn.state.onload(fill)

    def tick() -> None:
        with pn.io.hold():
            state.update()
            if "replay" in views and state.replay is not None:
                views["replay"].refresh()
            if "subscriptions" in views:
                views["subscriptions"].refresh()  # re-reads the store at most once per second
            if "certification" in views:
                views["certification"].refresh()  # idem
            if "ls_histograms" in views:
                views["ls_histograms"].refresh()  # when a lumisection arrived
            if "audit" in views:
                views["audit"].refresh()  # re-reads the store at most once per second

    pn.state.add_periodic_callback(tick, period=max(int(period), 1000))
    return page


#: milliseconds between the deferred stages of a page (see ``create_page``)
STAGE_GAP_MS = 400

#: page-wide CSS: never wider than the window
PAGE_CSS = ":host { max-width: 100vw; overflow-x: hidden; }"


def _wall_page(state: Any, cycle: float, in_session: bool, period: int) -> Any:
    import panel as pn

    from hotline.dashboard.views.wall import WallDisplay

    wall = WallDisplay(state, cycle=cycle)
    page = pn.Column(wall, sizing_mode="stretch_width", margin=0)
    page.hotline_state = state
    page.hotline_views = {"wall": wall}
    if in_session:
        def tick() -> None:
            with pn.io.hold():
                state.update()

        pn.state.add_periodic_callback(tick, period=period)
        pn.state.add_periodic_callback(wall.advance, period=int(cycle * 1000))
    return page


def serve(cfg: Any, *, store: AlertStore | None = None, hub: Hub | None = None,
          port: int | None = None, host: str | None = None, threaded: bool = False,
          show: bool = False, warm: bool = True, **extra: Any) -> Any:
    """Serve the dashboard; returns the server (a thread with ``threaded=True``).
    ``warm``: build a throwaway page in the background at once (``warm_up``)."""
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
    if warm:
        threading.Thread(target=warm_up, args=(hub,), name="hotline-dashboard-warm-up",
                         daemon=True).start()
    log.info("serving the dashboard on http://%s:%s", host, port)
    return pn.serve({"/": lambda: create_page(hub)}, **kwargs)


def warm_up(hub: Hub) -> float:
    """Build one throwaway page and its Bokeh models (imports, the shared run status, the
    alert map, the class-level caches of Bokeh and Panel) so the first browser after a
    server start does not pay for them; seconds taken. Never raises."""
    t0 = time.perf_counter()
    try:
        from bokeh.document import Document

        page = create_page(hub, user="guest")
        page.get_root(Document())
    except Exception as exc:  # noqa: BLE001 - only speed depends on it
        log.debug("dashboard warm-up failed: %s", exc)
    took = time.perf_counter() - t0
    log.info("dashboard warmed up in %.1f s", took)
    return took
