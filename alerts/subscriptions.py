"""Alert subscriptions: who wants which alerts, through which channel, how often.

A ``Subscription`` is stored in the alert store (table ``subscriptions``) with
its owner, a ``SubscriptionFilter``, a channel name plus channel settings, a
per-subscription Standard Webhooks secret (``whsec_...``, never shown in full:
see :func:`redact_secret`) and its storm-control / rate-limit settings.

Management functions (used by ``hotline subscribe`` and by the dashboard):
:func:`add_subscription`, :func:`list_subscriptions`, :func:`get_subscription`,
:func:`pause_subscription`, :func:`resume_subscription`,
:func:`remove_subscription`, :func:`export_secret`.

Matching is vectorised: :class:`SubscriptionMatcher` turns a batch of alert
records into numpy columns once and evaluates every subscription's filter as a
handful of array comparisons (no per-alert Python loop), so 10,000 alerts x
100 subscriptions costs a few milliseconds.

Filter semantics (all given parts must hold; an empty part matches everything):
``kinds`` (classic|ae|dqm), ``rules`` (exact rule names), ``max_p`` (p-value <=),
``min_significance`` (Z >=), ``min_run``/``max_run`` (inclusive), ``subsystems``
(``payload["subsystem"]``, glob patterns), ``units`` (any of
``payload["units"]`` or ``payload["top_units"][*]["unit"]`` matches any glob pattern,
e.g. ``"DT_*"``), ``object_types`` (AE alerts: the object type the score points to,
``payload["explained_by"]`` -- else ``payload["top_type"]`` -- is listed, e.g. ``muons``
for the muon experts), ``sources`` and
``tags`` (any of ``payload["tags"]`` is listed). Alerts without a p-value never
pass a ``max_p`` / ``min_significance`` cut.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from alerts.records import AlertRecord
from hotline.errors import ConfigError, StoreError

SUBSCRIPTION_COLUMNS = (
    "id", "owner", "name", "filter", "channel", "settings", "secret", "delivery",
    "paused", "created", "updated",
)

SUBSCRIPTION_SCHEMA_SQL = [
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, filter TEXT NOT NULL,
        channel TEXT NOT NULL, settings TEXT NOT NULL, secret TEXT NOT NULL,
        delivery TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)""",
]

SECRET_PREFIX = "whsec_"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class SubscriptionFilter:
    """Which alerts a subscription wants (see the module docstring for semantics)."""

    kinds: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    max_p: float | None = None
    min_significance: float | None = None
    min_run: int | None = None
    max_run: int | None = None
    subsystems: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    object_types: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if v not in ((), None)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubscriptionFilter:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown subscription filter key(s): {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(known))}")
        out: dict[str, Any] = {}
        for k, v in d.items():
            if v is None:
                continue
            if k in ("kinds", "rules", "sources", "subsystems", "units", "tags", "object_types"):
                out[k] = tuple(str(x) for x in ([v] if isinstance(v, str) else v))
            elif k in ("max_p", "min_significance"):
                out[k] = float(v)
            else:
                out[k] = int(v)
        f = cls(**out)
        f.validate()
        return f

    def validate(self) -> None:
        bad = set(self.kinds) - {"classic", "ae", "dqm"}
        if bad:
            raise ConfigError(f"subscription filter: unknown alert kind(s) {sorted(bad)}; "
                              "use classic, ae or dqm")
        known_types = set(_object_types())
        bad = set(self.object_types) - known_types
        if bad:
            raise ConfigError(f"subscription filter: unknown object type(s) {sorted(bad)}; "
                              f"known: {', '.join(_object_types())}")
        if self.max_p is not None and not (0 < self.max_p <= 1):
            raise ConfigError(f"subscription filter: max_p must be in (0, 1], got {self.max_p}")
        if (self.min_run is not None and self.max_run is not None
                and self.min_run > self.max_run):
            raise ConfigError(f"subscription filter: run range {self.min_run}..{self.max_run} "
                              "is empty")

    def describe(self) -> str:
        parts = []
        for k, v in self.to_dict().items():
            parts.append(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}")
        return " ".join(parts) or "all alerts"

    def matches(self, r: AlertRecord) -> bool:
        """Reference (per-alert) implementation; the matcher is the vectorised one."""
        if self.kinds and r.kind not in self.kinds:
            return False
        if self.rules and r.rule not in self.rules:
            return False
        if self.sources and r.source not in self.sources:
            return False
        if self.max_p is not None and not (r.p_value is not None and r.p_value <= self.max_p):
            return False
        if self.min_significance is not None and not (
                r.significance is not None and r.significance >= self.min_significance):
            return False
        if self.min_run is not None and r.run < self.min_run:
            return False
        if self.max_run is not None and r.run > self.max_run:
            return False
        if self.subsystems:
            sub = r.payload.get("subsystem")
            if not isinstance(sub, str) or not any(fnmatch.fnmatchcase(sub, p)
                                                   for p in self.subsystems):
                return False
        if self.units:
            units = alert_units(r.payload)
            if not any(fnmatch.fnmatchcase(u, p) for u in units for p in self.units):
                return False
        if self.tags:
            if not set(_as_str_list(r.payload.get("tags"))) & set(self.tags):
                return False
        if self.object_types and alert_object_type(r.payload) not in self.object_types:
            return False
        return True


