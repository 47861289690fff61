"""Delivery channels for alert subscriptions, and their registry.

- ``alerts.channels.base``: ``Notification``, ``Channel``, ``DeliveryError``, the CloudEvents body.
- ``alerts.channels.webhook``: Standard Webhooks signed HTTP POST (+ ``verify_webhook`` helper).
- ``alerts.channels.email``: SMTP, plain text + HTML with dashboard links.
- ``alerts.channels.kafka``: one Kafka topic per subscription (kafka-python).

A new channel is a ``Channel`` subclass plus ``register_channel("name", TheClass)``.
"""

from __future__ import annotations

from hotline.alerts.channels.base import Channel
from hotline.registry import Registry


def _builtin_channels() -> list[tuple[str, type[Channel]]]:
    from hotline.alerts.channels.email import EmailChannel
    from hotline.alerts.channels.kafka import KafkaChannel
    from hotline.alerts.channels.webhook import WebhookChannel

    return [("webhook", WebhookChannel), ("email", EmailChannel), ("kafka", KafkaChannel)]


CHANNELS: Registry[type[Channel]] = Registry("delivery channel", _builtin_channels)


def register_channel(name: str, cls: type[Channel]) -> None:
    """Make channel ``name`` available to subscriptions; duplicates are refused."""
    CHANNELS.register(name, cls)


def register_builtins() -> None:
    """Register webhook, email and kafka (idempotent; lookups do it by themselves)."""
    CHANNELS.available()


def get_channel(name: str) -> type[Channel]:
    return CHANNELS.get(name)


def available_channels() -> list[str]:
    return CHANNELS.available()


__all__ = ["CHANNELS", "available_channels", "get_channel", "register_builtins",
           "register_channel"]
