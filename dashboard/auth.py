"""Who may do what on the dashboard: sign-in modes, session roles, login throttling.

* **Viewing** is open to every browser that reaches the server through an allowed
  origin (``[dashboard] allowed_origins``, checked by Bokeh on the websocket); anonymous
  visitors are sessions of user ``guest`` (role guest).
* **Signing in** is one of (``sign_in_mode``):

  - ``oidc``: single sign-on through an OpenID Connect provider (Keycloak, CERN SSO):
    ``[dashboard] oidc_issuer``, ``oidc_client_id``, ``oidc_client_secret``
    (``HOTLINE_DASHBOARD_OIDC_CLIENT_SECRET``); the user's groups come from the ID token's
    ``oidc_groups_claim`` (``groups``).
  - ``basic``: the laptop demo's basic auth, ``[dashboard] basic_auth`` = a password (any
    user name) or a JSON file ``{"user": "password"}``.
  - ``none``: nobody signs in; the page is read-only.

  The login pages and handlers are ``dashboard.login``.
* **Roles** (``alerts.access``): a signed-in user's role comes from the store's mapping of
  user names and groups (``hotline access grant``), the same mapping the CLI uses; a
  basic-auth login is a local identity (``admin`` while the store has no grant), a
  single-sign-on one is not. Every write handler of the views checks the session's actor
  again (``DashboardState.actor``) and the write functions check it once more.
* **Sessions** expire ``[dashboard] session_hours`` after sign-in (the cookie's age is
  checked on every request and websocket connection, and the session's actor becomes a
  guest at expiry); ``/logout`` ends one. Cookies are ``HttpOnly``, ``SameSite=Lax`` and
  ``Secure`` when the request arrived over TLS (behind a reverse proxy:
  ``[dashboard] behind_proxy = true`` trusts its ``X-Forwarded-Proto`` / ``-For``; see
  docs/reverse-proxy.md).
* **Login throttling** (``LoginThrottle``): at most ``[dashboard] login_attempts`` failed
  logins per user name and address per minute; further attempts are refused and logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.errors import ConfigError

__all__ = ["GUEST", "LoginThrottle", "check_password", "cookie_issued_at", "origins",
           "session_role", "sign_in_mode"]

log = logging.getLogger(__name__)

GUEST = "guest"


def sign_in_mode(dash: Any) -> str:
    """``oidc``, ``basic`` or ``none`` for a ``DashboardConfig``."""
    if dash.oidc_issuer:
        if not dash.oidc_client_id:
            raise ConfigError("[dashboard] oidc_issuer is set but oidc_client_id is not")
        return "oidc"
    return "basic" if dash.basic_auth else "none"


def check_password(basic_auth: str, user: str, password: str) -> bool:
    """Does ``user``/``password`` pass ``[dashboard] basic_auth`` (a password for any user,
    or a JSON file of passwords)? Compared in constant time."""
    if not basic_auth or not user or not password:
        return False
    p = Path(basic_auth)
    if p.is_file():
        try:
            table = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[dashboard] basic_auth file {p}: {exc}") from None
        if not isinstance(table, dict):
            raise ConfigError(f"[dashboard] basic_auth file {p}: expected {{user: password}}")
        want = table.get(user)
        if not isinstance(want, str):
            hmac.compare_digest(password.encode(), b"x" * len(password))  # same work
            return False
        return hmac.compare_digest(password.encode(), want.encode())
    return hmac.compare_digest(password.encode(), basic_auth.encode())


class LoginThrottle:
    """At most ``attempts`` failed logins per (user name, address) in ``window`` seconds."""

    def __init__(self, attempts: int = 5, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if attempts < 1:
            raise ConfigError(f"[dashboard] login_attempts must be >= 1, got {attempts}")
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        now = self.clock()
        while q and now - q[0] >= self.window:
            q.popleft()
        return q

    def blocked(self, user: str, address: str) -> bool:
        """True while ``user`` from ``address`` used up its failures of the last window."""
        return len(self._recent((user.lower(), address))) >= self.attempts

    def failed(self, user: str, address: str) -> int:
        """Count a failure; returns the failures in the current window."""
        q = self._recent((user.lower(), address))
        q.append(self.clock())
        if len(self._failures) > 10_000:  # forget idle keys (a flood of names)
            for k in [k for k, v in self._failures.items() if not v][:5_000]:
                del self._failures[k]
        return len(q)

    def succeeded(self, user: str, address: str) -> None:
        self._failures.pop((user.lower(), address), None)


def cookie_issued_at(value: str | bytes | None) -> float | None:
    """When a Tornado signed cookie (version 2) was issued (Unix seconds), None if unknown."""
    if not value:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    parts = text.split("|")
    if len(parts) < 3 or parts[0] != "2":
        return None
    _, _, stamp = parts[2].partition(":")
    try:
        return float(stamp)
    except ValueError:
        return None


def session_role(store: Any, user: str | None, groups: Any, mode: str) -> tuple[str, str]:
    """(role, why) of a dashboard session (``alerts.access.resolve_role``)."""
    from hotline.alerts.access import resolve_role

    if not user or user == GUEST or mode == "none":
        return GUEST, "not signed in"
    if not hasattr(store, "transaction"):
        return GUEST, "this alert store keeps no roles"
    gs = [groups] if isinstance(groups, str) else [str(g).lstrip("/") for g in groups or ()]
    return resolve_role(store, user, gs, local=(mode == "basic"))


def origins(allowed: str) -> list[str]:
    """``[dashboard] allowed_origins`` (comma separated host:port) as a list."""
    return [o.strip() for o in allowed.split(",") if o.strip()]
