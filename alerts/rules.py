"""Hotline rules: which events raise an alert, and the classic cut-based rule kinds.

A rule looks at a batch (the raw columnar arrays and, when available, the
feature matrix / scores) and returns a ``RuleOutcome``: a boolean mask over
events, vectorised. This module holds that protocol and the classic kinds
(``CountRule``, ``ScalarRule``, ``SumPtRule``); ``alerts.menu`` turns
configuration into rules. A rule whose input branches a file lacks is
*unavailable* for that batch (reported as such, never silently false). A rule cutting on
a collection also says which of its objects fired it (``RuleOutcome.objects``), so an
alert carries them even when the collection is outside the feature spec (photons).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import awkward as ak
import numpy as np

from hotline.detectors.columns import flat


@dataclass
class RuleOutcome:
    """Result of one rule on one batch: ``mask`` (None when unavailable).

    ``score`` / ``p_value`` / ``details`` are per-event arrays or lists that
    anomaly-score rules fill; classic rules leave them None. ``collection`` and
    ``objects(idx)`` name the collection a rule cuts on and give, for events ``idx``, the
    objects that passed its selection (see ``fired_objects``).
    """

    rule: str
    mask: np.ndarray | None
    kind: str = "classic"
    missing: list[str] = field(default_factory=list)
    score: np.ndarray | None = None
    p_value: np.ndarray | None = None
    details: Callable[[int], dict[str, Any]] | None = None
    collection: str | None = None
    objects: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    #: anomaly-score rules: each object type's share of every event's score [n, types]
    #: (rows of unscored events 0), and the type labels; None for classic rules
    per_type: np.ndarray | None = None
    type_labels: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.mask is not None


class Rule(Protocol):
    name: str
    kind: str

    @property
    def needs(self) -> list[str]: ...

    def evaluate(self, arrays: ak.Array, context: dict[str, Any]) -> RuleOutcome: ...


def _missing(arrays: ak.Array, needs: list[str]) -> list[str]:
    fields = set(arrays.fields)
    return [b for b in needs if b not in fields]


def _jagged(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, flat content) of a jagged array; no copy for the usual list-of-numbers layout."""
    lay = arr.layout
    if isinstance(lay, ak.contents.ListOffsetArray) and isinstance(lay.content,
                                                                  ak.contents.NumpyArray):
        return np.asarray(lay.offsets.data, dtype=np.int64), np.asarray(lay.content.data)
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(arr, axis=1))


