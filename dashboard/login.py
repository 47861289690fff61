"""Sign-in pages and handlers of the dashboard server (Panel/Tornado auth providers).

``server_kwargs(dash)`` returns what ``pn.serve`` needs for ``dashboard.auth.sign_in_mode``:

* ``basic``: ``BasicProvider`` serves ``/login`` (``LoginHandler``): a self-contained page
  (inline style, no script, font or stylesheet from anywhere: it works in an offline
  control room) whose form carries a CSRF token (Tornado's ``_xsrf`` cookie + field,
  checked on every POST); passwords are compared in constant time; failed logins are
  throttled per user name and address (``auth.LoginThrottle``) and every failure and
  refusal is logged with both.
* ``oidc``: ``OIDCProvider``: Panel's generic OAuth code flow against the endpoints the
  issuer publishes (``discover``: ``/.well-known/openid-configuration``); the ``state``
  parameter in a signed cookie is the flow's CSRF protection; the ID token's claims become
  ``pn.state.user_info`` (user ``preferred_username``, groups from ``oidc_groups_claim``).
* both: ``/logout`` (``LogoutHandler``) clears the session cookies (and, with single
  sign-on, offers the provider's logout); every cookie set here is ``HttpOnly``,
  ``SameSite=Lax`` and ``Secure`` over TLS; the session cookie lives
  ``session_hours`` (``pn.config.oauth_expiry``), which Panel checks on every request and
  websocket connection.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import urllib.request
from typing import Any

import tornado.web
from panel.auth import BasicAuthProvider, GenericLoginHandler, OAuthProvider
from panel.auth import LogoutHandler as PanelLogoutHandler

from hotline.dashboard.auth import LoginThrottle, check_password, sign_in_mode
from hotline.errors import ConfigError

__all__ = ["BasicProvider", "LoginHandler", "LogoutHandler", "OIDCProvider", "discover",
           "login_page", "server_kwargs"]

log = logging.getLogger(__name__)

_STYLE = ("body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;"
          "background:#eceff1;margin:0}.box{max-width:340px;margin:12vh auto;background:#fff;"
          "padding:24px 28px;border-radius:6px;box-shadow:0 1px 4px #0003}"
          "h1{font-size:20px;margin:0 0 16px;color:#263238}label{display:block;font-size:13px;"
          "margin:10px 0 4px;color:#455a64}input[type=text],input[type=password]{width:100%;"
          "box-sizing:border-box;padding:8px;border:1px solid #b0bec5;border-radius:4px}"
          "button{margin-top:16px;width:100%;padding:9px;background:#263238;color:#fff;"
          "border:0;border-radius:4px;font-size:15px}.err{color:#b71c1c;font-size:13px;"
          "margin-top:10px}a{color:#1565c0}")


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
            f"<style>{_STYLE}</style></head><body><div class='box'>{body}</div></body></html>")


def login_page(xsrf_field: str, error: str = "", action: str = "/login") -> str:
    """The basic-auth login page (everything inline; ``error`` is escaped)."""
    err = f"<div class='err' role='alert'>{html.escape(error)}</div>" if error else ""
    return _page("Hotline - log in", (
        "<h1>Hotline shift crew</h1>"
        f"<form method='post' action='{html.escape(action)}' autocomplete='on'>{xsrf_field}"
        "<label for='username'>user name</label>"
        "<input type='text' id='username' name='username' required autofocus>"
        "<label for='password'>password</label>"
        "<input type='password' id='password' name='password' required>"
        f"<button type='submit'>Log in</button>{err}</form>"
        "<p style='font-size:12px;color:#666'><a href='/'>continue read-only</a></p>"))


class _CookieFlags(tornado.web.RequestHandler):
    """Every cookie this handler sets: HttpOnly, SameSite=Lax, Secure over TLS."""

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("httponly", True)
        kwargs.setdefault("samesite", "Lax")
        if self.request.protocol == "https":
            kwargs.setdefault("secure", True)
        super().set_cookie(name, value, *args, **kwargs)


class LoginHandler(_CookieFlags):
    """``/login`` of basic auth: CSRF-protected, throttled, logged."""

    basic_auth: str = ""
    throttle: LoginThrottle = LoginThrottle()
    expiry_days: float = 0.5

    def get(self) -> None:
        from panel.auth import _validate_next_url

        next_url = _validate_next_url(self.get_argument("next", "/"))
        if next_url:
            self.set_cookie("next_url", next_url)
        self.write(login_page(self.xsrf_form_html(), self.get_argument("error", "")))

    def post(self) -> None:
        from panel.auth import _validate_next_url

        self.check_xsrf_cookie()  # 403 without the form's token (cross-site POST)
        user = self.get_argument("username", "").strip()
        password = self.get_argument("password", "")
        addr = self.request.remote_ip or "?"
        if self.throttle.blocked(user, addr):
            log.warning("dashboard login refused (throttled): user %r from %s", user, addr)
            self.set_status(429)
            self.write(login_page(self.xsrf_form_html(), "Too many failed logins: wait a "
                                  "minute and try again."))
            return
        if not check_password(self.basic_auth, user, password):
            n = self.throttle.failed(user, addr)
            log.warning("dashboard login failed: user %r from %s (%d in the last minute)",
                        user, addr, n)
            self.set_status(401)
            self.write(login_page(self.xsrf_form_html(), "Invalid user name or password."))
            return
        self.throttle.succeeded(user, addr)
        log.info("dashboard login: user %r from %s", user, addr)
        self.clear_cookie("is_guest")
        self.set_secure_cookie("user", user, expires_days=self.expiry_days)
        self.set_secure_cookie("id_token", _b64json({"user": user}),
                               expires_days=self.expiry_days)
        self.redirect(_validate_next_url(self.get_cookie("next_url", "/")) or "/")


def _b64json(d: dict[str, Any]) -> str:
    from panel.util import base64url_encode

    return str(base64url_encode(json.dumps(d)))


class LogoutHandler(_CookieFlags, PanelLogoutHandler):
    """``/logout``: clears the session cookies; a local page (with the provider's logout
    link when signed in through single sign-on)."""

    provider_logout: str = ""

    def get(self) -> None:
        for name in ("user", "id_token", "access_token", "refresh_token", "oauth_expiry",
                     "is_guest", "state", "next_url"):
            self.clear_cookie(name)
        extra = (f"<p><a href='{html.escape(self.provider_logout)}'>also sign out of the "
                 "single sign-on</a></p>") if self.provider_logout else ""
        self.write(_page("Hotline - logged out", "<h1>Logged out</h1>"
                         f"<p><a href='/'>back to the dashboard (read-only)</a></p>"
                         f"<p><a href='/login'>log in again</a></p>{extra}"))


class BasicProvider(BasicAuthProvider):
    """Basic auth with ``LoginHandler`` / ``LogoutHandler``; anonymous visitors are guests."""

    def __init__(self, basic_auth: str, throttle: LoginThrottle, expiry_days: float) -> None:
        self._handler = type("HotlineLoginHandler", (LoginHandler,),
                             {"basic_auth": basic_auth, "throttle": throttle,
                              "expiry_days": expiry_days})
        super().__init__()

    @property
    def login_handler(self) -> Any:
        return self._handler

    @property
    def logout_handler(self) -> Any:
        return type("HotlineLogoutHandler", (LogoutHandler,), {})


class _OIDCLoginHandler(_CookieFlags, GenericLoginHandler):
    """Panel's generic OAuth code flow with the cookie flags above."""


