"""Fixtures of the sign-in tests: a real Keycloak (OpenID Connect provider) and a dashboard
signing in through it. Without Java or Maven the tests skip with a hint, except in CI
(``CI=true``), where they fail."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.integration.browser.conftest import free_port, wait_for
from tests.integration.browser.sso.keycloak_server import CLIENT_ID, CLIENT_SECRET, KeycloakServer

#: the store's role mapping of the tests: Keycloak groups -> roles
GROUP_ROLES = {"cms-hotline-shifters": "shifter", "cms-hotline-experts": "expert"}


@pytest.fixture(scope="module")
def keycloak_and_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int]]:
    """A Keycloak whose client redirects to a dashboard on the returned (free) port."""
    from tests.support.fetch import keycloak_dist

    if not (shutil.which("java") and shutil.which("mvn")):
        if IN_CI:
            raise AssertionError("java and mvn are needed for the Keycloak tests")
        pytest.skip("no java/mvn: the single-sign-on tests need Keycloak (Java 17)")
    dport = free_port()
    kc = KeycloakServer(keycloak_dist(), tmp_path_factory.mktemp("keycloak"))
    kc.start([f"http://127.0.0.1:{dport}/*"])
    try:
        yield kc, dport
    finally:
        kc.stop()


@pytest.fixture(scope="module")
def sso_dashboard(keycloak_and_port: tuple[Any, int],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The dashboard (in-process) signing in through Keycloak; roles from group grants."""
    import panel as pn

    from hotline.alerts.access import SYSTEM, grant
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.dashboard.app import serve
    from hotline.dashboard.hub import build_hub

    kc, port = keycloak_and_port
    tmp = tmp_path_factory.mktemp("sso")
    store = SQLiteAlertStore(tmp / "alerts.db")
    for group, role in GROUP_ROLES.items():
        grant(store, SYSTEM, "group", group, role)
    cfg = load_config(environ={}, cli={
        "source": {"archive": str(tmp)},
        "dashboard": {"port": port, "oidc_issuer": kc.issuer, "oidc_client_id": CLIENT_ID,
                      "oidc_client_secret": CLIENT_SECRET, "cookie_secret": "sso-test"},
        "store": {"url": store.url},
    })
    hub = build_hub(cfg, store=store, replay=False)
    server = serve(cfg, hub=hub, port=port, threaded=True, show=False)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/liveness-probe-none", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # the server answers (404)
        except OSError:
            return False

    wait_for(up, timeout=30, what="the dashboard server")
    try:
        yield {"url": url, "keycloak": kc, "store": store, "cfg": cfg}
    finally:
        server.stop()
        store.close()
        for key, value in (("oauth_provider", None), ("oauth_key", None),
                           ("oauth_secret", None), ("oauth_extra_params", {}),
                           ("oauth_redirect_uri", None)):
            setattr(pn.config, key, value)
        time.sleep(0.2)
