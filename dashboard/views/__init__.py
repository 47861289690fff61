"""Thin Panel views over ``dashboard.state.DashboardState`` (one module per panel of the page).

``overview`` run status and rate series; ``status_strip`` the clickable per-lumisection
status strip; ``timeline`` significances per quantity and lumisection; ``alert_map`` the
eta-phi map of the selected lumisections' alert objects; ``histogram`` score distribution
with its ratio panel; ``alerts`` the alert table (paged and sorted by the store);
``contributions`` why the selected alert
fired (AE contributions, classic cut, DQM verdict); ``acknowledge`` the crew's
acknowledgements of alerts and lumisection flags (shifters and up); ``event_display`` its
objects; ``occupancy`` DQM maps (hardware coordinates) of the selected or newest DQM alert;
``replay`` start/stop an embedded replay (admins); ``certification`` lumisection flags and
golden JSON of the run on screen, assessment and expert overrides after login;
``ls_histograms`` a lumisection's histogram against its reference, with pulls;
``l1_agreement`` firmware emulation vs serving decision agreement per lumisection and seed,
divergence alarms marked, the selection's numbers;
``subscriptions`` alert subscriptions and their delivery log; ``audit`` the audit log
(experts); ``common`` helpers shared by the views; ``wall`` the wall display (big status,
auto-cycling views).
"""

__all__ = ["acknowledge", "alert_map", "alerts", "audit", "certification", "common",
           "contributions", "event_display", "histogram", "l1_agreement", "ls_histograms",
           "occupancy", "overview", "replay", "status_strip", "subscriptions", "timeline", "wall"]
