"""``hotline subscribe add|list|pause|resume|remove|test|log|secret`` and ``hotline deliver``.

Subscriptions live in the alert store; ``hotline deliver`` runs the delivery worker
(``alerts.delivery``) that sends queued alerts and survives restarts. Secrets are
never printed: ``add --secret-out FILE`` / ``secret ID --out FILE`` write the
``whsec_`` secret to a file readable only by you, for the receiver's configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import actor_from, add_store_option, config_from, store_from
from hotline.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "subscribe",
        help="manage alert subscriptions (webhook, e-mail, Kafka)",
        description="Subscribe people and systems to the alerts they care about. Each "
        "subscription has a filter (kind, rule, p-value, subsystem/unit, runs, tags), a channel "
        "and storm/rate-limit settings. Matching alerts are queued with the alert itself and "
        "delivered by `hotline deliver`.",
    )
    ss = p.add_subparsers(dest="action", metavar="ACTION")

    a = ss.add_parser("add", help="create a subscription",
                      description="Create a subscription. Examples:\n"
                      "  hotline subscribe add --owner trigger-expert --kind ae --max-p 1e-4 "
                      "--webhook https://example.org/hook --secret-out hook.secret\n"
                      "  hotline subscribe add --owner muon-oncall --kind dqm --unit 'DT_*' "
                      "--email muon-oncall@example.org --smtp-host smtp.example.org",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--owner", required=True, help="who owns it (person or system)")
    a.add_argument("--name", default="", help="a short label")
    ch = a.add_mutually_exclusive_group(required=True)
    ch.add_argument("--webhook", metavar="URL", help="POST signed CloudEvents to this http(s) URL")
    ch.add_argument("--email", metavar="ADDR", action="append", help="send e-mail (repeatable)")
    ch.add_argument("--kafka-topic", metavar="TOPIC", help="produce to this Kafka topic")
    a.add_argument("--smtp-host", default="localhost", help="SMTP server (e-mail)")
    a.add_argument("--smtp-port", type=int, default=25, help="SMTP port (e-mail)")
    a.add_argument("--smtp-user", default=None, help="SMTP login (e-mail)")
    a.add_argument("--smtp-password-env", default=None, metavar="VAR",
                   help="NAME of the environment variable holding the SMTP password")
    a.add_argument("--starttls", action="store_true", help="use STARTTLS (e-mail)")
    a.add_argument("--from", dest="sender", default="hotline@localhost", help="From address")
    a.add_argument("--dashboard-url", default=None,
                   help="dashboard address for links in e-mails (default from configuration)")
    a.add_argument("--bootstrap", default=None,
                   help="Kafka bootstrap host:port (default: [stream] broker)")
    a.add_argument("--kind", action="append", choices=["classic", "ae", "dqm"],
                   help="only this alert kind (repeatable)")
    a.add_argument("--rule", action="append", help="only this rule (repeatable)")
    a.add_argument("--source", action="append", help="only this data stream (repeatable)")
    a.add_argument("--max-p", type=float, metavar="P",
                   help="a filter on stored alerts: deliver only those whose p-value is <= P "
                        "(not the alert threshold: that is --p-value of replay / worker)")
    a.add_argument("--min-significance", type=float, metavar="Z",
                   help="only alerts with significance >= Z sigma")
    a.add_argument("--min-run", type=int, help="first run (inclusive)")
    a.add_argument("--max-run", type=int, help="last run (inclusive)")
    a.add_argument("--subsystem", action="append",
                   help="DQM subsystem (glob, e.g. 'muon*'; repeatable)")
    a.add_argument("--unit", action="append",
                   help="hardware unit named in DQM alerts (glob, e.g. 'DT_W+1_*'; repeatable)")
    a.add_argument("--object-type", action="append", dest="object_type",
                   help="AE alerts whose score points to this object type (MET, electrons, "
                        "muons, jets; repeatable)")
    a.add_argument("--tag", action="append", help="free tag carried by the alert (repeatable)")
    a.add_argument("--storm-threshold", type=int, default=None,
                   help="this many alerts at once go as ONE grouped message (default 20)")
    a.add_argument("--max-group", type=int, default=None, help="most alerts per grouped message")
    a.add_argument("--every-alert", action="store_true",
                   help="opt out of the workers' storm guard ([alerts] max_alerts_per_lumi): "
                        "get every matching alert, those past the guard's threshold as records "
                        "without objects, instead of a sample and one storm notice per storm")
    a.add_argument("--rate", metavar="N/SECONDS", default=None,
                   help="at most N messages per SECONDS, the rest as a digest (e.g. 1/300)")
    a.add_argument("--give-up", type=float, metavar="SECONDS", default=None,
                   help="mark a message failed after retrying this long (default 86400)")
    a.add_argument("--timeout", type=float, metavar="SECONDS", default=None,
                   help="per-attempt timeout (default 10)")
    a.add_argument("--secret-file", default=None,
                   help="use the whsec_ secret stored in this file instead of a new one")
    a.add_argument("--secret-out", default=None,
                   help="write the new whsec_ secret to this file (mode 0600) for the receiver")
    a.add_argument("--paused", action="store_true", help="create it paused")
    a.add_argument("--json", action="store_true", help="print the subscription as JSON")
    a.set_defaults(handler=handle_add)

    ls = ss.add_parser("list", help="list subscriptions with their delivery counts")
    ls.add_argument("--owner", default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=handle_list)

    for name, h, text in (("pause", handle_pause, "hold deliveries (alerts keep queueing)"),
                          ("resume", handle_resume, "deliver again (queued alerts go out)"),
                          ("remove", handle_remove, "delete it with its queue and log"),
                          ("test", handle_test, "send one test notification now"),
                          ("log", handle_log, "delivery log: sent, failed, retried, errors"),
                          ("secret", handle_secret, "write the whsec_ secret to a file")):
        q = ss.add_parser(name, help=text, description=text)
        q.add_argument("id", help="subscription id (see `hotline subscribe list`)")
        if name == "resume":
            q.add_argument("--retry-failed", action="store_true",
                           help="also re-queue messages that gave up")
        if name == "log":
            q.add_argument("--limit", type=int, default=20)
            q.add_argument("--status", choices=["pending", "sent", "failed"])
            q.add_argument("--json", action="store_true")
        if name == "secret":
            q.add_argument("--out", required=True, help="file to write (mode 0600)")
        q.set_defaults(handler=h)

    for q in [a, ls, *ss.choices.values()]:
        if not any(x.dest == "store" for x in q._actions):
            add_store_option(q)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    d = sub.add_parser(
        "deliver",
        help="run the delivery worker (sends queued alerts to subscribers)",
        description="Send queued alerts to their subscribers: retries with backoff, groups alert "
        "storms, respects rate limits. Safe to stop and restart at any time: pending "
        "deliveries resume, each carries the same idempotency key. Run one per alert store.",
    )
    d.add_argument("--threads", type=int, default=16, help="parallel sends (default 16)")
    d.add_argument("--poll", type=float, default=0.5, help="seconds between queue checks")
    d.add_argument("--lease-seconds", type=float, default=15.0, metavar="S",
                   help="delivery lease (default 15 s): one worker per store delivers, another "
                        "waits as a standby and takes over at most S seconds after the first "
                        "one dies")
    d.add_argument("--until-idle", action="store_true",
                   help="exit when nothing is queued or pending (e.g. in cron or tests)")
    d.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    add_store_option(d)
    d.set_defaults(handler=handle_deliver)


def _write_secret(path: str, secret: str) -> None:
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(p, 0o600)


def _parse_rate(text: str) -> tuple[int, float]:
    try:
        n, _, per = text.partition("/")
        return int(n), float(per or 60)
    except ValueError:
        raise ConfigError(f"--rate must look like N/SECONDS (e.g. 1/300), got {text!r}") from None


def handle_add(args: argparse.Namespace) -> int:
    from hotline.alerts.subscription_store import add_subscription

    cfg = config_from(args)
    if args.webhook:
        channel, settings = "webhook", {"url": args.webhook}
    elif args.email:
        channel = "email"
        settings = {"to": args.email, "from": args.sender, "smtp_host": args.smtp_host,
                    "smtp_port": args.smtp_port, "starttls": args.starttls,
                    "dashboard_url": args.dashboard_url
                    or f"http://{cfg.dashboard.host}:{cfg.dashboard.port}/"}
        if args.smtp_user:
            settings["username"] = args.smtp_user
        if args.smtp_password_env:
            settings["password_env"] = args.smtp_password_env
    else:
        channel = "kafka"
        settings = {"topic": args.kafka_topic,
                    "bootstrap": args.bootstrap or cfg.stream.broker}
    flt = {"kinds": args.kind, "rules": args.rule, "sources": args.source, "max_p": args.max_p,
           "min_significance": args.min_significance, "min_run": args.min_run,
           "max_run": args.max_run, "subsystems": args.subsystem, "units": args.unit,
           "object_types": args.object_type,
           "tags": args.tag}
    delivery = {"storm_threshold": args.storm_threshold, "max_group": args.max_group,
                "give_up_after": args.give_up, "timeout": args.timeout}
    if args.every_alert:
        delivery["storm_guard"] = False
    if args.rate:
        delivery["max_messages"], delivery["per_seconds"] = _parse_rate(args.rate)
    secret = None
    if args.secret_file:
        try:
            secret = Path(args.secret_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --secret-file {args.secret_file}: {exc}") from None
    with store_from(cfg) as store:
        s = add_subscription(store, owner=args.owner, name=args.name, channel=channel,
                             settings=settings, filter=flt, delivery=delivery, secret=secret,
                             paused=args.paused, actor=actor_from(store))
    if args.secret_out:
        _write_secret(args.secret_out, s.secret)
    if args.json:
        print(json.dumps(s.public_dict(), sort_keys=True))
        return 0
    print(f"subscription {s.id} created for {s.owner}: {s.channel} -> {s.target()}")
    print(f"  filter: {s.filter.describe()}")
    if channel == "webhook":
        if args.secret_out:
            print(f"  signing secret written to {args.secret_out} (mode 0600)")
        elif not args.secret_file:
            print(f"  signing secret {s.public_dict()['secret']} (export it with "
                  f"`hotline subscribe secret {s.id} --out FILE`)")
    return 0


def _fmt_t(t: float | None) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def handle_list(args: argparse.Namespace) -> int:
    from hotline.alerts.outbox import delivery_stats
    from hotline.alerts.subscription_store import list_subscriptions

    with store_from(config_from(args), create=False) as store:
        subs = list_subscriptions(store, owner=args.owner, reveal=False)
        stats = delivery_stats(store)
    if args.json:
        for s in subs:
            print(json.dumps({**s.public_dict(), "stats": stats.get(s.id, {})}, sort_keys=True))
        return 0
    t = Table(title=f"{len(subs)} subscription(s)")
    for col in ("id", "owner", "channel", "target", "filter", "state", "queued", "sent",
                "failed", "secret"):
        t.add_column(col, justify="right" if col in ("queued", "sent", "failed") else "left")
    for s in subs:
        st = stats.get(s.id, {})
        t.add_row(s.id, s.owner, s.channel, s.target(), s.filter.describe(),
                  "paused" if s.paused else "active",
                  str(st.get("queued", 0) + st.get("pending", 0)), str(st.get("alerts_sent", 0)),
                  str(st.get("alerts_failed", 0)), s.public_dict()["secret"])
    Console(width=200).print(t)
    return 0


def handle_pause(args: argparse.Namespace) -> int:
    from hotline.alerts.subscription_store import pause_subscription

    with store_from(config_from(args), create=False) as store:
        s = pause_subscription(store, args.id, actor=actor_from(store))
    print(f"subscription {s.id} paused; matching alerts keep queueing until resumed")
    return 0


def handle_resume(args: argparse.Namespace) -> int:
    from hotline.alerts.subscription_store import resume_subscription

    with store_from(config_from(args), create=False) as store:
        s = resume_subscription(store, args.id, retry_failed=args.retry_failed,
                                actor=actor_from(store))
    print(f"subscription {s.id} resumed" + (" (failed messages re-queued)"
                                             if args.retry_failed else ""))
    return 0


def handle_remove(args: argparse.Namespace) -> int:
    from hotline.alerts.subscription_store import remove_subscription

    with store_from(config_from(args), create=False) as store:
        remove_subscription(store, args.id, actor=actor_from(store))
    print(f"subscription {args.id} removed")
    return 0


def handle_test(args: argparse.Namespace) -> int:
    from hotline.alerts.delivery import send_test
    from hotline.alerts.subscription_store import get_subscription

    with store_from(config_from(args), create=False) as store:
        ok, msg = send_test(store, get_subscription(store, args.id))
    print(msg, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def handle_log(args: argparse.Namespace) -> int:
    from hotline.alerts.outbox import delivery_log, delivery_stats
    from hotline.alerts.subscription_store import get_subscription

    with store_from(config_from(args), create=False) as store:
        s = get_subscription(store, args.id, reveal=False)
        st = delivery_stats(store, s.id).get(s.id, {})
        rows = delivery_log(store, s.id, limit=args.limit, status=args.status)
    if args.json:
        print(json.dumps({"subscription": s.id, "stats": st,
                          "deliveries": [{k: v for k, v in r.__dict__.items() if k != "alert_ids"}
                                         for r in rows]}, sort_keys=True))
        return 0
    print(f"subscription {s.id} ({s.owner}, {s.channel} -> {s.target()}, "
          f"{'paused' if s.paused else 'active'})")
    print("  messages: sent {sent}  failed {failed}  pending {pending}  retried {retried}  "
          "attempts {attempts}  | alerts: sent {alerts_sent}  failed {alerts_failed}  "
          "queued {queued}".format(**{k: st.get(k, 0) for k in (
              "sent", "failed", "pending", "retried", "attempts", "alerts_sent",
              "alerts_failed", "queued")}))
    t = Table(title=f"last {len(rows)} message(s)")
    for col in ("created (UTC)", "idempotency key", "kind", "alerts", "status", "attempts",
                "last attempt", "last error"):
        t.add_column(col)
    for r in rows:
        t.add_row(_fmt_t(r.created), r.message_id, f"{r.kind}/{r.reason}", str(r.n_alerts),
                  r.status, str(r.attempts), _fmt_t(r.last_attempt), r.last_error or "")
    Console(width=200).print(t)
    return 0


def handle_secret(args: argparse.Namespace) -> int:
    from hotline.alerts.subscription_store import export_secret

    with store_from(config_from(args), create=False) as store:
        _write_secret(args.out, export_secret(store, args.id, actor=actor_from(store)))
    print(f"secret of {args.id} written to {args.out} (mode 0600)")
    return 0


def handle_deliver(args: argparse.Namespace) -> int:
    from hotline.alerts.delivery import DeliveryWorker

    cfg = config_from(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        with store_from(cfg) as store:
            if not args.lease_seconds > 0:
                raise ConfigError("--lease-seconds must be > 0")
            worker = DeliveryWorker(store, threads=args.threads, poll=args.poll,
                                    lease_seconds=args.lease_seconds)
            print(f"delivering from {store.url} with {args.threads} thread(s); Ctrl-C stops",
                  file=sys.stderr, flush=True)
            if not worker.holds_lease():
                print(f"standby: {worker.lease.describe()}; taking over when it expires",
                      file=sys.stderr, flush=True)
            try:
                stats = worker.run(stop=stop, until_idle=args.until_idle,
                                   timeout=args.max_seconds)
            except KeyboardInterrupt:
                stats = worker.stats
            finally:
                worker.close()
    finally:
        signal.signal(signal.SIGTERM, old)
    print(f"messages sent {stats.sent} (alerts {stats.alerts_sent}), retried {stats.retried}, "
          f"failed {stats.failed}, formed {stats.formed}")
    return 0
