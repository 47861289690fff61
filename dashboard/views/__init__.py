"""Thin Panel views over ``dashboard.state.DashboardState`` (one module per panel of the page).

``overview`` run status and rate series; ``histogram`` score distribution;
``alerts`` the alert table; ``contributions`` loss contributions of the selected
alert; ``event_display`` its objects; ``occupancy`` DQM maps (placeholder);
``replay`` start/stop an embedded replay.
"""

__all__ = ["overview", "histogram", "alerts", "contributions", "event_display", "occupancy",
           "replay"]
