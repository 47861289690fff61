"""The dashboard pages: the per-session page factory and ``serve``.

``create_page(hub)`` is called once per browser session: it builds that session's
``DashboardState`` (``hub.Hub.new_state``), the views over it (the crew page: status,
lumisection strip, rates, score distribution, timeline, alert map, alerts and why, event
display, DQM maps, replay, acknowledgements, certification, subscriptions; cards side by
side while they fit and stacked on narrow windows, so 1280 px wide windows never scroll
sideways; or, for ``?wall=1``, the wall display ``views.wall``), and, once a browser has
loaded the page, a periodic callback (``[dashboard] update_ms``, 1 s by default) that pulls
the feed and lets every view push its increments inside one ``hold()``. The first stage
(header, status, strip and rate plots: ``build_first_stage``) goes out with the page; the
alert table's first page and then the detail views follow in stages, the "why" card
first, ``STAGE_GAP_MS`` apart. ``serve(cfg)`` runs the Bokeh/Tornado server over one
``hub.build_hub(cfg)``, answers a navigation's HTTP request at once and builds its session
while the browser loads the scripts (``session_reuse``), keeps the next navigation's first
stage built ahead (``spare.Spare``) and warms up in the background (``warm_up``: the
primer session, one throwaway page) so the first browser after a start is served as fast
as the next; nothing is loaded at import time (Panel is imported inside).
The glance stage also holds the L1 emulation agreement per lumisection
(``views.l1_agreement``).
"""

from __future__ import annotations

import html
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from hotline.alerts.store import AlertStore
from hotline.dashboard import session_reuse
from hotline.dashboard.auth import GUEST, cookie_issued_at, origins, session_role, sign_in_mode
from hotline.dashboard.hub import Hub, build_hub
from hotline.dashboard.spare import Spare

__all__ = ["TITLE", "FirstStage", "alert_from_args", "build_first_stage", "create_page", "serve",
           "wall_from_args", "warm_up"]

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
                wall: float | None = None, spare: Spare[FirstStage] | None = None) -> Any:
    """One session's page (call inside a Bokeh session, or without one for tests).

    ``user`` / ``groups`` (default: the session's sign-in, ``session_identity``) give the
    session's role (``dashboard.auth.session_role``); the sign-in ends ``session_hours``
    after ``signed_in_at`` (default: now). ``alert`` (default: the ``?alert=<id>`` URL
    query) is selected once the views exist; ``wall`` (default: ``?wall=1&cycle=S``) gives
    the wall display cycling every ``wall`` seconds instead of the crew page. ``spare``:
    where a first stage built ahead (``build_first_stage``) is taken from, in a session.
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
    from hotline.dashboard.views.replay import ReplayControl
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
    identity = dict(user=user, role=role, can_control=role != GUEST, session_expires=expires)
    args = pn.state.session_args or {}
    if alert is None:
        alert = alert_from_args(args)
    if wall is None:
        wall = wall_from_args(args)
    in_session = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
    if in_session:
        session_reuse.prepare_document(pn.state.curdoc)
    period = hub.cfg.dashboard.update_ms if hub.cfg is not None else 1000
    if wall is not None:
        state = hub.new_state(**identity)
        state.update(force=True)
        return _wall_page(state, wall, in_session, max(int(period), 1000))
    dashboard_url = (f"http://{hub.cfg.dashboard.host}:{hub.cfg.dashboard.port}/"
                     if hub.cfg is not None else "")
    min_agreement = hub.cfg.firmware.min_agreement if hub.cfg is not None else 0.999
    first = spare.take() if spare is not None and in_session else None
    if first is None:
        first = build_first_stage(hub)
    else:
        first.state.update()  # what arrived since it was built
    state, views, page = first.state, first.views, first.page
    state.param.update(**identity)
    first.header.object = _header_html(user, role, mode)
    table_slot, hist_slot, why_slot = first.table_slot, first.hist_slot, first.why_slot
    details = first.details

    def stage_table() -> list[Any]:
        # one page of rows, but Tabulator measures every cell when it draws: in the first
        # message it held back the status and plots by a third of a second
        views["alerts"] = AlertTable(state)
        table_slot.objects = [views["alerts"]]
        return []

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

    #: after the status, strip and rate plots, the alert table's first page and then the
    #: detail views go out in this order, one message each, so what a shifter reads first
    #: is on screen before the rest is even built
    stages = [stage_table, stage_why, stage_glance, stage_drilldown, stage_crew]


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

    def loaded() -> None:
        # a session's updates start once a browser has loaded its page: the primer session
        # (``session_reuse``), which no browser loads, stays as built
        pn.state.add_periodic_callback(tick, period=max(int(period), 1000))
        fill()

    pn.state.onload(loaded)

    def tick() -> None:
        if session_reuse.browsers(pn.state.curdoc) == 0:
            return  # nobody sees it (session_reuse.browsers)
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

    return page


@dataclass
class FirstStage:
    """What a crew page's first message holds (``build_first_stage``): the session's
    state, the header, run overview, status strip and rate plots, and the empty slots and
    rows the later stages fill."""

    state: Any  #: the session's ``DashboardState``
    page: Any  #: the page's root ``pn.Column``
    views: dict[str, Any]  #: ``overview`` and ``strip`` (the stages add theirs)
    header: Any  #: the title bar (``pn.pane.HTML``: who is signed in, set per session)
    table_slot: Any
    hist_slot: Any
    why_slot: Any
    details: Any  #: the column the later stages' rows are appended to


def build_first_stage(hub: Hub) -> FirstStage:
    """A crew page's first stage for nobody in particular (a guest's state, its data up to
    date now, an empty title bar): no Panel session needed, so it can be built ahead in
    another thread (``spare.Spare``); ``create_page`` gives it its session's identity."""
    import panel as pn
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import MISSING_RENDERERS

    from hotline.dashboard.views.overview import RunOverview
    from hotline.dashboard.views.status_strip import StatusStrip

    silence(MISSING_RENDERERS, True)  # rule / AE figures get their lines when data arrive
    state = hub.new_state(user=GUEST, role=GUEST, can_control=False, session_expires=None)
    state.update(force=True)
    overview = RunOverview(state)
    strip = StatusStrip(state)

    def slot() -> Any:
        return pn.Column(pn.indicators.LoadingSpinner(value=True, size=30),
                         sizing_mode="stretch_width")

    table_slot, hist_slot, why_slot = slot(), slot(), slot()
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
    header = pn.pane.HTML(_header_html(GUEST, GUEST, "none"), sizing_mode="stretch_width",
                          margin=0)
    page = pn.Column(
        header, overview.header, _card("Lumisection status (click to filter)", strip),
        top, _row(_card("Alerts (newest first)", table_slot, flex="3 1 640px"),
                  _card("Why did it fire?", why_slot, flex="2 1 420px")),
        details, sizing_mode="stretch_width", margin=0,
        stylesheets=[PAGE_CSS],
    )
    views: dict[str, Any] = {"overview": overview, "strip": strip}
    page.hotline_state = state  # for tests and the benchmark
    page.hotline_views = views
    return FirstStage(state=state, page=page, views=views, header=header,
                      table_slot=table_slot, hist_slot=hist_slot, why_slot=why_slot,
                      details=details)


