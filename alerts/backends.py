"""Alert-store backends by URL scheme, and ``open_store(url)``.

Built-in backends, registered explicitly (nothing registers itself on import):
``sqlite`` (``sqlite:///path.db`` or a plain path; ``alerts.store.SQLiteAlertStore``) and
``postgresql`` / ``postgres`` (``alerts.store_postgres.PostgresAlertStore``, needs the
``postgres`` extra). Add one with ``register_store_backend(scheme, factory)``.
"""

from __future__ import annotations

from collections.abc import Callable

from hotline.alerts.store import AlertStore, SQLiteAlertStore
from hotline.alerts.store_postgres import PostgresAlertStore
from hotline.errors import StoreError
from hotline.registry import Registry

StoreFactory = Callable[[str], AlertStore]


def _sqlite(url: str) -> AlertStore:
    return SQLiteAlertStore(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url)


def _postgres(url: str) -> AlertStore:
    try:
        import psycopg  # noqa: F401 - only to say which extra is missing
    except ImportError:
        raise StoreError(f"cannot open {url.split('@')[-1]}: the PostgreSQL backend needs "
                         "psycopg; install hotline[postgres]") from None
    return PostgresAlertStore(url)


def _builtin_backends() -> list[tuple[str, StoreFactory]]:
    return [("sqlite", _sqlite), ("postgresql", _postgres), ("postgres", _postgres)]


STORE_BACKENDS: Registry[StoreFactory] = Registry("alert store URL scheme", _builtin_backends,
                                                  error=StoreError)


def register_store_backend(scheme: str, factory: StoreFactory) -> None:
    """Make ``scheme://`` URLs openable; duplicates are refused."""
    STORE_BACKENDS.register(scheme, factory)


def open_store(url: str) -> AlertStore:
    """Open the alert store at ``url`` (``sqlite:///file.db``, ``postgresql://...``, or a path)."""
    scheme = url.split("://", 1)[0] if "://" in url else "sqlite"
    if scheme not in STORE_BACKENDS:
        raise StoreError(f"unknown alert store URL scheme '{scheme}' in {url!r}; "
                         f"use one of: {', '.join(STORE_BACKENDS.available())}")
    return STORE_BACKENDS.get(scheme)(url)


__all__ = ["STORE_BACKENDS", "open_store", "register_store_backend"]
