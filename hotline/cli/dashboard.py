"""``hotline dashboard``: serve the shift-crew dashboard (Panel) on 127.0.0.1:5006.

Read-only for every browser on the allowed origins; changing anything from the page needs a
sign-in (single sign-on with ``--oidc-issuer`` / ``--oidc-client-id`` and the client secret
from ``HOTLINE_DASHBOARD_OIDC_CLIENT_SECRET``, or the laptop demo's ``--basic-auth``) and
the role the store maps the user to (``hotline access``; see ``dashboard.auth``).
``run_dashboard`` is also used by ``hotline demo --serve``.
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from hotline.cli.common import (
    add_model_options,
    add_store_option,
    config_from,
    model_section,
    with_default_model,
)
from hotline.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the live shift-crew dashboard (alerts, rates, event displays)",
        description="Serve the Hotline dashboard: run status (green/amber/red), alert rates per "
        "lumisection, the anomaly-score distribution, the alert table with loss contributions "
        "and event displays, and replay control. Everyone on the allowed origins can look; "
        "starting or stopping a replay needs a login (--basic-auth). Stop with Ctrl-C.",
    )
    p.add_argument("--host", default=None,
                   help="address to listen on (env: HOTLINE_DASHBOARD_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help="port (env: HOTLINE_DASHBOARD_PORT; default 5006)")
    p.add_argument("--allowed-origins", default=None, metavar="H:P,...",
                   help="browsers may connect from these host:port origins "
                        "(env: HOTLINE_DASHBOARD_ALLOWED_ORIGINS)")
    p.add_argument("--basic-auth", default=None, metavar="PASSWORD|FILE",
                   help="enable login for replay control: a password, or a JSON file "
                        "{user: password} (env: HOTLINE_DASHBOARD_BASIC_AUTH)")
    p.add_argument("--oidc-issuer", default=None, metavar="URL",
                   help="single sign-on: the OpenID Connect issuer, e.g. "
                        "https://auth.example.org/realms/cms (env: "
                        "HOTLINE_DASHBOARD_OIDC_ISSUER); the client secret comes from "
                        "HOTLINE_DASHBOARD_OIDC_CLIENT_SECRET")
    p.add_argument("--oidc-client-id", default=None, metavar="ID",
                   help="single sign-on: this dashboard's client id at the provider")
    p.add_argument("--behind-proxy", action="store_true", default=None,
                   help="served behind a TLS reverse proxy: trust its X-Forwarded-* headers "
                        "(secure cookies; see docs/reverse-proxy.md)")
    p.add_argument("--archive", metavar="DIR", default=None,
                   help="archive of runs offered for replay (env: HOTLINE_SOURCE_ARCHIVE)")
    add_model_options(p, default="the registered default model (ae_default): its thresholds "
                                 "are drawn and replays started from the page score it")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    add_store_option(p)
    p.set_defaults(handler=handle)


def run_dashboard(cfg: Config, store: Any = None, autostart: tuple[list, int, float | None]
                  | None = None, show: bool = False, console: Any = None,
                  dqm: bool = False) -> int:
    """Serve until Ctrl-C; ``autostart=(files, run, rate)`` starts a replay right away;
    ``dqm``: replays also run the DQM occupancy monitoring."""
    from hotline.dashboard.app import serve
    from hotline.dashboard.hub import build_hub

    hub = build_hub(cfg, store=store, dqm=dqm)
    url = f"http://{cfg.dashboard.host}:{cfg.dashboard.port}"
    say = console.print if console is not None else print
    say(f"Hotline dashboard on {url}  (Ctrl-C to stop)")
    say(f"  {hub.model_note}")
    if cfg.dashboard.oidc_issuer:
        say(f"  sign in at {url}/login (single sign-on: {cfg.dashboard.oidc_issuer}); roles: "
            "`hotline access list`")
    elif cfg.dashboard.basic_auth:
        say(f"  replay control: log in at {url}/login")
    else:
        say("  read-only: no --basic-auth or --oidc-issuer, nobody can change anything "
            "from the page")
    if autostart is not None and hub.replay is not None:
        from hotline.cli.common import authorise

        files, run, rate = autostart
        authorise(hub.feed.store, None, "replay_start", f"run {run}",
                  {"run": run, "rate": rate, "from": "dashboard autostart"})
        hub.replay.start(files, run, rate)
        say(f"  replaying run {run} at {'max' if not rate else f'{rate:,.0f}'} events/s")
    try:
        serve(cfg, hub=hub, show=show)
    finally:
        if hub.replay is not None:
            hub.replay.stop()
    return 0


def demo_password() -> str:
    """A one-off password for ``hotline demo --serve`` when none is configured."""
    return secrets.token_urlsafe(9)


def handle(args: argparse.Namespace) -> int:
    cfg = config_from(
        args,
        dashboard={"host": args.host, "port": args.port, "allowed_origins": args.allowed_origins,
                   "basic_auth": args.basic_auth, "oidc_issuer": args.oidc_issuer,
                   "oidc_client_id": args.oidc_client_id, "behind_proxy": args.behind_proxy},
        source={"archive": args.archive},
        model=model_section(args),
    )
    return run_dashboard(with_default_model(cfg), show=args.show)
