"""Kill the delivery worker (a real `hotline deliver` process, SIGKILL) mid-batch, restart it.

Every matching alert is delivered, none is lost, and re-sent notifications carry the
same idempotency key (webhook-id) with the same content.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

from hotline.alerts.outbox import delivery_stats, install_outbox
from hotline.alerts.store import SQLiteAlertStore
from hotline.alerts.subscription_store import add_subscription
from hotline.alerts.subscriptions import new_secret
from tests.integration.subscriptions.receivers import wait_for
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks

HOTLINE = [sys.executable, "-c", "import sys; from hotline.cli import main; sys.exit(main())"]


def _deliver(db: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*HOTLINE, "deliver", "--store", f"sqlite:///{db}", "--threads", "4",
                             "--poll", "0.05", "--lease-seconds", "2", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_batch_then_restart_loses_nothing(tmp_path, receivers):
    db = tmp_path / "alerts.db"
    store = SQLiteAlertStore(db)
    install_outbox(store)
    singles = receivers(new_secret(), delay=0.02).start()
    groups = receivers(new_secret(), delay=0.05).start()
    fast = {"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 5}
    allow_local_webhooks(store)
    s1 = add_subscription(store, owner="a", channel="webhook", settings={"url": singles.url},
                          secret=singles.secret, filter={"kinds": ["ae", "classic"]},
                          delivery={**fast, "storm_threshold": 100_000})
    s2 = add_subscription(store, owner="b", channel="webhook", settings={"url": groups.url},
                          secret=groups.secret, delivery={**fast, "storm_threshold": 20,
                                                          "max_group": 10})
    alerts = make_alerts(600, seed=41)
    store.add_alerts(alerts)
    want1 = {a.id for a in alerts if a.kind in ("ae", "classic")}
    want2 = {a.id for a in alerts}

    # its lease outlives it by 15 s: longer than the next worker's start-up on a loaded
    # machine, so that one must wait as a standby (with 2 s it could start after expiry)
    proc = _deliver(db, "--lease-seconds", "15")
    try:
        assert wait_for(lambda: len(singles.ids()) >= 60, 30), \
            proc.stderr.read() if proc.poll() is not None else "worker too slow"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    at_kill = (len(singles.ids()), len(groups.ids()))
    st = delivery_stats(store)
    unfinished = sum(st[s.id]["pending"] + st[s.id]["queued"] for s in (s1, s2))
    assert at_kill[0] < len(want1) and unfinished > 0, f"the kill did not land mid-batch {at_kill}"

    proc = _deliver(db, "--until-idle", "--max-seconds", "60")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    # the killed worker's lease outlived it: the new one waited as a standby, then took over
    assert "standby: lease 'deliver' held by" in err, err

    assert singles.alert_ids() == want1 and groups.alert_ids() == want2  # none lost
    assert singles.forged == groups.forged == 0
    for r in (singles, groups):
        seen: dict[str, object] = {}
        counts = collections.Counter()
        for wid, event in r.accepted:
            counts[wid] += 1
            key_content = (event["data"]["id"] if "id" in event["data"]
                           else sorted(a["id"] for a in event["data"]["alerts"]))
            # a duplicate is the same notification: same key, same content
            assert seen.setdefault(wid, key_content) == key_content
            if not wid.startswith("grp_"):
                assert wid == event["data"]["id"]
    st = delivery_stats(store)
    assert st[s1.id]["alerts_sent"] == len(want1) and st[s2.id]["alerts_sent"] == len(want2)
    assert all(st[s.id]["pending"] == st[s.id]["queued"] == st[s.id]["failed"] == 0
               for s in (s1, s2))
    store.close()


def test_two_workers_on_one_store_deliver_each_notification_once(tmp_path, receivers):
    """The second `hotline deliver` waits as a standby: no notification is sent twice."""
    db = tmp_path / "alerts.db"
    store = SQLiteAlertStore(db)
    install_outbox(store)
    r = receivers(new_secret(), delay=0.05).start()  # ~4 s of sending: the two overlap
    allow_local_webhooks(store)
    add_subscription(store, owner="a", channel="webhook", settings={"url": r.url},
                     secret=r.secret, delivery={"storm_threshold": 100_000, "timeout": 5})
    alerts = make_alerts(300, seed=7)
    store.add_alerts(alerts)
    procs = [_deliver(db, "--until-idle", "--max-seconds", "60") for _ in range(2)]
    errs = [p.communicate(timeout=90)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert r.alert_ids() == {a.id for a in alerts}
    counts = collections.Counter(r.ids())
    assert max(counts.values()) == 1, "a notification was sent twice"
    assert sum("standby: lease 'deliver'" in e for e in errs) == 1, errs
