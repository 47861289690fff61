"""Numpy arrays in JSON records: their bytes as base64 text, checked when read back.

Owns ``b64_of`` and ``array_of_b64``, the wire form of the arrays that the lumisection
summaries' event tallies (``alerts.records``), the storm records (``alerts.storms``), the
L1 tallies (``alerts.l1_agreement``) and the per-event histogram bins
(``detectors.event_histograms``) carry. Reading back, a value that is not a string, is not
valid base64 or holds the wrong number of values is a one-line ``StreamError`` naming it
(``what``), never a silently short array.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from hotline.errors import StreamError

__all__ = ["array_of_b64", "b64_of"]


def b64_of(a: Any, dtype: Any = None) -> str:
    """The bytes of ``a`` (as ``dtype`` when given), C order, as base64 text."""
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def array_of_b64(text: Any, dtype: Any, n: int, what: str, per: str = "entries"
                 ) -> np.ndarray:
    """The ``n`` values of ``dtype`` that ``text`` (``b64_of``) holds, read-only; a
    ``StreamError`` "``what`` ..." when it is not base64 of exactly that many (``per``:
    what the ``n`` values stand for, in the message)."""
    if not isinstance(text, str):
        raise StreamError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise StreamError(f"{what} is not valid base64") from None
    size = np.dtype(dtype).itemsize
    if len(raw) != n * size:
        raise StreamError(f"{what} has {len(raw) // size} entries for {n} {per}")
    return np.frombuffer(raw, dtype=dtype)