class OIDCProvider(OAuthProvider):
    """OpenID Connect single sign-on (Panel's generic provider) with the local logout."""

    def __init__(self, provider_logout: str = "") -> None:
        self.provider_logout = provider_logout
        super().__init__()

    @property
    def login_handler(self) -> Any:
        handler = _OIDCLoginHandler
        handler._login_endpoint = self._login_endpoint
        return handler

    @property
    def logout_handler(self) -> Any:
        return type("HotlineOIDCLogoutHandler", (LogoutHandler,),
                    {"provider_logout": self.provider_logout})


def discover(issuer: str, timeout: float = 10.0) -> dict[str, Any]:
    """The provider's OpenID configuration (``ConfigError`` naming the issuer if unreachable)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - admin's URL
            doc = json.loads(resp.read().decode())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"[dashboard] oidc_issuer {issuer}: cannot read {url}: {exc}") from None
    for key in ("authorization_endpoint", "token_endpoint"):
        if key not in doc:
            raise ConfigError(f"[dashboard] oidc_issuer {issuer}: no {key} in {url}")
    return doc


def server_kwargs(dash: Any, port: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``pn.serve`` for the configured sign-in (see the docstring)."""
    import panel as pn

    mode = sign_in_mode(dash)
    expiry_days = float(dash.session_hours) / 24.0
    if expiry_days <= 0:
        raise ConfigError(f"[dashboard] session_hours must be > 0, got {dash.session_hours}")
    if mode == "none":
        return {"use_xheaders": bool(dash.behind_proxy)}
    pn.config.oauth_expiry = expiry_days
    kwargs: dict[str, Any] = {
        "cookie_secret": dash.cookie_secret or secrets.token_urlsafe(32),
        "oauth_optional": True,  # anonymous visitors look, as guests
        "use_xheaders": bool(dash.behind_proxy),
    }
    if mode == "basic":
        pn.config.oauth_provider = None  # a process may have served single sign-on before
        kwargs["auth_provider"] = BasicProvider(dash.basic_auth,
                                                LoginThrottle(dash.login_attempts),
                                                expiry_days)
        return kwargs
    doc = discover(dash.oidc_issuer)
    pn.config.oauth_provider = "generic"
    extra = {"TOKEN_URL": doc["token_endpoint"], "AUTHORIZE_URL": doc["authorization_endpoint"],
             "USER_KEY": "preferred_username", "scope": ["openid", "profile", "email"]}
    if doc.get("userinfo_endpoint"):
        extra["USER_URL"] = doc["userinfo_endpoint"]
    redirect = dash.oidc_redirect_uri or (f"http://{dash.host}:{port or dash.port}/login")
    kwargs.update(oauth_key=dash.oidc_client_id, oauth_secret=dash.oidc_client_secret,
                  oauth_extra_params=extra, oauth_redirect_uri=redirect,
                  auth_provider=OIDCProvider(doc.get("end_session_endpoint", "")))
    return kwargs
