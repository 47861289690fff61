"""Hotline rules: which events raise an alert.

A rule looks at a batch (the raw columnar arrays and, when available, the
feature matrix / scores) and returns a boolean mask over events, vectorised.
Classic cut-based rules are configuration: a ``kind`` registered in
``RULE_KINDS`` plus parameters. The built-in menu is the CMS Exotica Hotline
menu. A rule whose input branches a file lacks is *unavailable* for that batch
(reported as such, never silently false).

Extend with ``register_rule_kind("name", factory)`` where ``factory(**params)``
returns an object with ``name``, ``needs`` (branches) and ``evaluate(arrays)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import awkward as ak
import numpy as np

from hotline.config import read_toml
from hotline.errors import ConfigError
from hotline.registry import Registry


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


def _ae_rule(**params: Any) -> Any:
    """``kind = "ae"``: an anomaly-model rule (``alerts.ae_rule``; onnxruntime loaded on use)."""
    from alerts.ae_rule import make_ae_rule

    return make_ae_rule(**params)


def _builtin_rule_kinds() -> list[tuple[str, Callable[..., Any]]]:
    return [("count", CountRule), ("scalar", ScalarRule), ("sum_pt", SumPtRule),
            ("ae", _ae_rule)]


RULE_KINDS: Registry[Callable[..., Any]] = Registry("rule kind", _builtin_rule_kinds)


def register_rule_kind(kind: str, factory: Callable[..., Any]) -> None:
    """Make ``kind`` usable in rule menus; a duplicate name is refused."""
    RULE_KINDS.register(kind, factory)


def get_rule_kind(kind: str) -> Callable[..., Any]:
    return RULE_KINDS.get(kind)


def available_rule_kinds() -> list[str]:
    return RULE_KINDS.available()


def register_builtins() -> None:
    """Register the built-in rule kinds (idempotent; lookups do it by themselves)."""
    RULE_KINDS.available()


#: The CMS Exotica Hotline menu (classic cut-based rules), as data.
EXOTICA_HOTLINE_MENU: list[dict[str, Any]] = [
    {"name": "1jet_pt200", "kind": "count", "collection": "Jet", "min_pt": 200, "min_count": 1},
    {"name": "5jets_pt40", "kind": "count", "collection": "Jet", "min_pt": 40, "min_count": 5},
    {"name": "met250", "kind": "scalar", "branch": "MET_pt", "min_value": 250,
     "fallbacks": ["PuppiMET_pt"]},
    {"name": "ht300", "kind": "sum_pt", "collection": "Jet", "object_min_pt": 30, "min_sum": 300},
    {"name": "1e_pt100", "kind": "count", "collection": "Electron", "min_pt": 100, "min_count": 1},
    {"name": "2e_pt15", "kind": "count", "collection": "Electron", "min_pt": 15, "min_count": 2},
    {"name": "1pho_pt100", "kind": "count", "collection": "Photon", "min_pt": 100, "min_count": 1},
    {"name": "3pho_pt20", "kind": "count", "collection": "Photon", "min_pt": 20, "min_count": 3},
    {"name": "1mu_pt100", "kind": "count", "collection": "Muon", "min_pt": 100, "min_count": 1},
    {"name": "2mu_pt15", "kind": "count", "collection": "Muon", "min_pt": 15, "min_count": 2},
]


def build_rule(entry: dict[str, Any]) -> Any:
    """One rule from its configuration entry ``{"name", "kind", **params}``."""
    entry = dict(entry)
    try:
        name = entry.pop("name")
        kind = entry.pop("kind")
    except KeyError as exc:
        raise ConfigError(f"rule entry {entry!r} lacks '{exc.args[0]}'") from None
    factory = get_rule_kind(kind)
    if "fallbacks" in entry:
        entry["fallbacks"] = tuple(entry["fallbacks"])
    try:
        return factory(name=name, **entry)
    except TypeError as exc:
        raise ConfigError(f"rule '{name}' (kind {kind}): bad parameters: {exc}") from None


def build_menu(entries: list[dict[str, Any]] | None = None) -> list[Any]:
    """Rules from a list of entries (default: the Exotica Hotline menu); names must be unique."""
    rules = [build_rule(e) for e in (EXOTICA_HOTLINE_MENU if entries is None else entries)]
    names = [r.name for r in rules]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"rule names must be unique; repeated: {', '.join(sorted(dup))}")
    return rules


def load_menu(path: str | Path | None) -> list[Any]:
    """Rules from a TOML file of ``[[rule]]`` tables; the built-in menu when ``path`` is empty."""
    if not path:
        return build_menu()
    data = read_toml(path, "rule menu")
    if "rule" not in data:
        raise ConfigError(f"rule menu {path} has no [[rule]] tables")
    return build_menu(data["rule"])
