"""Hotline rules: which events raise an alert, and the classic cut-based rule kinds.

A rule looks at a batch (the raw columnar arrays and, when available, the
feature matrix / scores) and returns a ``RuleOutcome``: a boolean mask over
events, vectorised. This module holds that protocol and the classic kinds
(``CountRule``, ``ScalarRule``, ``SumPtRule``); ``alerts.menu`` turns
configuration into rules. A rule whose input branches a file lacks is
*unavailable* for that batch (reported as such, never silently false).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import awkward as ak
import numpy as np


@dataclass
class RuleOutcome:
    """Result of one rule on one batch: ``mask`` (None when unavailable).

    ``score`` / ``p_value`` / ``details`` are per-event arrays or lists that
    anomaly-score rules fill; classic rules leave them None.
    """

    rule: str
    mask: np.ndarray | None
    kind: str = "classic"
    missing: list[str] = field(default_factory=list)
    score: np.ndarray | None = None
    p_value: np.ndarray | None = None
    details: Callable[[int], dict[str, Any]] | None = None

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
        sel = arrays[f"{self.collection}_pt"] > self.min_pt
        if self.max_abs_eta is not None:
            sel = sel & (abs(arrays[f"{self.collection}_eta"]) < self.max_abs_eta)
        n = ak.to_numpy(ak.sum(sel, axis=1))
        return RuleOutcome(self.name, n >= self.min_count)


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
        return RuleOutcome(self.name, ak.to_numpy(ak.sum(pt[sel], axis=1)) > self.min_sum)
