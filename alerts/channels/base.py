"""What every delivery channel shares: the notification, the channel interface, the envelope.

A ``Notification`` is what the delivery worker hands a channel: one alert, or a
group of alerts (storm control / digest), with a stable ``message_id`` that is
the idempotency key (the alert id for a single alert). ``cloudevent_bytes``
wraps it in a CloudEvents 1.0 structured JSON envelope (``cloudevents`` library)
whose ``data`` is the versioned alert record (``AlertRecord.to_json``) or, for a
group, ``{"count", "reason", "summary", "alerts": [records]}``, or, for a storm notice of
the storm guard (kind ``storm``), ``{"storm": {source, run, lumi, rule, n_alerts, n_kept,
...}}``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hotline.alerts.records import AlertRecord
from hotline.errors import HotlineError

EVENT_TYPE_ALERT = "org.hotline.alert.v1"
EVENT_TYPE_GROUP = "org.hotline.alert.group.v1"
EVENT_TYPE_STORM = "org.hotline.storm.v1"


class DeliveryError(HotlineError):
    """A notification could not be delivered. ``retryable=False``: do not try again."""

    def __init__(self, message: str, *, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class Notification:
    """One message to one subscription: a single alert or a group of alerts."""

    message_id: str
    sub_id: str
    alerts: list[AlertRecord]
    kind: str = "alert"  #: alert | group | storm (a storm notice: ``storm``, no alerts)
    reason: str = "single"  #: single | storm | digest | storm_guard
    _body: bytes | None = field(default=None, repr=False)
    storm: dict[str, Any] | None = None  #: the storm of a storm notice (``alerts.storms``)

    def summary(self) -> dict[str, Any]:
        """Counts per rule and kind, run/lumi span, time span, most significant alert."""
        rules: dict[str, int] = {}
        kinds: dict[str, int] = {}
        for a in self.alerts:
            rules[a.rule] = rules.get(a.rule, 0) + 1
            kinds[a.kind] = kinds.get(a.kind, 0) + 1
        runs = sorted({a.run for a in self.alerts})
        zs = [(a.significance, a) for a in self.alerts if a.significance is not None]
        top = max(zs, key=lambda za: za[0])[1] if zs else None
        return {
            "count": len(self.alerts), "rules": rules, "kinds": kinds, "runs": runs,
            "lumis": [min(a.lumi for a in self.alerts), max(a.lumi for a in self.alerts)]
            if self.alerts else [],
            "first": min((a.created for a in self.alerts), default=None),
            "last": max((a.created for a in self.alerts), default=None),
            "max_significance": None if top is None else top.significance,
            "top_alert": None if top is None else top.id,
        }

    def title(self) -> str:
        if self.storm is not None:
            st = self.storm
            kept = "?" if st.get("n_kept") is None else st["n_kept"]
            return (f"storm on rule {st['rule']} in LS {st['lumi']} (run {st['run']}): "
                    f"{st['n_alerts']} alerts, {kept} kept")
        if self.kind == "alert" and self.alerts:
            a = self.alerts[0]
            z = "" if a.significance is None else f" Z={a.significance:.2f}"
            return f"{a.kind} alert {a.rule}: run {a.run} ls {a.lumi} event {a.event}{z}"
        s = self.summary()
        ranked = sorted(s["rules"].items(), key=lambda kv: -kv[1])[:3]
        top = ", ".join(f"{r} x{n}" for r, n in ranked)
        why = "alert storm" if self.reason == "storm" else "digest"
        return f"{why}: {s['count']} alerts in run(s) {', '.join(map(str, s['runs'][:5]))} ({top})"

    def data(self) -> dict[str, Any]:
        if self.storm is not None:
            return {"storm": dict(self.storm), "title": self.title()}
        if self.kind == "alert":
            return json.loads(self.alerts[0].to_json())
        return {"count": len(self.alerts), "reason": self.reason, "summary": self.summary(),
                "alerts": [json.loads(a.to_json()) for a in self.alerts]}

    def cloudevent_bytes(self) -> bytes:
        """The CloudEvents 1.0 structured-mode JSON body (cached)."""
        if self._body is None:
            from cloudevents.core.formats.json import JSONFormat
            from cloudevents.core.v1.event import CloudEvent

            if self.storm is not None:
                st = self.storm
                attrs = {
                    "id": self.message_id, "source": f"/hotline/{st['source']}",
                    "type": EVENT_TYPE_STORM, "specversion": "1.0",
                    "time": datetime.fromtimestamp(float(st.get("updated") or 0.0), tz=UTC),
                    "subject": st["rule"], "datacontenttype": "application/json",
                    "hotlinesub": self.sub_id, "hotlineschema": 1,
                }
                self._body = JSONFormat().write(CloudEvent(attrs, self.data()))
                return self._body
            first = self.alerts[0]
            attrs = {
                "id": self.message_id,
                "source": f"/hotline/{first.source}",
                "type": EVENT_TYPE_ALERT if self.kind == "alert" else EVENT_TYPE_GROUP,
                "specversion": "1.0",
                "time": datetime.fromtimestamp(first.created, tz=UTC),
                "subject": first.rule if self.kind == "alert" else f"{len(self.alerts)} alerts",
                "datacontenttype": "application/json",
                "hotlinesub": self.sub_id,
                "hotlineschema": first.schema,
            }
            self._body = JSONFormat().write(CloudEvent(attrs, self.data()))
        return self._body


class Channel(ABC):
    """A way to reach a subscriber. One instance per subscription (may hold connections)."""

    name: str = ""

    @classmethod
    @abstractmethod
    def validate_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the settings; raise ``ConfigError`` naming what is wrong."""

    def __init__(self, subscription: Any) -> None:
        self.subscription = subscription

    @abstractmethod
    def send(self, note: Notification, timeout: float) -> None:
        """Deliver or raise ``DeliveryError``. Must be safe to call from several threads."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
