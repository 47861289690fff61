"""Test isolation for the process and event-fault registries: what a test registers (from a
TOML definition file or from Python) is gone after it, so later tests see the built-ins."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def isolated_registries() -> Iterator[None]:
    """Restore the process and fault registries and the loaded-file list on exit."""
    from hotline.detectors import event_faults
    from hotline.training import process_files, processes

    regs = (processes._PROCESSES, event_faults._FAULTS)
    for r in regs:
        r.available()  # built-ins in before the snapshot
    saved = [dict(r._items) for r in regs]
    loaded = dict(process_files._LOADED)
    try:
        yield
    finally:
        for r, items in zip(regs, saved, strict=True):
            r._items.clear()
            r._items.update(items)
        process_files._LOADED.clear()
        process_files._LOADED.update(loaded)
