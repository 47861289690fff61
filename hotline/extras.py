"""Optional dependencies ("extras"): which extra brings which import, and the one-line error.

The base install (replay, rules, onnxruntime scoring, SQLite store, subscriptions, CLI)
needs none of them. A command that reaches for a missing optional package is reported as
``hotline <command>: error: ... needs 'torch': pip install 'hotline[train]'`` by the CLI.
"""

from __future__ import annotations

import importlib.util
import sys

#: optional top-level import name -> the extras that install it (first: the usual one)
EXTRAS_OF_MODULE: dict[str, tuple[str, ...]] = {
    "faust": ("kafka",), "kafka": ("kafka",), "aiokafka": ("kafka",), "pyarrow": ("kafka",),
    "crc32c": ("kafka",),
    "panel": ("dashboard",), "bokeh": ("dashboard",), "param": ("dashboard",),
    "pandas": ("dashboard",),
    "psycopg": ("postgres",),
    "torch": ("train", "firmware"), "onnx": ("train", "firmware"),
    "matplotlib": ("train", "sim", "firmware"), "mplhep": ("train", "sim"),
    "pythia8mc": ("sim",), "fastjet": ("sim",),
    "hls4ml": ("firmware",), "yaml": ("firmware",), "tqdm": ("train",),
}

#: the extra a command needs first (a package several extras bring is named by this one)
EXTRA_OF_COMMAND: dict[str, str] = {
    "worker": "kafka", "sink": "kafka", "topics": "kafka", "dashboard": "dashboard",
    "train": "train",
    "attribution": "train", "generate": "sim", "firmware": "firmware", "report": "dashboard",
}


#: the packages whose absence means an extra is not installed (checked without importing)
KEY_MODULES: dict[str, tuple[str, ...]] = {
    "kafka": ("faust", "kafka", "aiokafka", "pyarrow"), "dashboard": ("panel", "bokeh"),
    "postgres": ("psycopg",), "train": ("torch", "onnx", "matplotlib"),
    "sim": ("pythia8mc", "fastjet"), "firmware": ("hls4ml", "torch", "yaml"),
}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported. One already imported counts: ``find_spec``
    raises ValueError for it when its package replaced its module object without a spec
    (faust does), e.g. when a command runs in a process that imported it before."""
    if module in sys.modules:
        return True
    return importlib.util.find_spec(module) is not None


def missing_for_command(command: str | None) -> str | None:
    """The one-line message when ``command`` needs an extra that is not installed, else None.

    Checked before the command runs (``importlib.util.find_spec``, nothing is imported), so
    a user of the base install hears about the extra first, not about a later input error.
    """
    extra = EXTRA_OF_COMMAND.get(command or "")
    if extra is None:
        return None
    absent = [m for m in KEY_MODULES[extra] if not _installed(m)]
    if not absent:
        return None
    return (f"this command needs the optional package '{absent[0]}', which the base install "
            f"leaves out: pip install 'hotline[{extra}]'")


def missing_extra(exc: ModuleNotFoundError, command: str | None = None) -> str | None:
    """The one-line message for ``exc`` when it is a missing optional package, else None."""
    top = (exc.name or "").split(".")[0]
    extras = EXTRAS_OF_MODULE.get(top)
    if not extras:
        return None
    preferred = EXTRA_OF_COMMAND.get(command or "")
    extra = preferred if preferred in extras else extras[0]
    return (f"this needs the optional package '{top}', which the base install leaves out: "
            f"pip install 'hotline[{extra}]'")


__all__ = [
    "EXTRAS_OF_MODULE", "EXTRA_OF_COMMAND", "KEY_MODULES", "missing_extra", "missing_for_command",
]
