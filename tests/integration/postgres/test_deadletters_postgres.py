"""Dead letters on a real PostgreSQL server: the store-level suite of
tests/unit/alerts/test_deadletter_store.py (imported, not copied) against SQLite and
PostgreSQL, concurrent writers of the same failures, and the upgrade of a table written
before dead letters had ids."""

from __future__ import annotations

import threading

import pytest

from hotline.alerts.backends import open_store
from tests.integration.postgres.conftest import shared_store_tests
from tests.unit.alerts import test_deadletter_store as base

STORE_TESTS = shared_store_tests(base)


def test_the_shared_suite_is_not_empty():
    assert len(STORE_TESTS) >= 5, STORE_TESTS


@pytest.mark.parametrize("name", STORE_TESTS)
def test_shared_deadletter_suite(name, any_store):
    getattr(base, name)(any_store)


@pytest.mark.postgres
def test_postgres_concurrent_replays_store_each_deadletter_once(pg_url):
    letters = [base.dl(lumi=i % 5, events=(i,)) for i in range(200)]
    stores = [open_store(pg_url) for _ in range(4)]
    added: list[int] = []

    def write(st):  # every writer re-replays everything, in overlapping chunks
        for i in range(0, 200, 30):
            added.append(st.add_deadletters(letters[i : i + 40]))

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert stores[0].count_deadletters() == 200
    assert sum(added) == 200  # each one reported new by exactly one writer
    assert {d.id for d in stores[0].iter_deadletters(page_size=33)} == {d.id for d in letters}
    for s in stores:
        s.close()


@pytest.mark.postgres
def test_postgres_table_of_an_older_release_is_upgraded(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("""CREATE TABLE deadletters (
            seq BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, origin TEXT NOT NULL,
            reason TEXT NOT NULL, run BIGINT, lumi BIGINT, events TEXT NOT NULL,
            payload BYTEA, created DOUBLE PRECISION NOT NULL)""")
        for created in (1.0, 2.0):  # the same failure written by two replays
            c.execute("INSERT INTO deadletters (source, origin, reason, run, lumi, events, "
                      "created) VALUES ('s', 'f.root', 'NaN', 1, 1, '[5, 6]', %s)", (created,))
    with open_store(pg_url) as st:
        [d] = st.deadletters(limit=None)
        assert d.created == 1.0 and d.events == (5, 6)
        assert st.add_deadletters([base.dl(reason="NaN")]) == 0
        assert st.count_deadletters() == 1
        assert st.resolve_deadletters([d.id], "fixed") == 1
    with open_store(pg_url) as st:  # reopening (schema step again) keeps everything
        [d] = st.deadletters(limit=None, resolved=True)
        assert d.resolution == "fixed"
