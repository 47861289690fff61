"""Data bundled with Hotline: the demo archive (``archive/run_000001``, read by ``hotline demo``)
and the demo's reference card (``references/demo.json``: the run-status expectations measured on
the recipe's clean data-like run 230; rebuilt by ``python -m benchmarks.bench_status
--export-reference hotline/data/references/demo.json``).

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