def _header_html(user: str, role: str, mode: str) -> str:
    """The title bar: the wall-display link and who is signed in (escaped)."""
    who = (f"user: {html.escape(user)} ({role}) - <a style='color:#cfd8dc' "
           "href='/logout'>log out</a>" if user != GUEST else
           "guest (read-only)" + (" - <a style='color:#cfd8dc' href='/login'>log in</a>"
                                  if mode != "none" else ""))
    return (f"<div style='background:#263238;color:white;padding:8px 14px;font-size:20px;"
            f"font-weight:600'>{TITLE}"
            f"<span class='hotline-user' style='float:right;font-size:13px;font-weight:400'>"
            f"<a href='?wall=1' style='color:#b0bec5;margin-right:14px'>wall display</a>"
            f"{who}</span></div>")


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
            if session_reuse.browsers(pn.state.curdoc) == 0:
                return  # nobody sees it (session_reuse.browsers)
            with pn.io.hold():
                state.update()

        def advance() -> None:
            if session_reuse.browsers(pn.state.curdoc) != 0:
                wall.advance()

        def loaded() -> None:  # as the crew page: nothing runs before a browser loads it
            pn.state.add_periodic_callback(tick, period=period)
            pn.state.add_periodic_callback(advance, period=int(cycle * 1000))

        pn.state.onload(loaded)
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
    #: the next navigation's first stage, built ahead (``spare``; started by ``warm_up``)
    spare: Spare[FirstStage] = Spare(lambda: build_first_stage(hub), name="first-stage")
    if warm:
        # a navigation is answered at once and its session built while the browser loads
        # the scripts (``session_reuse``); the primer is the session the pages come from
        session_reuse.enable()
        local = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        primer = (f"http://{'[' + local + ']' if ':' in local else local}:{port}/"
                  if port else None)  # port 0: the system's choice, not known here
        threading.Thread(target=warm_up, args=(hub, primer, spare),
                         name="hotline-dashboard-warm-up", daemon=True).start()
    else:
        session_reuse.disable()
    log.info("serving the dashboard on http://%s:%s", host, port)
    return pn.serve({"/": lambda: create_page(hub, spare=spare)}, **kwargs)


def warm_up(hub: Hub, primer: str | None = None,
            spare: Spare[FirstStage] | None = None) -> float:
    """Build one throwaway page and its Bokeh models (imports, the shared run status, the
    alert map, the class-level caches of Bokeh and Panel) so the first browser after a
    server start does not pay for them; seconds taken. Never raises. ``primer``: first
    request this URL of the server once (``session_reuse.prime``); ``spare``: then start
    building the first navigation's first stage."""
    t0 = time.perf_counter()
    if primer:  # the crew page's and the wall display's
        session_reuse.prime(primer)
        session_reuse.prime(primer + "?wall=1")
    try:
        from bokeh.document import Document

        page = create_page(hub, user="guest")
        page.get_root(Document())
    except Exception as exc:  # noqa: BLE001 - only speed depends on it
        log.debug("dashboard warm-up failed: %s", exc)
    if spare is not None:
        spare.start()
    took = time.perf_counter() - t0
    log.info("dashboard warmed up in %.1f s", took)
    return took
