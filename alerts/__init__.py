"""Hotline rules, alert records and the durable alert store.

- ``alerts.rules``: classic cut-based rules as configuration (the Exotica Hotline menu).
- ``alerts.records``: ``AlertRecord`` (stable ids), ``LumiSummary``, ``DeadLetter``.
- ``alerts.store``: the ``AlertStore`` interface, SQLite backend, ``open_store``.
- ``alerts.store_postgres``: the PostgreSQL backend.
- ``alerts.ae_rule``: the anomaly-score (autoencoder) hotline rule.
- ``stream.sink``: Kafka ``hotline.alerts`` -> alert store.
- ``alerts.subscriptions``: who wants which alerts (filters, channels, rate limits).
- ``alerts.outbox``: deliveries queued in the same transaction as the alert; delivery log.
- ``alerts.delivery``: the delivery worker (retries, backoff, storm grouping, digests).
- ``alerts.channels``: webhook (Standard Webhooks + CloudEvents), e-mail, Kafka topic.
"""

__all__: list[str] = []