@dataclass(frozen=True)
class DeliverySettings:
    """Storm control and rate limit of one subscription (the grouping rule is in delivery.py).

    ``storm_threshold``: this many (or more) undelivered alerts at once go as ONE grouped
    notification. ``max_group``: most alerts in one grouped notification.
    ``storm_window``: after a storm notification, further alerts are held and grouped for
    this many seconds (at most one storm notification per window while the storm lasts).
    ``max_messages`` per ``per_seconds``: rate limit (0 = unlimited); alerts held back by
    the limit are sent together as one digest when the window allows again.
    ``give_up_after``: seconds after the first failed attempt before a notification is
    marked failed; ``timeout``: seconds per attempt.
    """

    storm_threshold: int = 20
    max_group: int = 500
    storm_window: float = 60.0
    max_messages: int = 0
    per_seconds: float = 300.0
    give_up_after: float = 86400.0
    timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeliverySettings:
        known = {f: t for f, t in cls.__dataclass_fields__.items()}
        unknown = set(d) - set(known)
        if unknown:
            raise ConfigError(f"unknown delivery setting(s): {', '.join(sorted(unknown))}")
        default = cls()
        vals = {k: type(getattr(default, k))(v) for k, v in d.items() if v is not None}
        s = cls(**vals)
        if s.storm_threshold < 2 or s.max_group < 1:
            raise ConfigError("delivery settings: storm_threshold must be >= 2, max_group >= 1")
        if (s.max_messages < 0 or s.per_seconds <= 0 or s.timeout <= 0 or s.give_up_after < 0
                or s.storm_window < 0):
            raise ConfigError("delivery settings: rate limit, timeout and give-up must be positive")
        return s


@dataclass(frozen=True)
class Subscription:
    """One subscription as stored. ``secret`` is the full ``whsec_`` secret: never print it."""

    id: str
    owner: str
    name: str
    filter: SubscriptionFilter
    channel: str
    settings: dict[str, Any]
    secret: str = field(repr=False)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    paused: bool = False
    created: float = 0.0
    updated: float = 0.0

    def public_dict(self) -> dict[str, Any]:
        """Everything safe to show (secret redacted, password-like settings hidden)."""
        return {
            "id": self.id, "owner": self.owner, "name": self.name,
            "filter": self.filter.to_dict(), "channel": self.channel,
            "settings": redact_settings(self.settings), "secret": redact_secret(self.secret),
            "delivery": self.delivery.to_dict(), "paused": self.paused,
            "created": self.created, "updated": self.updated,
        }

    def target(self) -> str:
        """The destination in one short string (URL without query, address, topic)."""
        s = self.settings
        if self.channel == "webhook":
            u = urlsplit(s.get("url", ""))
            return f"{u.scheme}://{u.netloc}{u.path}"
        if self.channel == "email":
            return ",".join(s.get("to", []))
        if self.channel == "kafka":
            return s.get("topic", "")
        return ""


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def redact_secret(secret: str) -> str:
    """``whsec_…`` plus nothing that helps guessing: the secret itself is never shown."""
    return f"{SECRET_PREFIX}…" if secret else ""


_SENSITIVE = re.compile(r"pass|secret|token|key|credential", re.I)


def redact_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in settings.items():
        if _SENSITIVE.search(k) and not k.endswith("_env"):
            out[k] = "…"
        elif k == "url" and isinstance(v, str):
            u = urlsplit(v)
            out[k] = f"{u.scheme}://{u.netloc}{u.path}" + ("?…" if u.query else "")
        else:
            out[k] = v
    return out


