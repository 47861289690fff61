"""Thin Panel views over ``dashboard.state.DashboardState`` (one module per panel of the page).

``overview`` run status and rate series; ``histogram`` score distribution;
``alerts`` the alert table; ``contributions`` loss contributions of the selected
alert; ``event_display`` its objects; ``occupancy`` DQM maps of the selected or newest
DQM alert; ``replay`` start/stop an embedded replay; ``certification`` lumisection
flags and golden JSON of the run on screen, assessment and expert overrides after login;
``subscriptions`` alert subscriptions and their delivery log; ``audit`` the audit log
(experts); ``common`` helpers shared by the views.
"""

__all__ = ["alerts", "audit", "certification", "common", "contributions", "event_display",
           "histogram", "occupancy", "overview", "replay", "subscriptions"]
