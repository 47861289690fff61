"""Hotline rules, alert records and the durable alert store.

- ``alerts.rules``: classic cut-based rules as configuration (the Exotica Hotline menu).
- ``alerts.records``: ``AlertRecord`` (stable ids), ``LumiSummary``, ``DeadLetter``.
- ``alerts.store``: the ``AlertStore`` interface, SQLite backend, ``open_store``.
"""

__all__: list[str] = []