def alert_units(payload: dict[str, Any]) -> list[str]:
    """Hardware units an alert names: ``payload["units"]`` and ``payload["top_units"][*]["unit"]``
    (the DQM conv-AE alerts list their most significant units there)."""
    units = _as_str_list(payload.get("units"))
    top = payload.get("top_units")
    if isinstance(top, list):
        units += [str(t["unit"]) for t in top if isinstance(t, dict) and "unit" in t]
    return units


def _as_str_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, (list, tuple, set)):
        return [str(x) for x in v]
    return [str(v)]


def validate_webhook_url(url: str) -> str:
    """Accept only http(s) URLs with a host and no user:password part; return it."""
    if not isinstance(url, str) or not url or any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(f"webhook URL {url!r} is empty or contains spaces/control characters")
    try:
        u = urlsplit(url)
        port = u.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"webhook URL is malformed: {exc}") from None
    if u.scheme not in ("http", "https"):
        raise ConfigError(f"webhook URL scheme must be http or https, got '{u.scheme}:'")
    if "@" in u.netloc or u.username or u.password:
        raise ConfigError("webhook URL must not contain credentials (user:password@); "
                          "receivers authenticate the sender with the webhook signature")
    if not u.hostname:
        raise ConfigError(f"webhook URL has no host: {u.scheme}://{u.netloc}{u.path}")
    if u.fragment:
        raise ConfigError("webhook URL must not contain a #fragment")
    del port
    return url


# --------------------------------------------------------------------------- storage


def ensure_schema(store: Any) -> None:
    """Create the subscription tables (idempotent) in a ``SQLAlertStore``."""
    with store.transaction() as cur:
        for stmt in SUBSCRIPTION_SCHEMA_SQL:
            cur.execute(stmt.format(autoinc=store.autoinc, blob=store.blob))


def _row_sub(row: Sequence[Any]) -> Subscription:
    d = dict(zip(SUBSCRIPTION_COLUMNS, row))
    return Subscription(
        id=d["id"], owner=d["owner"], name=d["name"],
        filter=SubscriptionFilter.from_dict(json.loads(d["filter"])),
        channel=d["channel"], settings=json.loads(d["settings"]), secret=d["secret"],
        delivery=DeliverySettings.from_dict(json.loads(d["delivery"])),
        paused=bool(d["paused"]), created=float(d["created"]), updated=float(d["updated"]),
    )


def add_subscription(
    store: Any,
    *,
    owner: str,
    channel: str,
    settings: dict[str, Any],
    filter: SubscriptionFilter | dict[str, Any] | None = None,  # noqa: A002
    delivery: DeliverySettings | dict[str, Any] | None = None,
    name: str = "",
    secret: str | None = None,
    paused: bool = False,
) -> Subscription:
    """Validate and store a new subscription; returns it (with its full secret)."""
    from alerts.channels import get_channel
    from alerts.outbox import install_outbox

    install_outbox(store)
    if not owner or not owner.strip():
        raise ConfigError("a subscription needs an owner (who to ask about it)")
    flt = filter if isinstance(filter, SubscriptionFilter) else SubscriptionFilter.from_dict(
        filter or {})
    flt.validate()
    dl = delivery if isinstance(delivery, DeliverySettings) else DeliverySettings.from_dict(
        delivery or {})
    settings = get_channel(channel).validate_settings(dict(settings))
    if secret is None:
        secret = new_secret()
    elif not secret.startswith(SECRET_PREFIX):
        raise ConfigError("a webhook secret must start with 'whsec_' followed by base64")
    else:
        try:
            if not base64.b64decode(secret[len(SECRET_PREFIX):] + "==", validate=False):
                raise ValueError
        except ValueError:
            raise ConfigError("the webhook secret after 'whsec_' is not valid base64") from None
    now = time.time()
    sub = Subscription(
        id="sub_" + uuid.uuid4().hex[:12], owner=owner.strip(), name=name or channel,
        filter=flt, channel=channel, settings=settings, secret=secret, delivery=dl,
        paused=paused, created=now, updated=now,
    )
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(
            f"INSERT INTO subscriptions ({','.join(SUBSCRIPTION_COLUMNS)}) "
            f"VALUES ({','.join([ph] * len(SUBSCRIPTION_COLUMNS))})",
            (sub.id, sub.owner, sub.name, json.dumps(flt.to_dict()), channel,
             json.dumps(settings), secret, json.dumps(dl.to_dict()), int(paused), now, now),
        )
    return sub


