"""Real HTTP receivers on 127.0.0.1 verifying Standard Webhooks signatures.

One answers 500 and then recovers, one hangs past the timeout, one is down at first;
every matching alert arrives, signed, keyed by its alert id; the log shows the retries.
"""

from __future__ import annotations

import threading

from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import delivery_log, delivery_stats, install_outbox
from hotline.alerts.subscription_store import add_subscription
from hotline.alerts.subscriptions import alert_units, new_secret
from tests.integration.subscriptions.receivers import Receiver, wait_for
from tests.support.alerts import make_alerts
from tests.support.outbound import allow_local_webhooks

FAST = {"backoff_base": 0.05, "backoff_max": 0.3, "timeout": 0.5, "give_up_after": 60}


def _hook(store, receiver, flt, **delivery):
    allow_local_webhooks(store)
    return add_subscription(store, owner="t", channel="webhook", settings={"url": receiver.url},
                            filter=flt, secret=receiver.secret, delivery={**FAST, **delivery})


def test_flaky_hanging_and_down_receivers_get_everything(store, receivers):
    install_outbox(store)
    flaky = receivers(new_secret(), fail_first=3).start()
    hang = receivers(new_secret(), hang_first=2, hang=5.0).start()
    down = receivers(new_secret(), port=Receiver.reserve())
    s_flaky = _hook(store, flaky, {"kinds": ["ae"], "max_p": 1e-4})
    s_hang = _hook(store, hang, {"kinds": ["dqm"], "units": ["DT_*"]})
    s_down = _hook(store, down, {"rules": ["met_500"]})
    alerts = make_alerts(300, seed=21)
    # arrive in small bursts (below the storm threshold) as the pipeline would write them
    for i in range(0, 300, 10):
        store.add_alerts(alerts[i: i + 10])
    want = {
        s_flaky.id: {a.id for a in alerts if a.kind == "ae" and a.p_value <= 1e-4},
        s_hang.id: {a.id for a in alerts if a.kind == "dqm"
                    and any(u.startswith("DT_") for u in alert_units(a.payload))},
        s_down.id: {a.id for a in alerts if a.rule == "met_500"},
    }
    assert all(len(v) >= 5 for v in want.values())

    stop = threading.Event()
    w = DeliveryWorker(store, threads=8, poll=0.05)
    t = threading.Thread(target=w.run, kwargs={"stop": stop})
    t.start()
    try:
        # the down receiver accumulates failed attempts, then comes up
        assert wait_for(lambda: delivery_stats(store, s_down.id)[s_down.id]["retried"] > 0, 10)
        down.start()
        assert wait_for(lambda: all(
            r.alert_ids() >= want[s.id] for r, s in ((flaky, s_flaky), (hang, s_hang),
                                                     (down, s_down))), 30)
        assert wait_for(lambda: w.idle(), 10)
    finally:
        stop.set()
        t.join(10)
        w.close()
    for r, s in ((flaky, s_flaky), (hang, s_hang), (down, s_down)):
        assert r.forged == 0
        assert r.alert_ids() == want[s.id]  # nothing extra: filters hold over the wire
        # single-alert notifications are keyed by the alert id (idempotency key)
        assert all(i in want[s.id] or i.startswith("grp_") for i in r.ids())
        st = delivery_stats(store, s.id)[s.id]
        assert st["failed"] == 0 and st["pending"] == 0 and st["queued"] == 0
        assert st["alerts_sent"] == len(want[s.id])
    assert delivery_stats(store, s_flaky.id)[s_flaky.id]["retried"] >= 1
    assert flaky.requests >= len(flaky.ids()) + 3
    hung = [d for d in delivery_log(store, s_hang.id, limit=1000) if d.attempts > 1]
    assert hung and any("within 0.5 s" in (d.last_error or "") for d in hung)


def test_receiver_that_never_recovers_is_given_up_visibly(store, receivers):
    install_outbox(store)
    bad = receivers(new_secret(), fail_first=10**9).start()
    s = _hook(store, bad, {}, give_up_after=0.6)
    store.add_alerts(make_alerts(3, seed=22))
    with DeliveryWorker(store, threads=4, poll=0.05) as w:
        w.run(until_idle=True, timeout=20)
    log = delivery_log(store, s.id)
    assert len(log) == 3 and all(d.status == "failed" for d in log)
    assert all(d.last_error.endswith("answered HTTP 500") and d.attempts >= 2 for d in log)
    assert delivery_stats(store, s.id)[s.id]["alerts_failed"] == 3


def test_client_errors_are_not_retried(store, receivers):
    install_outbox(store)
    r = receivers(new_secret()).start()
    # the receiver verifies with a different secret: the signature check answers 401
    allow_local_webhooks(store)
    s = add_subscription(store, owner="t", channel="webhook", settings={"url": r.url},
                         delivery=FAST)
    store.add_alerts(make_alerts(2, seed=23))
    with DeliveryWorker(store, threads=2, poll=0.05) as w:
        w.run(until_idle=True, timeout=10)
    assert r.forged == 2 and r.accepted == []
    assert all(d.status == "failed" and d.attempts == 1 and "HTTP 401" in d.last_error
               for d in delivery_log(store, s.id))


def test_alert_storm_becomes_one_grouped_notification(store, receivers):
    install_outbox(store)
    r = receivers(new_secret()).start()
    s = _hook(store, r, {}, storm_threshold=20, max_group=1000)
    alerts = make_alerts(800, seed=24)  # a detector fault lights up every event
    store.add_alerts(alerts)
    with DeliveryWorker(store, threads=2, poll=0.05) as w:
        w.run(until_idle=True, timeout=20)
    assert len(r.accepted) == 1
    wid, event = r.accepted[0]
    assert wid.startswith("grp_") and event["data"]["count"] == 800
    assert r.alert_ids() == {a.id for a in alerts}
    assert delivery_stats(store, s.id)[s.id]["sent"] == 1
