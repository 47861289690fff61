"""``hotline health SERVICE``: the health check of a deployed worker, sink or dashboard.

Exit 0 and ``SERVICE: healthy``, or exit 1 and one line saying why not. Worker and sink:
their heartbeat file in this machine's (container's) state folder (``stream.health``:
loop alive, no crash loop, the sink not stuck with records waiting); dashboard: its page
server answers ``/liveness`` on ``[dashboard] port`` (without rendering a page).
"""

from __future__ import annotations

import argparse

from hotline.cli.common import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "health",
        help="health check of a running worker, sink or dashboard (exit 0 / 1)",
        description="Check the health of a service running on this machine (the compose "
        "health checks): worker and sink by their heartbeat (loop alive within [stream] "
        "health_max_age, not crash-looping, the sink not stuck with records waiting), the "
        "dashboard by its page. Prints one line; exit 0 healthy, 1 unhealthy.",
    )
    p.add_argument("service", choices=["worker", "sink", "dashboard"])
    p.add_argument("--max-age", type=float, default=None, metavar="S",
                   help="seconds without a heartbeat (or progress with records waiting) "
                        "before unhealthy (env: HOTLINE_STREAM_HEALTH_MAX_AGE, default 60)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    cfg = config_from(args, stream={"health_max_age": args.max_age})
    if args.service == "dashboard":
        import urllib.error
        import urllib.request

        url = f"http://127.0.0.1:{cfg.dashboard.port}/liveness"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback URL
                ok, problem = r.status < 500, f"{url} answered {r.status}"
        except urllib.error.HTTPError as exc:  # 401 behind basic auth: the server answers
            ok, problem = exc.code < 500, f"{url} answered {exc.code}"
        except OSError as exc:
            ok, problem = False, f"{url}: {exc}"
        print("dashboard: healthy" if ok else f"dashboard: unhealthy: {problem}")
        return 0 if ok else 1
    from hotline.stream.health import check_service

    health = check_service(args.service, cfg.stream)
    print(health.line())
    return 0 if health.ok else 1
