"""The shared Registry: duplicates refused, unknown names listed, built-ins never hidden."""

from __future__ import annotations

import pytest

from hotline.errors import ConfigError, FirmwareError
from hotline.registry import Registry


def test_builtins_survive_an_early_registration():
    calls = []

    def builtins():
        calls.append(1)
        return [("b", 2), ("a", 1)]

    reg: Registry[int] = Registry("widget", builtins)
    reg.register("c", 3)  # before any lookup: the built-ins must still be there
    assert reg.available() == ["a", "b", "c"] and reg.get("a") == 1 and "b" in reg
    assert len(calls) == 1


def test_duplicates_and_unknown_names():
    reg: Registry[int] = Registry("widget", lambda: [("a", 1)], sort=False)
    with pytest.raises(ConfigError, match="widget 'a' is already registered"):
        reg.register("a", 5)
    reg.register("z", 0)
    assert reg.available() == ["a", "z"]
    with pytest.raises(ConfigError, match="unknown widget 'q'; available: a, z"):
        reg.get("q")
    other: Registry[int] = Registry("target", error=FirmwareError)
    with pytest.raises(FirmwareError):
        other.get("x")


def test_rule_kinds_keep_builtins_next_to_ae():
    from hotline.alerts.menu import available_rule_kinds

    assert {"count", "scalar", "sum_pt", "ae"} <= set(available_rule_kinds())


def test_a_failed_builtin_load_is_retried_not_left_empty():
    from hotline.registry import Registry

    calls = []

    def builtins():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("bundled file unreadable")
        return [("a", 1)]

    reg = Registry("thing", builtins)
    with pytest.raises(OSError):
        reg.get("a")
    assert reg.get("a") == 1 and len(calls) == 2