def fired_objects(
    arrays: ak.Array, collection: str, sel: ak.Array
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``objects(idx)`` for ``RuleOutcome``: the ``collection`` objects selected by ``sel``
    in events ``idx`` (ascending), as (position in ``idx`` of each object's event, values
    [k, 3] of (pt, eta, phi) in the branches' precision; eta or phi 0 when the branch is
    absent or does not match pT object for object), grouped by event, leading pT first.
    Vectorised: numpy on the flat content of the asked events only."""
    fields = set(arrays.fields)

    def objects(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offsets, pt_all = _jagged(arrays[f"{collection}_pt"])
        n_in = offsets[idx + 1] - offsets[idx]  # only the asked events' objects are touched
        local = np.arange(int(n_in.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_in) - n_in,
                                                                        n_in)
        pos = np.repeat(np.arange(idx.size, dtype=np.int64), n_in)

        def take(arr: Any) -> np.ndarray | None:
            off, content = _jagged(arr)
            if not np.array_equal(off[idx + 1] - off[idx], n_in):
                return None
            return content[np.repeat(off[idx], n_in) + local]

        keep = take(sel)
        if keep is None:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
        pt_f = pt_all[np.repeat(offsets[idx], n_in) + local][keep]
        pos = pos[keep]
        order = np.lexsort((-pt_f, pos))  # by event, then leading pT first
        cols = [pt_f[order]]
        for f in ("eta", "phi"):
            b = f"{collection}_{f}"
            v = take(arrays[b]) if b in fields else None
            cols.append(v[keep][order] if v is not None else np.zeros(pt_f.size, pt_f.dtype))
        return pos[order], np.stack(cols, axis=1)

    return objects


@dataclass
class CountRule:
    """At least ``min_count`` objects of ``collection`` with pT > ``min_pt`` (and |eta| cut)."""

    name: str
    collection: str
    min_pt: float
    min_count: int = 1
    max_abs_eta: float | None = None
    kind: str = "classic"

    @property
    def needs(self) -> list[str]:
        extra = [f"{self.collection}_eta"] if self.max_abs_eta is not None else []
        return [f"{self.collection}_pt", *extra]

    def evaluate(self, arrays: ak.Array, context: dict[str, Any]) -> RuleOutcome:
        miss = _missing(arrays, self.needs)
        if miss:
            return RuleOutcome(self.name, None, missing=miss)
        pt, counts = flat(arrays, f"{self.collection}_pt")
        eta, eta_counts = (flat(arrays, f"{self.collection}_eta")
                           if self.max_abs_eta is not None else (None, counts))
        if eta is not None and not np.array_equal(eta_counts, counts):  # let awkward say why
            sel = (arrays[f"{self.collection}_pt"] > self.min_pt) & (
                abs(arrays[f"{self.collection}_eta"]) < self.max_abs_eta)
            n = ak.to_numpy(ak.sum(sel, axis=1))
        else:  # numpy on the flat content: the per-event count of selected objects
            keep = pt > self.min_pt
            if eta is not None:
                keep &= np.abs(eta) < self.max_abs_eta
            offsets = np.zeros(counts.size + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            fired = np.zeros(keep.size + 1, np.int64)
            np.cumsum(keep, out=fired[1:])
            n = fired[offsets[1:]] - fired[offsets[:-1]]
            sel = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets),
                                                       ak.contents.NumpyArray(keep)))
        return RuleOutcome(self.name, n >= self.min_count, collection=self.collection,
                           objects=fired_objects(arrays, self.collection, sel))


@dataclass
class ScalarRule:
    """A per-event scalar branch above a threshold (e.g. MET_pt > 250); fallbacks tried in order."""

    name: str
    branch: str
    min_value: float
    fallbacks: tuple[str, ...] = ()
    kind: str = "classic"

    @property
    def needs(self) -> list[str]:
        return [self.branch]

    def evaluate(self, arrays: ak.Array, context: dict[str, Any]) -> RuleOutcome:
        fields = set(arrays.fields)
        for b in (self.branch, *self.fallbacks):
            if b in fields:
                return RuleOutcome(self.name, ak.to_numpy(arrays[b]) > self.min_value)
        return RuleOutcome(self.name, None, missing=[self.branch, *self.fallbacks])


@dataclass
class SumPtRule:
    """Scalar sum of ``collection`` pT (objects above ``object_min_pt``) over ``min_sum`` (HT)."""

    name: str
    collection: str
    object_min_pt: float
    min_sum: float
    max_abs_eta: float | None = None
    kind: str = "classic"

    @property
    def needs(self) -> list[str]:
        extra = [f"{self.collection}_eta"] if self.max_abs_eta is not None else []
        return [f"{self.collection}_pt", *extra]

    def evaluate(self, arrays: ak.Array, context: dict[str, Any]) -> RuleOutcome:
        miss = _missing(arrays, self.needs)
        if miss:
            return RuleOutcome(self.name, None, missing=miss)
        pt = arrays[f"{self.collection}_pt"]
        sel = pt > self.object_min_pt
        if self.max_abs_eta is not None:
            sel = sel & (abs(arrays[f"{self.collection}_eta"]) < self.max_abs_eta)
        return RuleOutcome(self.name, ak.to_numpy(ak.sum(pt[sel], axis=1)) > self.min_sum,
                           collection=self.collection,
                           objects=fired_objects(arrays, self.collection, sel))
