"""The Panel shift-crew dashboard (reads the alert store and live summaries; scores nothing).

``state`` the per-session ``DashboardState`` (no Panel import), the shared ``LiveFeed``
and the ``ReplayController``; ``views`` thin Panel views over the state; ``app`` the
per-session page factory and ``serve``; ``auth`` who may view and who may control.
"""

__all__ = ["app", "auth", "state", "views"]