def list_subscriptions(store: Any, owner: str | None = None,
                       include_paused: bool = True) -> list[Subscription]:
    from alerts.outbox import install_outbox

    install_outbox(store)
    sql = f"SELECT {','.join(SUBSCRIPTION_COLUMNS)} FROM subscriptions"
    clauses, args = [], []
    if owner is not None:
        clauses.append(f"owner = {store.ph}")
        args.append(owner)
    if not include_paused:
        clauses.append("paused = 0")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    with store.transaction() as cur:
        cur.execute(sql + " ORDER BY created, id", args)
        return [_row_sub(r) for r in cur.fetchall()]


def get_subscription(store: Any, sub_id: str) -> Subscription:
    from alerts.outbox import install_outbox

    install_outbox(store)
    with store.transaction() as cur:
        cur.execute(f"SELECT {','.join(SUBSCRIPTION_COLUMNS)} FROM subscriptions "
                    f"WHERE id = {store.ph}", [sub_id])
        row = cur.fetchone()
    if row is None:
        raise StoreError(f"no subscription '{sub_id}' in {store.url}; "
                         "see `hotline subscribe list`")
    return _row_sub(row)


def _set_paused(store: Any, sub_id: str, paused: bool) -> Subscription:
    get_subscription(store, sub_id)
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(f"UPDATE subscriptions SET paused = {ph}, updated = {ph} WHERE id = {ph}",
                    [int(paused), time.time(), sub_id])
    return get_subscription(store, sub_id)


def pause_subscription(store: Any, sub_id: str) -> Subscription:
    """Hold deliveries; matching alerts keep queueing and go out (grouped) on resume."""
    return _set_paused(store, sub_id, True)


def resume_subscription(store: Any, sub_id: str, retry_failed: bool = False) -> Subscription:
    """Deliver again; with ``retry_failed`` also re-queue notifications that gave up."""
    sub = _set_paused(store, sub_id, False)
    if retry_failed:
        from alerts.outbox import requeue_failed

        requeue_failed(store, sub_id)
    return sub


def remove_subscription(store: Any, sub_id: str) -> None:
    """Delete the subscription, its queued alerts and its delivery log."""
    get_subscription(store, sub_id)
    ph = store.ph
    with store.transaction() as cur:
        cur.execute(f"DELETE FROM outbox WHERE sub_id = {ph}", [sub_id])
        cur.execute(f"DELETE FROM deliveries WHERE sub_id = {ph}", [sub_id])
        cur.execute(f"DELETE FROM subscriptions WHERE id = {ph}", [sub_id])


def export_secret(store: Any, sub_id: str) -> str:
    """The full ``whsec_`` secret, for handing to the receiver (write it to a 0600 file)."""
    return get_subscription(store, sub_id).secret


def subscription_overview(store: Any, owner: str | None = None) -> list[dict[str, Any]]:
    """For tables (dashboard, CLI): each subscription's safe fields plus its delivery counts
    (messages sent/failed/pending/retried, attempts, alerts sent/failed/queued) and last error.
    """
    from alerts.outbox import delivery_stats, last_errors

    stats = delivery_stats(store)
    out = []
    for s in list_subscriptions(store, owner=owner):
        d = s.public_dict()
        d["target"] = s.target()
        d["filter_text"] = s.filter.describe()
        d["stats"] = stats.get(s.id, {})
        d["last_error"] = last_errors(store, s.id)
        out.append(d)
    return out


def update_delivery_settings(store: Any, sub_id: str, **changes: Any) -> Subscription:
    sub = get_subscription(store, sub_id)
    dl = DeliverySettings.from_dict({**sub.delivery.to_dict(), **changes})
    with store.transaction() as cur:
        cur.execute(f"UPDATE subscriptions SET delivery = {store.ph}, updated = {store.ph} "
                    f"WHERE id = {store.ph}", [json.dumps(dl.to_dict()), time.time(), sub_id])
    return replace(sub, delivery=dl)


# --------------------------------------------------------------------------- matching


