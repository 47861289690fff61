"""Numpy views of the branches of a chunk of events, without awkward's per-call overhead.

Owns how detector code reads one branch of an awkward record array of events as numpy:
``flat(arrays, name)`` gives a jagged branch's flat values and per-event counts,
``scalar(arrays, name)`` a flat branch's values, ``plain_values(arrays, name)`` either
kind when its layout is plain (for the quarantine's checks). For the layouts uproot and the Arrow
decoder produce (a record of packed ``ListOffsetArray`` / ``NumpyArray`` columns) they
read the buffers directly: a few microseconds, where ``arrays[name]`` + ``ak.flatten`` +
``ak.num`` cost ~0.3 ms per branch and dominated a 4,096-event batch. Any other layout
(option types, ``ListArray`` after a selection, a plain mapping of arrays) takes the
awkward functions, with the same results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["flat", "plain_values", "scalar"]


def _column(arrays: Any, name: str) -> Any:
    """The layout of branch ``name`` of a record array, or None when it is not one."""
    if not isinstance(arrays, ak.Array):
        return None
    lay = arrays.layout
    if not isinstance(lay, ak.contents.RecordArray) or not lay.fields or name not in lay.fields:
        return None
    col = lay.content(name)
    return col if col.length == lay.length else None


def _plain(node: Any) -> bool:
    return (isinstance(node, ak.contents.NumpyArray) and node.data.ndim == 1
            and node.parameter("__array__") is None)


def _packed_list(col: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(flat values, per-event counts int64) of a list-of-numbers ``ListOffsetArray``
    layout, read from its buffers; None for any other layout."""
    if (isinstance(col, ak.contents.ListOffsetArray) and col.parameter("__array__") is None
            and _plain(col.content)):
        off = np.asarray(col.offsets.data)
        return np.asarray(col.content.data)[off[0]:off[-1]], np.diff(off).astype(np.int64)
    return None


def flat(arrays: ak.Array | Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, per-event counts int64) of the jagged branch ``name`` of ``arrays``."""
    packed = _packed_list(_column(arrays, name))
    if packed is not None:
        return packed
    arr = arrays[name]
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64, copy=False)
    return ak.to_numpy(ak.flatten(arr, axis=1)), counts


def scalar(arrays: ak.Array | Mapping[str, Any], name: str) -> np.ndarray:
    """The values of the flat (one per event) branch ``name`` of ``arrays``."""
    col = _column(arrays, name)
    if _plain(col):
        return np.asarray(col.data)
    arr = arrays[name]
    return ak.to_numpy(arr) if isinstance(arr, ak.Array) else np.asarray(arr)


def plain_values(arrays: Any, name: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(values, per-event counts or None for a flat branch) of branch ``name`` when its
    layout is a plain numeric column (no option type, no strings, packed); else None."""
    col = _column(arrays, name)
    if _plain(col):
        return np.asarray(col.data), None
    return _packed_list(col)
