"""Who may write what: roles, actors, the role x action policy, and the role grants.

One policy for every write path (the dashboard's handlers and the CLI commands against a
shared store); each write function of the alerts layer takes the ``Actor`` doing it and
calls ``require(actor, action)`` before touching the store, so the check happens where
the write happens, never only in a page or an argument parser.

Roles, lowest to highest (each role may do what the roles below it may):

* ``guest`` - reads everything (redacted where a value is a secret).
* ``shifter`` - acknowledges alerts and lumisection flags, runs the automatic assessment.
* ``expert`` - overrides certification flags, sets the reference run, manages
  subscriptions (and exports their signing secrets).
* ``admin`` - starts and stops replays, re-drives dead letters, grants roles, sets the
  webhook allow-list, rotates the secrets key.

Roles come from groups (the identity provider's ``groups`` claim for single sign-on, the
Unix groups of the OS account for the CLI) and user names, through the mapping stored in
the store's ``access_roles`` table (``grant`` / ``revoke``; ``hotline access grant``), so
the dashboard and every CLI against the same store see one mapping. A user's role is the
highest of the roles granted to the user and to any of the user's groups.

A store without any grant is *open* (a laptop, a fresh store): a local identity (the OS
account of the CLI, a basic-auth login to the dashboard) is ``admin`` there, while a
single-sign-on identity stays ``guest`` until an admin grants roles. The first grant closes
the store. Anonymous dashboard visitors are always ``guest``.

Trust boundary: whoever holds the store's database credentials can write to it directly;
these checks govern the Hotline tools (dashboard, CLI) that people use, and the audit log
(``alerts.audit``) is append-only in the database itself.
"""

from __future__ import annotations

import getpass
import grp
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hotline.errors import ConfigError, HotlineError

__all__ = ["ACCESS_SCHEMA_SQL", "ACTIONS", "ROLES", "AccessDenied", "Actor", "Grant",
           "SETTINGS", "SYSTEM", "allowed", "cli_actor", "get_setting", "grant", "grants",
           "is_open", "minimum_role", "os_groups", "os_user", "rank", "require",
           "resolve_role", "revoke", "set_setting"]

#: the roles, lowest first
ROLES = ("guest", "shifter", "expert", "admin")

#: every write action and the lowest role allowed to do it
ACTIONS: dict[str, str] = {
    "ack_alert": "shifter",
    "ack_flag": "shifter",
    "assess_run": "shifter",
    "override_flags": "expert",
    "set_reference": "expert",
    "subscription_add": "expert",
    "subscription_pause": "expert",
    "subscription_resume": "expert",
    "subscription_remove": "expert",
    "subscription_update": "expert",
    "subscription_secret": "expert",
    "replay_start": "admin",
    "replay_stop": "admin",
    "deadletter_redrive": "admin",
    "access_grant": "admin",
    "access_revoke": "admin",
    "config_set": "admin",
    "secrets_rotate": "admin",
    # not a write, but restricted: the audit log names people and what they did
    "audit_read": "expert",
}

ACCESS_SCHEMA_SQL = [
    """CREATE TABLE IF NOT EXISTS access_roles (
        kind TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
        granted_by TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, name))""",
    """CREATE TABLE IF NOT EXISTS access_settings (
        name TEXT PRIMARY KEY, value TEXT NOT NULL, set_by TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL)""",
]

#: settings an admin may store (``set_setting``) and what they hold
SETTINGS = {
    "webhook_allow": "webhook targets allowed (``alerts.outbound``): host globs, IPs, CIDRs",
}


class AccessDenied(HotlineError):
    """A write refused by the role policy (one line: who, their role, what, what it needs)."""


def rank(role: str) -> int:
    """0 (guest) .. 3 (admin); ``ConfigError`` naming an unknown role."""
    try:
        return ROLES.index(role)
    except ValueError:
        raise ConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}") from None


def minimum_role(action: str) -> str:
    """The lowest role allowed to do ``action``; ``ConfigError`` for an unknown action."""
    try:
        return ACTIONS[action]
    except KeyError:
        raise ConfigError(f"unknown write action {action!r}; actions: "
                          f"{', '.join(sorted(ACTIONS))}") from None


def allowed(role: str, action: str) -> bool:
    """May a user with ``role`` do ``action``?"""
    return rank(role) >= rank(minimum_role(action))


@dataclass(frozen=True)
class Actor:
    """Who is writing: user name, resolved role, where from (``dashboard``, ``cli``,
    ``system``) and the groups the role was resolved from."""

    user: str
    role: str
    via: str = "cli"
    groups: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        rank(self.role)
        if not self.user or not self.user.strip():
            raise ConfigError("an actor needs a user name")

    def may(self, action: str) -> bool:
        return allowed(self.role, action)


#: the pipeline itself (alerts, summaries, automatic flags written by a service)
SYSTEM = Actor("hotline", "admin", "system")


def require(actor: Actor, action: str) -> None:
    """Raise ``AccessDenied`` unless ``actor`` may do ``action``."""
    need = minimum_role(action)
    if rank(actor.role) < rank(need):
        raise AccessDenied(f"user {actor.user!r} ({actor.role}) may not {action.replace('_', ' ')}"
                           f": that needs the {need} role")


# --------------------------------------------------------------------------- grants


@dataclass(frozen=True)
class Grant:
    """One row of the mapping: a ``user`` or ``group`` name and its role."""

    kind: str
    name: str
    role: str
    granted_by: str
    at: float


