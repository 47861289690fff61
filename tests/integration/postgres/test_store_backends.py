"""The SAME alert-store test suite against SQLite and a real PostgreSQL server.

Every test of ``tests/unit/test_store.py`` that takes the ``store`` fixture is
run here against both backends (imported, not copied), plus checks that only
make sense for a server: URL registration, concurrent writers, bad URLs.
"""

from __future__ import annotations

import threading

import pytest

from hotline.alerts.backends import open_store
from hotline.errors import StoreError
from tests.integration.postgres.conftest import shared_store_tests
from tests.unit.alerts import test_store as base

STORE_TESTS = shared_store_tests(base)


def test_the_shared_suite_is_not_empty():
    assert len(STORE_TESTS) >= 4, STORE_TESTS


@pytest.mark.parametrize("name", STORE_TESTS)
def test_shared_store_suite(name, any_store):
    getattr(base, name)(any_store)


@pytest.mark.postgres
def test_postgres_url_opens_postgres_backend(pg_url):
    from hotline.alerts.store_postgres import PostgresAlertStore

    with open_store(pg_url) as st:
        assert isinstance(st, PostgresAlertStore)
        st.add_alerts([base.rec(ev=1)])
    with open_store(pg_url.replace("postgresql://", "postgres://")) as st:  # reopen, same data
        assert st.count_alerts() == 1


@pytest.mark.postgres
def test_postgres_concurrent_writers_never_duplicate(pg_url):
    records = [base.rec(ev=i) for i in range(300)]
    stores = [open_store(pg_url) for _ in range(3)]
    new_counts: list[int] = []

    def write(st):
        for i in range(0, 300, 50):
            new_counts.append(len(st.add_alerts(records[i : i + 60])))

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert stores[0].count_alerts() == 300
    assert sum(new_counts) == 300  # each id reported new by exactly one writer
    assert {a.id for a in stores[0].alerts()} == {r.id for r in records}
    for s in stores:
        s.close()


@pytest.mark.postgres
def test_postgres_bad_url_is_a_store_error(pg_server):
    bad = f"postgresql://postgres:secret@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(StoreError, match="cannot open alert store") as exc:
        open_store(bad)
    assert "secret" not in str(exc.value)
