"""The delivery lease on PostgreSQL: exclusive under concurrency, renewable, expiring."""

from __future__ import annotations

import threading

import pytest

from hotline.alerts.backends import open_store
from hotline.alerts.lease import Lease


@pytest.mark.postgres
def test_only_one_of_many_concurrent_workers_gets_the_lease(pg_url):
    n = 6
    stores = [open_store(pg_url) for _ in range(n)]
    with stores[0].transaction() as cur:
        cur.execute("DROP TABLE IF EXISTS leases")
    t = [1_000_000.0]
    leases = [Lease(s, "deliver", f"w{k}", 10, clock=lambda: t[0]) for k, s in enumerate(stores)]
    got = [False] * n
    start = threading.Barrier(n)

    def take(k: int) -> None:
        start.wait()
        got[k] = leases[k].acquire()

    threads = [threading.Thread(target=take, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sum(got) == 1
    winner = got.index(True)
    loser = (winner + 1) % n
    t[0] += 5
    assert leases[winner].acquire() and not leases[loser].acquire()  # renewed
    t[0] += 11
    assert leases[loser].acquire() and not leases[winner].acquire()  # expired: taken over
    leases[loser].release()
    for s in stores:
        s.close()