class SubscriptionMatcher:
    """Vectorised matching of alert batches against many subscriptions."""

    def __init__(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions = list(subscriptions)

    def match(self, records: Sequence[AlertRecord]) -> list[tuple[str, np.ndarray]]:
        """For each subscription with matches: (sub id, indices into ``records``)."""
        n = len(records)
        if n == 0 or not self.subscriptions:
            return []
        cols = _Columns(records)
        out = []
        for sub in self.subscriptions:
            m = cols.mask(sub.filter)
            idx = np.flatnonzero(m)
            if idx.size:
                out.append((sub.id, idx))
        return out


class _Columns:
    """Alert batch as numpy columns; string columns as codes into small vocabularies."""

    def __init__(self, records: Sequence[AlertRecord]) -> None:
        n = len(records)
        self.n = n
        self.p = np.array([np.nan if r.p_value is None else r.p_value for r in records], float)
        self.z = np.array([np.nan if r.significance is None else r.significance
                           for r in records], float)
        self.run = np.fromiter((r.run for r in records), np.int64, n)
        self._str = {
            "kind": [r.kind for r in records],
            "rule": [r.rule for r in records],
            "source": [r.source for r in records],
            "subsystem": [s if isinstance(s := r.payload.get("subsystem"), str) else ""
                          for r in records],
            "object_type": [alert_object_type(r.payload) for r in records],
        }
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lists = {
            "units": [alert_units(r.payload) for r in records],
            "tags": [_as_str_list(r.payload.get("tags")) for r in records],
        }
        self._flat: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    def _coded(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._codes:
            vocab, codes = np.unique(np.array(self._str[name], dtype=object).astype(str),
                                     return_inverse=True)
            self._codes[name] = (vocab, codes)
        return self._codes[name]

    def _flatlist(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if name not in self._flat:
            lists = self._lists[name]
            counts = np.fromiter((len(x) for x in lists), np.int64, self.n)
            flat = [u for x in lists for u in x]
            owner = np.repeat(np.arange(self.n), counts)
            if flat:
                vocab, codes = np.unique(np.array(flat, dtype=str), return_inverse=True)
            else:
                vocab, codes = np.array([], dtype=str), np.array([], dtype=np.int64)
            self._flat[name] = (vocab, codes, owner)
        return self._flat[name]

    def _in(self, name: str, patterns: tuple[str, ...], glob: bool) -> np.ndarray:
        key = (name, patterns, glob)
        if key not in self._cache:
            vocab, codes = self._coded(name)
            ok = np.array([v != "" and _any_match(str(v), patterns, glob) for v in vocab],
                          bool)
            self._cache[key] = ok[codes]
        return self._cache[key]

    def _any_in(self, name: str, patterns: tuple[str, ...], glob: bool) -> np.ndarray:
        key = (name, patterns, glob)
        if key not in self._cache:
            vocab, codes, owner = self._flatlist(name)
            ok = np.array([_any_match(str(v), patterns, glob) for v in vocab], bool)
            m = np.zeros(self.n, bool)
            if codes.size:
                m[owner[ok[codes]]] = True
            self._cache[key] = m
        return self._cache[key]

    def mask(self, f: SubscriptionFilter) -> np.ndarray:
        m = np.ones(self.n, bool)
        if f.kinds:
            m &= self._in("kind", f.kinds, False)
        if f.rules:
            m &= self._in("rule", f.rules, False)
        if f.sources:
            m &= self._in("source", f.sources, False)
        if f.max_p is not None:
            with np.errstate(invalid="ignore"):
                m &= self.p <= f.max_p
        if f.min_significance is not None:
            with np.errstate(invalid="ignore"):
                m &= self.z >= f.min_significance
        if f.min_run is not None:
            m &= self.run >= f.min_run
        if f.max_run is not None:
            m &= self.run <= f.max_run
        if f.subsystems:
            m &= self._in("subsystem", f.subsystems, True)
        if f.units:
            m &= self._any_in("units", f.units, True)
        if f.tags:
            m &= self._any_in("tags", f.tags, False)
        if f.object_types:
            m &= self._in("object_type", f.object_types, False)
        return m


def _object_types() -> list[str]:
    from detectors.spec import DEFAULT_SPEC

    return list(DEFAULT_SPEC.object_types)


def alert_object_type(payload: dict[str, Any]) -> str:
    """The object type an AE alert's score points to ('' for other alerts)."""
    t = payload.get("explained_by") or payload.get("top_type")
    return t if isinstance(t, str) else ""


def _any_match(value: str, patterns: tuple[str, ...], glob: bool) -> bool:
    if glob:
        return any(fnmatch.fnmatchcase(value, p) for p in patterns)
    return value in patterns


__all__ = [
    "DeliverySettings", "Subscription", "SubscriptionFilter", "SubscriptionMatcher",
    "add_subscription", "ensure_schema", "export_secret", "get_subscription",
    "list_subscriptions", "new_secret", "pause_subscription", "redact_secret",
    "redact_settings", "remove_subscription", "resume_subscription",
    "subscription_overview", "alert_units", "alert_object_type", "update_delivery_settings",
    "validate_webhook_url",
]
