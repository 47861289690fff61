"""Data bundled with Hotline: the demo archive (``archive/run_000001``, read by ``hotline demo``).

Read it with :func:`hotline.data.demo_archive`, never by a path relative to the source tree,
so an installed wheel finds it too.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["demo_archive"]


def demo_archive() -> Path:
    """The folder of bundled archived runs (``run_XXXXXX/`` folders)."""
    return Path(str(files(__name__) / "archive"))
