"""The Panel shift-crew dashboard (reads the alert store and live summaries; scores nothing).

Modules (only ``app``, ``login``, ``session_reuse`` and ``views`` import Panel):

* ``app`` - the per-session page factory ``create_page``, its first stage and ``serve``.
* ``session_reuse`` - a navigation answered at once while its session is built (Panel's
  warm session reuse, the primer session, who is connected).
* ``spare`` - ``Spare``: one object (the next navigation's first stage) built ahead.
* ``hub`` - ``Hub``, what all sessions of one server share, and ``build_hub(cfg)``.
* ``state`` - ``DashboardState``, one session's single source of truth for its views.
* ``feed`` - ``LiveFeed``, the shared alert-store poller with the live replay overlay.
* ``replay_control`` - ``ReplayController``, one embedded replay in a child process or thread.
* ``model_info`` - the anomaly model's calibrated thresholds and background reference.
* ``rates`` - per-lumisection rate series and the green/amber/red run status.
* ``alert_table`` - alert-table rows and columns, the page size and sort order, and how
  many rows are kept and pushed.
* ``alert_detail`` - why one alert fired (AE contributions, classic cut, DQM verdict), its
  p-value as shown, and its objects for the event display.
* ``glance`` - the lumisection status strip, the quantity x lumisection timeline, the alert map.
* ``dqm_display`` - DQM maps in hardware coordinates and the flagged units' boxes.
* ``l1_series`` - L1 emulation agreement per lumisection and seed, builds, alarms and the
  selection's numbers, shaped once for the live view and the run report.
* ``run_report`` - a run's report: one self-contained HTML page (Bokeh inline) for the e-log.
* ``auth`` - sign-in modes, session roles (``alerts.access``), login throttling.
* ``login`` - the sign-in pages and handlers: basic-auth login (CSRF, throttled), OpenID
  Connect single sign-on, logout, cookie flags.
* ``views`` - thin Panel views over the state, one module per panel of the page.
"""

__all__ = ["alert_detail", "alert_table", "app", "auth", "dqm_display", "feed", "glance", "hub",
           "l1_series", "login", "model_info", "rates", "replay_control", "run_report",
           "session_reuse", "spare", "state", "views"]
