"""The basic-auth sign-in of a real dashboard server: CSRF, throttling, cookies, expiry.

Plain HTTP requests for the protocol (what a forging site or a password-guessing script
would send) and headless Chromium for the page itself: self-contained (nothing requested
from outside 127.0.0.1, so it works in an offline control room) and a hostile user name is
shown as text.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.browser.conftest import ARTIFACTS, free_port, wait_for

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
USERS = {"alice": "alice-pw", HOSTILE: "hostile-pw"}
SESSION_SECONDS = 4.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None


class Client:
    """One 'browser' (cookie jar) talking HTTP to the server, from ``address``."""

    def __init__(self, url: str, address: str = "192.0.2.10") -> None:
        self.url, self.address = url, address
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  _NoRedirect)

    def request(self, path: str, data: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        req = urllib.request.Request(
            self.url + path, data=urllib.parse.urlencode(data).encode() if data else None,
            headers={"X-Forwarded-For": self.address, **(headers or {})})
        try:
            with self.opener.open(req, timeout=20) as r:
                return r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), e.headers

    def token(self) -> str:
        code, body, _ = self.request("/login")
        assert code == 200
        return re.search(r'name="_xsrf" value="([^"]+)"', body).group(1)

    def login(self, user: str, password: str, **headers: str) -> tuple[int, str, Any]:
        return self.request("/login", {"_xsrf": self.token(), "username": user,
                                       "password": password}, headers)


@pytest.fixture(scope="module")
def login_server(tmp_path_factory: pytest.TempPathFactory):
    """A dashboard with a password file, behind a (simulated) TLS proxy, short sessions."""
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.dashboard.app import serve
    from hotline.dashboard.hub import build_hub

    tmp = tmp_path_factory.mktemp("login")
    users = tmp / "users.json"
    users.write_text(json.dumps(USERS))
    store = SQLiteAlertStore(tmp / "alerts.db")
    port = free_port()
    cfg = load_config(environ={}, cli={
        "source": {"archive": str(tmp)}, "store": {"url": store.url},
        "dashboard": {"port": port, "basic_auth": str(users), "cookie_secret": "login-test",
                      "behind_proxy": True, "session_hours": SESSION_SECONDS / 3600}})
    hub = build_hub(cfg, store=store, replay=False)
    server = serve(cfg, hub=hub, port=port, threaded=True, show=False)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: Client(url).request("/login")[0] == 200, 30, what="the dashboard")
    yield url
    server.stop()
    store.close()


def test_login_form_needs_its_csrf_token(login_server):
    c = Client(login_server)
    code, _, _ = c.request("/login", {"username": "alice", "password": "alice-pw"})
    assert code == 403  # a cross-site POST has no token: refused before the password
    code, _, headers = c.login("alice", "alice-pw")
    assert code == 302 and headers["Location"] == "/"
    assert "user" in {k.name for k in c.jar}


def test_cookies_are_secure_behind_tls_and_expire(login_server):
    c = Client(login_server)
    code, _, headers = c.login("alice", "alice-pw", **{"X-Forwarded-Proto": "https"})
    assert code == 302
    user_cookie = next(v for v in headers.get_all("Set-Cookie") if v.startswith("user="))
    attrs = {a.strip().split("=")[0].lower() for a in user_cookie.split(";")}
    assert {"secure", "httponly", "samesite", "expires"} <= attrs
    expires = next(a for a in user_cookie.split(";") if a.strip().lower().startswith("expires"))
    from email.utils import parsedate_to_datetime

    left = parsedate_to_datetime(expires.split("=", 1)[1]).timestamp() - time.time()
    assert left <= SESSION_SECONDS + 1  # the cookie lives one session, not Panel's day
    # plain HTTP (no proxy saying https): no Secure flag (the browser would drop it)
    code, _, headers = Client(login_server).login("alice", "alice-pw")
    assert "secure" not in next(v for v in headers.get_all("Set-Cookie")
                                if v.startswith("user=")).lower()


def test_failed_logins_are_throttled_per_user_and_address_and_logged(login_server, caplog):
    c = Client(login_server, address="198.51.100.7")
    with caplog.at_level(logging.WARNING, logger="hotline.dashboard.login"):
        for i in range(5):
            code, body, _ = c.login("alice", f"guess-{i}")
            assert code == 401 and "Invalid user name or password" in body
        code, body, _ = c.login("alice", "alice-pw")  # right password, but throttled
        assert code == 429 and "Too many failed logins" in body
    assert "user" not in {k.name for k in c.jar}
    text = caplog.text
    assert text.count("dashboard login failed: user 'alice' from 198.51.100.7") == 5
    assert "(5 in the last minute)" in text
    assert "login refused (throttled): user 'alice' from 198.51.100.7" in text
    # another address, or another user name from the same address, is not held back
    assert Client(login_server, address="198.51.100.8").login("alice", "alice-pw")[0] == 302
    assert c.login(HOSTILE, "hostile-pw")[0] == 302


def test_login_page_works_offline_and_names_are_text(browser, login_server):
    context = browser.new_context()
    outside: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:  # the control room has no internet: nothing may be needed from there
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(login_server + "/login")
    assert page.locator("input[name=_xsrf]").count() == 1
    page.screenshot(path=str(ARTIFACTS / "login_page.png"))
    page.fill("input[name=username]", HOSTILE)
    page.fill("input[name=password]", USERS[HOSTILE])
    page.click("button[type=submit]")
    page.wait_for_selector(".hotline-user", timeout=60_000)
    header = page.inner_text(".hotline-user")
    assert HOSTILE in header and "(admin)" in header  # shown as text, not as markup
    assert page.locator(".hotline-user img").count() == 0 and not dialogs
    assert not outside, outside
    # the session ends SESSION_SECONDS after the sign-in: a new page is a guest's
    time.sleep(SESSION_SECONDS + 0.5)
    page.goto(login_server + "/")
    page.wait_for_selector(".hotline-user", timeout=60_000)
    assert "guest (read-only)" in page.inner_text(".hotline-user")
    context.close()
    Path(ARTIFACTS).mkdir(exist_ok=True)
