"""Run status on a real PostgreSQL server: the store-level suite of
tests/unit/alerts/test_status_store.py (reference runs with provenance, lumisection flags
and overrides, the engine reading a stored run) against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.integration.postgres.conftest import shared_store_tests
from tests.unit.alerts import test_status_store as base

STORE_TESTS = shared_store_tests(base)


def test_the_shared_suite_is_not_empty():
    assert len(STORE_TESTS) >= 3, STORE_TESTS


@pytest.mark.parametrize("name", STORE_TESTS)
def test_shared_status_suite(name, any_store):
    getattr(base, name)(any_store)
