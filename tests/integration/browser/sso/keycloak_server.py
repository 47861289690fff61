"""A real Keycloak (quarkus distribution from Maven Central) for the single-sign-on tests.

``KeycloakServer.start()`` runs ``kc.sh start-dev`` with an in-memory database on free
loopback ports (nothing shared with another run), waits for the master realm's OpenID
configuration, then provisions through the admin REST API: realm ``hotline``, the
confidential client ``hotline-dashboard`` with a group-membership mapper (claim ``groups``
in the ID token), the groups and users of ``USERS``. ``stop()`` ends the process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REALM = "hotline"
CLIENT_ID = "hotline-dashboard"
CLIENT_SECRET = "hotline-dashboard-test-secret"
#: user -> (password, groups)
USERS = {
    "sara": ("sara-pw-1", ["cms-hotline-shifters"]),
    "eric": ("eric-pw-1", ["cms-hotline-experts", "cms-muon"]),
    "gail": ("gail-pw-1", ["cms-visitors"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KeycloakServer:
    def __init__(self, home: Path, workdir: Path) -> None:
        self.home, self.workdir = home, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "keycloak.log"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    def start(self, redirect_uris: list[str], timeout: float = 300.0) -> KeycloakServer:
        env = {**os.environ, "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
               "KC_BOOTSTRAP_ADMIN_PASSWORD": "admin-pw",
               "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx512m",
               "JAVA_OPTS_APPEND": "-XX:TieredStopAtLevel=1"}
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(self.home / "bin" / "kc.sh"), "start-dev", "--db=dev-mem",
                 "--http-host=127.0.0.1", f"--http-port={self.port}", "--health-enabled=false",
                 "--metrics-enabled=false", "--cache=local"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Keycloak exited ({self.proc.returncode}): "
                                   + self.log.read_text()[-2000:])
            try:
                self._get(f"{self.url}/realms/master/.well-known/openid-configuration")
                break
            except OSError:
                time.sleep(1.0)
        else:
            self.stop()
            raise RuntimeError(f"Keycloak not up within {timeout:.0f} s: "
                               + self.log.read_text()[-2000:])
        self.provision(redirect_uris)
        return self

    # ------------------------------------------------------------ REST helpers

    def _get(self, url: str, token: str | None = None) -> Any:
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def _post(self, path: str, body: Any, token: str) -> None:
        req = urllib.request.Request(f"{self.url}/admin/realms{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def _admin_token(self) -> str:
        data = urllib.parse.urlencode({"grant_type": "password", "client_id": "admin-cli",
                                       "username": "admin", "password": "admin-pw"}).encode()
        with urllib.request.urlopen(f"{self.url}/realms/master/protocol/openid-connect/token",
                                    data=data, timeout=30) as r:
            return str(json.loads(r.read())["access_token"])

    def provision(self, redirect_uris: list[str]) -> None:
        tok = self._admin_token()
        self._post("", {"realm": REALM, "enabled": True, "sslRequired": "none"}, tok)
        self._post(f"/{REALM}/clients", {
            "clientId": CLIENT_ID, "enabled": True, "publicClient": False,
            "secret": CLIENT_SECRET, "redirectUris": redirect_uris,
            "standardFlowEnabled": True, "directAccessGrantsEnabled": False,
            "protocolMappers": [{
                "name": "groups", "protocol": "openid-connect",
                "protocolMapper": "oidc-group-membership-mapper",
                "config": {"full.path": "false", "id.token.claim": "true",
                           "access.token.claim": "true", "userinfo.token.claim": "true",
                           "claim.name": "groups"}}]}, tok)
        for g in sorted({g for _, gs in USERS.values() for g in gs}):
            self._post(f"/{REALM}/groups", {"name": g}, tok)
        for user, (pw, groups) in USERS.items():
            self._post(f"/{REALM}/users", {
                "username": user, "enabled": True, "email": f"{user}@example.org",
                "emailVerified": True, "firstName": user.title(), "lastName": "Tester",
                "credentials": [{"type": "password", "value": pw, "temporary": False}],
                "groups": [f"/{g}" for g in groups]}, tok)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