def grants(store: Any) -> list[Grant]:
    """The role mapping stored in ``store``, by kind and name."""
    with store.transaction() as cur:
        cur.execute("SELECT kind, name, role, granted_by, at FROM access_roles "
                    "ORDER BY kind, name")
        return [Grant(k, n, r, b, float(a)) for k, n, r, b, a in cur.fetchall()]


def is_open(store: Any) -> bool:
    """True while no role was ever granted in ``store`` (see the module docstring)."""
    return not grants(store)


def _check_kind_name(kind: str, name: str) -> str:
    if kind not in ("user", "group"):
        raise ConfigError(f"grant kind {kind!r}: use user or group")
    name = (name or "").strip()
    if not name or any(c.isspace() for c in name):
        raise ConfigError(f"{kind} name {name!r} is empty or contains spaces")
    return name


def grant(store: Any, actor: Actor, kind: str, name: str, role: str) -> Grant:
    """Map ``kind`` (``user`` or ``group``) ``name`` to ``role`` (admin only; audited)."""
    from hotline.alerts.audit import append

    require(actor, "access_grant")
    name = _check_kind_name(kind, name)
    rank(role)
    ph = store.ph
    now = time.time()
    with store.transaction() as cur:
        cur.execute(f"SELECT role FROM access_roles WHERE kind = {ph} AND name = {ph}",
                    (kind, name))
        row = cur.fetchone()
        if row is None:
            cur.execute("INSERT INTO access_roles (kind, name, role, granted_by, at) "
                        f"VALUES ({ph},{ph},{ph},{ph},{ph})",
                        (kind, name, role, actor.user, now))
        else:
            cur.execute(f"UPDATE access_roles SET role = {ph}, granted_by = {ph}, at = {ph} "
                        f"WHERE kind = {ph} AND name = {ph}",
                        (role, actor.user, now, kind, name))
        append(cur, store, actor, "access_grant", f"{kind}:{name}",
               None if row is None else {"role": row[0]}, {"role": role})
    return Grant(kind, name, role, actor.user, now)


def revoke(store: Any, actor: Actor, kind: str, name: str) -> None:
    """Remove the mapping of ``kind`` ``name`` (admin only; audited)."""
    from hotline.alerts.audit import append

    require(actor, "access_revoke")
    name = _check_kind_name(kind, name)
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(f"SELECT role FROM access_roles WHERE kind = {ph} AND name = {ph}",
                    (kind, name))
        row = cur.fetchone()
        if row is None:
            raise ConfigError(f"no role is granted to {kind} {name!r}; see `hotline access "
                              "list`")
        cur.execute(f"DELETE FROM access_roles WHERE kind = {ph} AND name = {ph}", (kind, name))
        append(cur, store, actor, "access_revoke", f"{kind}:{name}", {"role": row[0]}, None)


def get_setting(store: Any, name: str, default: Any = None) -> Any:
    """A stored setting (JSON value), ``default`` when never set."""
    with store.transaction() as cur:
        cur.execute(f"SELECT value FROM access_settings WHERE name = {store.ph}", (name,))
        row = cur.fetchone()
    return default if row is None else json.loads(row[0])


def set_setting(store: Any, actor: Actor, name: str, value: Any) -> None:
    """Store setting ``name`` (admin only, ``config_set``; audited with before and after)."""
    from hotline.alerts.audit import append

    require(actor, "config_set")
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}; settings: {', '.join(sorted(SETTINGS))}")
    ph = store.ph
    text = json.dumps(value, sort_keys=True)
    with store.transaction() as cur:
        cur.execute(f"SELECT value FROM access_settings WHERE name = {ph}", (name,))
        row = cur.fetchone()
        if row is None:
            cur.execute("INSERT INTO access_settings (name, value, set_by, at) "
                        f"VALUES ({ph},{ph},{ph},{ph})", (name, text, actor.user, time.time()))
        else:
            cur.execute(f"UPDATE access_settings SET value = {ph}, set_by = {ph}, at = {ph} "
                        f"WHERE name = {ph}", (text, actor.user, time.time(), name))
        append(cur, store, actor, "config_set", name,
               None if row is None else json.loads(row[0]), value)


def resolve_role(store: Any, user: str, groups: Iterable[str] = (),
                 local: bool = False) -> tuple[str, str]:
    """(role, why) of ``user`` with ``groups``: the highest role granted to the user or to
    one of the groups; ``guest`` when none is. ``local``: an identity this machine vouches
    for (OS account, basic-auth login), which is ``admin`` while the store is open."""
    mapping = grants(store)
    if not mapping:
        if local:
            return "admin", "no roles are granted in this store yet (open store)"
        return "guest", "no roles are granted in this store yet"
    best, why = "guest", f"no role granted to user {user!r} or its groups"
    gset = set(groups)
    for g in mapping:
        if (g.kind == "user" and g.name == user) or (g.kind == "group" and g.name in gset):
            if rank(g.role) > rank(best):
                best, why = g.role, f"{g.kind} {g.name!r} has the {g.role} role"
    return best, why


def os_groups() -> tuple[str, ...]:
    """Names of the Unix groups of this process (the CLI's groups)."""
    names = []
    for gid in sorted({os.getgid(), *os.getgroups()}):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    return tuple(names)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def cli_actor(store: Any, user: str | None = None,
              groups: Sequence[str] | None = None) -> Actor:
    """The actor of a CLI command: the OS account and its Unix groups, role from ``store``.

    ``user``/``groups`` replace the OS values (tests, service wrappers); the role always
    comes from the store's mapping."""
    name = user or os_user()
    gs = tuple(groups) if groups is not None else os_groups()
    role, _ = resolve_role(store, name, gs, local=True)
    return Actor(name, role, "cli", gs)
