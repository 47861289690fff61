"""Hotline rules, alert records, the durable alert store, subscriptions and their delivery.

Rules and records:

- ``alerts.rules``: the rule protocol and the classic cut-based rule kinds.
- ``alerts.ae_rule``: the anomaly-score (autoencoder) hotline rule.
- ``alerts.l1_agreement``: firmware-vs-serving agreement per lumisection (per L1 seed,
  correlation, largest differences) and the divergence alarm (DQM-kind alerts).
- ``alerts.menu``: rule menus: the rule-kind registry and the Exotica Hotline menu.
- ``alerts.records``: ``AlertRecord`` (stable ids), ``LumiSummary``, ``DeadLetter``.
- ``alerts.storms``: the storm guard (per rule per lumisection: a threshold, then a
  deterministic sample), storm records and the store's view of a storm.
- ``alerts.lumi_status``: the run-status vocabulary (findings, lumisection status, flags).

Run status and certification:

- ``alerts.statistics``: exact Poisson / binomial / beta-binomial tails, multiple testing,
  the CUSUM persistence test and its bound.
- ``alerts.reference``: expectations: the model card's AE thresholds and the expert's
  reference run (stored with provenance).
- ``alerts.distribution_checks``: each lumisection's histograms against the reference
  (two-sample chi2 per lumisection and sliding window, region scan, localisation).
- ``alerts.run_status``: the engine: green / amber / red per lumisection, range and run.
- ``alerts.certification``: lumisection flags, expert overrides, CMS golden JSON.
- ``alerts.acknowledgements``: the crew's acknowledgements of alerts and lumisection flags.

The store:

- ``alerts.store``: the ``AlertStore`` interface, the SQL shared by backends, SQLite.
- ``alerts.store_postgres``: the PostgreSQL backend (the ``postgres`` extra).
- ``alerts.backends``: backends by URL scheme and ``open_store(url)``.

Subscriptions and delivery:

- ``alerts.subscriptions``: who wants which alerts (model, filters, vectorised matching).
- ``alerts.subscription_store``: adding, listing, pausing, removing stored subscriptions.
- ``alerts.outbox``: deliveries queued in the same transaction as the alert; delivery log.
- ``alerts.lease``: the delivery lease (one active delivery worker per store).
- ``alerts.delivery``: the delivery worker (retries, backoff, storm grouping).
- ``alerts.channels``: webhook (Standard Webhooks + CloudEvents), e-mail, Kafka topic.
- ``alerts.outbound``: outbound safety of webhooks: the allow-list, private addresses refused.
- ``alerts.secrets_at_rest``: webhook signing secrets encrypted in the store: the key (env or
  key file), sealing, opening, migration of plain-text secrets, key rotation.

Access control (the dashboard and the CLI share it):

- ``alerts.access``: roles, actors, the role x write-action policy, the role mapping.
- ``alerts.audit``: the append-only audit log of every write (who, role, when, before/after).
"""

__all__: list[str] = []
