"""Single sign-on against a real Keycloak, driven in headless Chromium.

Each user logs in on Keycloak's own page, comes back to the dashboard, and gets the role
the store maps their Keycloak groups to (experts, shifters; an unmapped group: guest).
Logging out ends the session. No request of the dashboard's pages leaves 127.0.0.1.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.integration.browser.conftest import ARTIFACTS
from tests.integration.browser.sso.keycloak_server import USERS

pytestmark = pytest.mark.browser


def _login(context, dash: dict, user: str, password: str):
    page = context.new_page()
    page.goto(dash["url"] + "/login")
    kc = dash["keycloak"].url
    page.wait_for_url(f"{kc}/**", timeout=30_000)  # the provider's login page
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#kc-login")
    page.wait_for_url(f"{dash['url']}/**", timeout=30_000)
    page.wait_for_selector(".hotline-user", timeout=60_000)
    return page


@pytest.mark.parametrize(("user", "role"), [("eric", "expert"), ("sara", "shifter"),
                                            ("gail", "guest")])
def test_sso_login_maps_keycloak_groups_to_roles(browser, sso_dashboard, user, role):
    context = browser.new_context()
    outside: list[str] = []

    def watch(request) -> None:
        u = urlsplit(request.url)
        if u.scheme in ("http", "https", "ws", "wss") and u.hostname not in ("127.0.0.1",
                                                                            "localhost"):
            outside.append(request.url)

    context.on("request", watch)
    page = _login(context, sso_dashboard, user, USERS[user][0])
    header = page.inner_text(".hotline-user")
    assert f"user: {user} ({role})" in header, header
    page.screenshot(path=str(ARTIFACTS / f"sso_{user}.png"))
    # the session cookie is HttpOnly and SameSite=Lax
    cookies = {c["name"]: c for c in context.cookies(sso_dashboard["url"])}
    assert cookies["user"]["httpOnly"] and cookies["user"]["sameSite"] == "Lax"
    # log out: the cookies go, the page is a guest's again
    page.goto(sso_dashboard["url"] + "/logout")
    assert "Logged out" in page.inner_text("body")
    assert "/protocol/openid-connect/logout" in page.inner_html("body")
    page.goto(sso_dashboard["url"] + "/")
    page.wait_for_selector(".hotline-user", timeout=60_000)
    assert "guest (read-only)" in page.inner_text(".hotline-user")
    assert "user" not in {c["name"] for c in context.cookies(sso_dashboard["url"])}
    assert not outside, outside
    context.close()


def test_wrong_password_never_reaches_the_dashboard(browser, sso_dashboard):
    context = browser.new_context()
    page = context.new_page()
    page.goto(sso_dashboard["url"] + "/login")
    page.wait_for_url(f"{sso_dashboard['keycloak'].url}/**", timeout=30_000)
    page.fill("#username", "eric")
    page.fill("#password", "not-his-password")
    page.click("#kc-login")
    page.wait_for_selector("#input-error, .kc-feedback-text, [id*=error]", timeout=30_000)
    assert page.url.startswith(sso_dashboard["keycloak"].url)
    assert "user" not in {c["name"] for c in context.cookies(sso_dashboard["url"])}
    context.close()
