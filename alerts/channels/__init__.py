"""Delivery channels for alert subscriptions, and their registry.

- ``alerts.channels.base``: ``Notification``, ``Channel``, ``DeliveryError``, the CloudEvents body.
- ``alerts.channels.webhook``: Standard Webhooks signed HTTP POST (+ ``verify_webhook`` helper).
- ``alerts.channels.email``: SMTP, plain text + HTML with dashboard links.
- ``alerts.channels.kafka``: one Kafka topic per subscription (kafka-python).

A new channel is a ``Channel`` subclass plus ``register_channel("name", TheClass)``.
"""

from __future__ import annotations

from hotline.errors import ConfigError

CHANNELS: dict[str, type] = {}


def register_channel(name: str, cls: type) -> None:
    """Make channel ``name`` available to subscriptions; duplicates are refused."""
    if name in CHANNELS:
        raise ConfigError(f"delivery channel '{name}' is already registered")
    CHANNELS[name] = cls


def register_builtins() -> None:
    """Register webhook, email and kafka (idempotent)."""
    from alerts.channels.email import EmailChannel
    from alerts.channels.kafka import KafkaChannel
    from alerts.channels.webhook import WebhookChannel

    for name, cls in (("webhook", WebhookChannel), ("email", EmailChannel),
                      ("kafka", KafkaChannel)):
        if name not in CHANNELS:
            register_channel(name, cls)


def get_channel(name: str) -> type:
    register_builtins()
    try:
        return CHANNELS[name]
    except KeyError:
        raise ConfigError(f"unknown delivery channel '{name}'; "
                          f"available: {', '.join(available_channels())}") from None


def available_channels() -> list[str]:
    register_builtins()
    return sorted(CHANNELS)


__all__ = ["CHANNELS", "available_channels", "get_channel", "register_builtins",
           "register_channel"]
