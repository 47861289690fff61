"""``hotline access whoami|list|grant|revoke|webhooks|audit|rotate-secrets``.

Roles, the webhook allow-list, the audit log and the key of the webhook signing secrets.
The role mapping, the allow-list and the audit log live in the alert store
(``alerts.access``, ``alerts.outbound``, ``alerts.audit``), so the dashboard and every CLI
on the same store share them. Changing them, and re-encrypting the secrets under a new key
(``rotate-secrets``, ``alerts.secrets_at_rest``), needs the admin role; ``audit`` (reading
or exporting the log) needs the expert role.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import actor_from, add_store_option, config_from, store_from
from hotline.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "access",
        help="roles, the webhook allow-list and the audit log of an alert store",
        description="Who may do what on an alert store. Roles (guest < shifter < expert < "
        "admin) come from user names and groups (the single-sign-on groups on the "
        "dashboard, the Unix groups of the account for the CLI) mapped here. A store with "
        "no grant is open: local accounts are admins until the first grant. Every write "
        "(acknowledgements, flag overrides, subscriptions, replays, configuration) is "
        "checked against the role and recorded in the append-only audit log.",
    )
    ss = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    w = ss.add_parser("whoami", help="your user name, groups and role on this store")
    w.set_defaults(handler=handle_whoami)
    ls = ss.add_parser("list", help="the role mapping (users and groups)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=handle_list)
    g = ss.add_parser("grant", help="give a user or a group a role (admin)",
                      description="Map a user or group to a role, e.g. "
                      "`hotline access grant --group cms-hotline-shifters shifter`.")
    who = g.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", dest="grant_user", metavar="NAME")
    who.add_argument("--group", dest="grant_group", metavar="NAME")
    g.add_argument("role", choices=["guest", "shifter", "expert", "admin"])
    g.set_defaults(handler=handle_grant)
    r = ss.add_parser("revoke", help="remove a user's or group's role (admin)")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", dest="grant_user", metavar="NAME")
    who.add_argument("--group", dest="grant_group", metavar="NAME")
    r.set_defaults(handler=handle_revoke)
    wh = ss.add_parser("webhooks", help="show or replace the webhook allow-list (admin)",
                       description="Webhook targets must match the allow-list: host names or "
                       "globs (public addresses only) and IP addresses or CIDR blocks (the "
                       "only way to allow private, loopback or link-local targets). Default: "
                       "'*' (any public host). Without --allow: show it.")
    wh.add_argument("--allow", action="append", metavar="ENTRY",
                    help="an entry of the new list (repeatable; replaces the whole list)")
    wh.set_defaults(handler=handle_webhooks)
    a = ss.add_parser("audit", help="show or export the audit log (expert)",
                      description="Every write with who, role, when, what, before and after. "
                      "--out FILE exports the matching rows (JSON lines, or CSV with "
                      "--format csv); otherwise the newest --limit rows are shown.")
    a.add_argument("--out", metavar="FILE", help="export to this file ('-': standard output)")
    a.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    a.add_argument("--user", dest="audit_user", metavar="NAME", help="only this user's writes")
    a.add_argument("--what", dest="audit_action", metavar="ACTION",
                   help="only this action (e.g. override_flags)")
    a.add_argument("--limit", type=int, default=30, help="rows shown (default 30)")
    a.set_defaults(handler=handle_audit)
    rs = ss.add_parser("rotate-secrets", help="re-encrypt every webhook signing secret under a "
                       "new key (admin)",
                       description="Webhook signing secrets are stored encrypted with the key "
                       "from $HOTLINE_SECRETS_KEY, the file in $HOTLINE_SECRETS_KEY_FILE, or "
                       "the default key file. This makes a new random key, re-encrypts every "
                       "secret with it in one transaction (audited) and replaces the key file "
                       "(or writes the new key to --new-key-file). Give every host that "
                       "delivers webhooks from this store the new key.")
    rs.add_argument("--new-key-file", metavar="FILE", default=None,
                    help="write the new key here (mode 0600) instead of replacing the current "
                    "key file; required when the key is in $HOTLINE_SECRETS_KEY")
    rs.set_defaults(handler=handle_rotate_secrets)
    for q in ss.choices.values():
        add_store_option(q)


def _kind_name(args: argparse.Namespace) -> tuple[str, str]:
    return ("user", args.grant_user) if args.grant_user else ("group", args.grant_group)


def handle_whoami(args: argparse.Namespace) -> int:
    from hotline.alerts.access import os_groups, os_user, resolve_role

    with store_from(config_from(args), create=False) as store:
        role, why = resolve_role(store, os_user(), os_groups(), local=True)
    print(f"{os_user()} ({', '.join(os_groups())}): {role} - {why}")
    return 0


def handle_list(args: argparse.Namespace) -> int:
    from hotline.alerts.access import grants

    with store_from(config_from(args), create=False) as store:
        rows = grants(store)
    if args.json:
        for g in rows:
            print(json.dumps(g.__dict__, sort_keys=True))
        return 0
    if not rows:
        print("no roles granted: the store is open (local accounts are admins); "
              "`hotline access grant --user NAME admin` closes it")
        return 0
    t = Table(title=f"{len(rows)} grant(s)")
    for col in ("kind", "name", "role", "granted by", "when (UTC)"):
        t.add_column(col)
    for g in rows:
        t.add_row(g.kind, g.name, g.role, g.granted_by, _utc(g.at))
    Console(width=160).print(t)
    return 0


def handle_grant(args: argparse.Namespace) -> int:
    from hotline.alerts.access import grant

    kind, name = _kind_name(args)
    with store_from(config_from(args)) as store:
        g = grant(store, actor_from(store), kind, name, args.role)
    print(f"{g.kind} {g.name} has the {g.role} role (granted by {g.granted_by})")
    return 0


def handle_revoke(args: argparse.Namespace) -> int:
    from hotline.alerts.access import revoke

    kind, name = _kind_name(args)
    with store_from(config_from(args), create=False) as store:
        revoke(store, actor_from(store), kind, name)
    print(f"{kind} {name} has no role any more")
    return 0


def handle_webhooks(args: argparse.Namespace) -> int:
    from hotline.alerts.outbound import load_policy, set_allow_list

    with store_from(config_from(args), create=bool(args.allow)) as store:
        if args.allow:
            policy = set_allow_list(store, actor_from(store), args.allow)
            print("webhook allow-list set: " + ", ".join(policy.entries))
        else:
            print("webhook allow-list: " + (", ".join(load_policy(store).entries) or "empty"))
    return 0


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def handle_audit(args: argparse.Namespace) -> int:
    from hotline.alerts.access import require
    from hotline.alerts.audit import entries, export_csv, export_jsonl

    filters = {"user": args.audit_user, "action": args.audit_action}
    with store_from(config_from(args), create=False) as store:
        require(actor_from(store), "audit_read")
        if args.out:
            export = export_csv if args.format == "csv" else export_jsonl
            if args.out == "-":
                n = export(store, sys.stdout, **filters)
            else:
                try:
                    with Path(args.out).open("w", newline="") as fh:
                        n = export(store, fh, **filters)
                except OSError as exc:
                    raise ConfigError(f"cannot write --out {args.out}: {exc}") from None
                print(f"{n} audit record(s) written to {args.out}")
            return 0
        rows = entries(store, limit=args.limit, newest_first=True, **filters)
    t = Table(title=f"newest {len(rows)} audit record(s)")
    for col in ("#", "when (UTC)", "user", "role", "via", "action", "target", "before",
                "after"):
        t.add_column(col, overflow="fold")
    for e in rows:
        t.add_row(str(e.seq), _utc(e.at), e.user, e.role, e.via, e.action, e.target,
                  json.dumps(e.before) if e.before is not None else "",
                  json.dumps(e.after) if e.after is not None else "")
    Console(width=200).print(t)
    return 0


def handle_rotate_secrets(args: argparse.Namespace) -> int:
    from hotline.alerts.secrets_at_rest import rotate_key_file

    out = Path(args.new_key_file).expanduser() if args.new_key_file else None
    with store_from(config_from(args), create=False) as store:
        n, where = rotate_key_file(store, actor_from(store), out)
    print(f"{n} webhook secret(s) re-encrypted; the new key is in {where} "
          "(give it to every host that delivers webhooks from this store)")
    return 0
