"""Rule menus: the registry of rule kinds and the builders that turn configuration into rules.

Rules are configuration: a ``kind`` registered in ``RULE_KINDS`` plus parameters
(``{name = "met250", kind = "scalar", branch = "MET_pt", min_value = 250}``). Built-in
kinds: ``count``, ``scalar``, ``sum_pt`` (``alerts.rules``) and ``ae`` (``alerts.ae_rule``).
The built-in menu is the CMS Exotica Hotline menu. Extend with
``register_rule_kind("name", factory)`` where ``factory(name=..., **params)`` returns an
object with ``name``, ``needs`` (branches) and ``evaluate(arrays, context)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.alerts.ae_rule import make_ae_rule
from hotline.alerts.rules import CountRule, ScalarRule, SumPtRule
from hotline.config import read_toml
from hotline.errors import ConfigError
from hotline.registry import Registry


def _builtin_rule_kinds() -> list[tuple[str, Callable[..., Any]]]:
    return [("count", CountRule), ("scalar", ScalarRule), ("sum_pt", SumPtRule),
            ("ae", make_ae_rule)]


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
