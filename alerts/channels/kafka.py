"""Kafka channel: one topic per subscription (distributed deployment), via kafka-python.

Settings: ``bootstrap`` (``host:port[,host:port]``; ``kafka://`` prefix accepted) and
``topic`` (default ``hotline.sub.<subscription id>``). Each notification is one
record: key = the idempotency key (alert id / group id), value = the CloudEvents 1.0
JSON envelope, headers ``content-type`` and ``webhook-id``. A send waits for the
broker's acknowledgement (acks=all) before the notification counts as sent.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from hotline.alerts.channels.base import Channel, DeliveryError, Notification
from hotline.errors import ConfigError

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class KafkaChannel(Channel):
    name = "kafka"

    @classmethod
    def validate_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - {"bootstrap", "topic"}
        if unknown:
            raise ConfigError(f"kafka settings: unknown key(s) {sorted(unknown)}; "
                              "known: bootstrap, topic")
        boot = str(settings.get("bootstrap", "")).removeprefix("kafka://")
        if not boot or "@" in boot or "/" in boot:
            raise ConfigError("kafka settings: 'bootstrap' must be host:port[,host:port]")
        out = {"bootstrap": boot}
        if "topic" in settings:
            if not _TOPIC.match(str(settings["topic"])):
                raise ConfigError(f"kafka settings: {settings['topic']!r} is not a valid topic "
                                  "name (letters, digits, . _ -)")
            out["topic"] = str(settings["topic"])
        return out

    def __init__(self, subscription: Any) -> None:
        super().__init__(subscription)
        self.topic = subscription.settings.get("topic") or f"hotline.sub.{subscription.id}"
        self._producer = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""

    def _get_producer(self, timeout: float) -> Any:
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                if time.monotonic() < self._down_until:
                    # a connect attempt just failed: fail fast instead of queueing every
                    # notification behind another slow bootstrap attempt
                    raise DeliveryError(f"kafka broker unavailable ({self._down_reason})")
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.subscription.settings["bootstrap"].split(","),
                        acks="all", request_timeout_ms=int(timeout * 1000),
                        max_block_ms=int(timeout * 1000), retries=0, linger_ms=5,
                        bootstrap_timeout_ms=int(timeout * 1000),
                    )
                except Exception as exc:  # noqa: BLE001
                    self._down_until = time.monotonic() + min(timeout, 5.0)
                    self._down_reason = type(exc).__name__
                    raise
            return self._producer

    def send(self, note: Notification, timeout: float) -> None:
        try:
            producer = self._get_producer(timeout)
        except DeliveryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DeliveryError(f"kafka topic {self.topic}: cannot connect to the broker: "
                                f"{type(exc).__name__}") from None
        try:
            fut = producer.send(
                self.topic, key=note.message_id.encode(), value=note.cloudevent_bytes(),
                headers=[("content-type", b"application/cloudevents+json"),
                         ("webhook-id", note.message_id.encode())],
            )
            fut.get(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - any broker problem is a retryable failure
            # the producer reconnects by itself once the broker is back; keep it
            raise DeliveryError(f"kafka topic {self.topic}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
