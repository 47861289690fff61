"""Alert-store backends by URL scheme, and ``open_store(url)``.

Built-in backends, registered explicitly (nothing registers itself on import):
``sqlite`` (``sqlite:///path.db`` or a plain path; ``alerts.store.SQLiteAlertStore``) and
``postgresql`` / ``postgres`` (``alerts.store_postgres.PostgresAlertStore``, needs the
``postgres`` extra). Add one with ``register_store_backend(scheme, factory)``.
``open_store(url, create=False)`` refuses a SQLite file that does not exist (read-only
commands), instead of creating an empty store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hotline.alerts.store import AlertStore, SQLiteAlertStore
from hotline.alerts.store_postgres import PostgresAlertStore
from hotline.errors import StoreError
from hotline.registry import Registry

StoreFactory = Callable[[str], AlertStore]


def _sqlite(url: str) -> AlertStore:
    return SQLiteAlertStore(sqlite_path(url))


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


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///path`` URL (or of a plain path)."""
    return Path(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url)


def open_store(url: str, create: bool = True) -> AlertStore:
    """Open the alert store at ``url`` (``sqlite:///file.db``, ``postgresql://...``, or a path).

    ``create=False`` (commands that only read or re-drive) refuses a SQLite file that does
    not exist instead of creating an empty store, so a mistyped path is an error, not
    "0 alerts". (A server database always exists or fails to connect.)
    """
    scheme = url.split("://", 1)[0] if "://" in url else "sqlite"
    if scheme not in STORE_BACKENDS:
        raise StoreError(f"unknown alert store URL scheme '{scheme}' in {url!r}; "
                         f"use one of: {', '.join(STORE_BACKENDS.available())}")
    if not create and scheme == "sqlite":
        path = sqlite_path(url)
        if not path.is_file():
            shown = str(path) if path.is_absolute() else f"{path} ({path.resolve()})"
            raise StoreError(f"no alert store at {shown}: "
                             + ("it is a folder" if path.is_dir() else "the file does not exist")
                             + " (check --store / HOTLINE_STORE_URL; a replay creates it)")
    return STORE_BACKENDS.get(scheme)(url)


__all__ = ["STORE_BACKENDS", "open_store", "register_store_backend", "sqlite_path"]
