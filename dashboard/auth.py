"""Who may do what on the dashboard: read-only for everyone, control after a login.

* **Viewing** is open to every browser that reaches the server through an allowed
  origin (``[dashboard] allowed_origins``, checked by Bokeh on the websocket).
* **Starting / stopping replays** (anything that changes state on the server) needs a
  login. Hotline uses Panel's basic auth in *optional* mode: with
  ``[dashboard] basic_auth`` set (env ``HOTLINE_DASHBOARD_BASIC_AUTH``) to either a
  password (any user name + that password) or the path of a JSON file
  ``{"user": "password", ...}``, anonymous visitors are sessions of user ``guest``
  (read-only) and ``/login`` lets a crew member log in; ``/logout`` logs out.
  Without ``basic_auth`` nobody can control replays from the page.
  The login cookie is signed with ``[dashboard] cookie_secret`` (random per server
  start when empty, so logins do not survive a restart).

OAuth (CERN SSO etc.) works the same way through Panel's ``oauth_*`` options; pass them
to ``dashboard.app.serve(..., **extra)`` — the page only asks ``can_control(user)``.
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["GUEST", "auth_kwargs", "can_control", "origins"]

GUEST = "guest"


def auth_kwargs(basic_auth: str, cookie_secret: str = "") -> dict[str, Any]:
    """Keyword arguments for ``pn.serve`` implementing the policy above."""
    if not basic_auth:
        return {}
    return {
        "basic_auth": basic_auth,
        "oauth_optional": True,
        "cookie_secret": cookie_secret or secrets.token_urlsafe(32),
    }


def can_control(user: str | None, basic_auth: str) -> bool:
    """May ``user`` (``pn.state.user`` of the session) start or stop replays?"""
    return bool(basic_auth) and bool(user) and user != GUEST


def origins(allowed: str) -> list[str]:
    """``[dashboard] allowed_origins`` (comma separated host:port) as a list."""
    return [o.strip() for o in allowed.split(",") if o.strip()]
