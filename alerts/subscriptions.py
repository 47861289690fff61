"""Alert subscriptions: who wants which alerts, through which channel, how often.

A ``Subscription`` is stored in the alert store (table ``subscriptions``) with
its owner, a ``SubscriptionFilter``, a channel name plus channel settings, a
per-subscription Standard Webhooks secret (``whsec_...``, never shown in full:
see :func:`redact_secret`; encrypted in the table, ``alerts.secrets_at_rest``) and its
storm-control / rate-limit settings.

Managing stored subscriptions (add, list, pause, ...) is ``alerts.subscription_store``;
this module is the model, its validation, the table schema and the matcher.

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from hotline.alerts.records import AlertRecord
from hotline.errors import ConfigError

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
    ``storm_guard``: True (default): past the storm guard's threshold (``alerts.storms``)
    the subscription gets the sampled alerts and one storm notice per storm ("storm on rule
    X in LS Y: N alerts, M kept"); False: it opts out and gets every alert its filter
    matches, the listed ones as records without objects (``alerts.outbox``).
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
    storm_guard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeliverySettings:
        known = {f: t for f, t in cls.__dataclass_fields__.items()}
        unknown = set(d) - set(known)
        if unknown:
            raise ConfigError(f"unknown delivery setting(s): {', '.join(sorted(unknown))}")
        default = cls()
        vals = {k: _as_bool(v, k) if isinstance(getattr(default, k), bool)
                else type(getattr(default, k))(v) for k, v in d.items() if v is not None}
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


def _as_bool(v: Any, name: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.lower() in ("true", "1", "yes")
    raise ConfigError(f"delivery setting {name} must be true or false, got {v!r:.40}")


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
    """Create the subscription tables (idempotent) in a ``SQLAlertStore``; plain-text
    secrets of an older store are sealed (``secrets_at_rest.seal_plaintext``)."""
    from hotline.alerts.secrets_at_rest import seal_plaintext

    with store.transaction() as cur:
        for stmt in SUBSCRIPTION_SCHEMA_SQL:
            cur.execute(stmt.format(autoinc=store.autoinc, blob=store.blob))
        seal_plaintext(store, cur)


def _row_sub(row: Sequence[Any], reveal: bool = True) -> Subscription:
    """A stored row as a ``Subscription``; its secret opened (``secrets_at_rest``) if
    ``reveal``, else left sealed (matching and listing never need it, nor the key)."""
    from hotline.alerts.secrets_at_rest import open_secret

    d = dict(zip(SUBSCRIPTION_COLUMNS, row))
    secret = (open_secret(d["secret"], f"the secret of subscription {d['id']}") if reveal
              else d["secret"])
    return Subscription(
        id=d["id"], owner=d["owner"], name=d["name"],
        filter=SubscriptionFilter.from_dict(json.loads(d["filter"])),
        channel=d["channel"], settings=json.loads(d["settings"]), secret=secret,
        delivery=DeliverySettings.from_dict(json.loads(d["delivery"])),
        paused=bool(d["paused"]), created=float(d["created"]), updated=float(d["updated"]),
    )


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
    from hotline.detectors.spec import DEFAULT_SPEC

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
    "alert_object_type", "alert_units", "ensure_schema", "new_secret", "redact_secret",
    "redact_settings", "validate_webhook_url",
]
