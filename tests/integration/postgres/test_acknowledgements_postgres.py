"""Crew acknowledgements on a real PostgreSQL server: the store-level suite of
tests/unit/alerts/test_acknowledgements.py against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.integration.postgres.conftest import shared_store_tests
from tests.unit.alerts import test_acknowledgements as base

STORE_TESTS = shared_store_tests(base)


def test_the_shared_suite_is_not_empty():
    assert len(STORE_TESTS) >= 4, STORE_TESTS


@pytest.mark.parametrize("name", STORE_TESTS)
def test_shared_acknowledgement_suite(name, any_store):
    getattr(base, name)(any_store)
