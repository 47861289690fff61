"""Subscriptions: matching cost, webhook delivery throughput, backlog drain time.

1. Fan 10,000 alerts out to 100 subscriptions with mixed filters (kind, rule, p-value,
   significance, DQM subsystem/unit globs, run range, tags): vectorised matching cost per
   alert vs the naive per-alert x per-subscription loop, and the extra cost the outbox
   adds to the alert-insert transaction.
2. Delivery throughput: 10,000 single-alert notifications (10 webhook subscriptions) to
   a local aiohttp receiver in another process that verifies every signature with
   ``standardwebhooks``. Target >= 1,000 deliveries/s.
3. Backlog drain: the receiver is down while 10,000 notifications queue up (each
   refused at least twice); it comes back; time until the backlog is delivered.

Run: ``nice -n 10 .venv/bin/python -m benchmarks.bench_subscriptions [--alerts N]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import best_of, header, save


def _alerts(n: int, seed: int = 0):
    from tests.support.alerts import make_alerts

    return make_alerts(n, seed=seed)


def _filters(n: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    pool = [
        lambda: {"kinds": ["ae"], "max_p": float(10 ** rng.uniform(-5, -3))},
        lambda: {"kinds": ["dqm"], "units": [str(rng.choice(["DT_*", "CSC_*", "EB*", "HB*"]))]},
        lambda: {"kinds": ["dqm"], "subsystems": [str(rng.choice(["muon", "ecal", "hcal"]))]},
        lambda: {"rules": [str(rng.choice(["dimuon_high_mass", "met_500", "single_e_200"]))]},
        lambda: {"min_significance": float(rng.uniform(3, 5))},
        lambda: {"min_run": 300000 + int(rng.integers(0, 10)),
                 "max_run": 300010 + int(rng.integers(0, 10))},
        lambda: {"tags": [str(rng.choice(["calib", "physics"]))], "kinds": ["classic", "ae"]},
        lambda: {},
    ]
    return [pool[i % len(pool)]() for i in range(n)]


def bench_matching(n_alerts: int, n_subs: int) -> dict:
    from hotline.alerts.outbox import install_outbox
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.alerts.subscriptions import Subscription, SubscriptionFilter, SubscriptionMatcher

    alerts = _alerts(n_alerts)
    subs = [Subscription(id=f"s{i}", owner="b", name="", filter=SubscriptionFilter.from_dict(f),
                         channel="webhook", settings={}, secret="whsec_x")
            for i, f in enumerate(_filters(n_subs))]
    matcher = SubscriptionMatcher(subs)
    t_vec, res = best_of(lambda: matcher.match(alerts), 3)
    pairs = sum(len(ix) for _, ix in res)
    n_naive = min(n_alerts, 2000)
    t_naive, _ = best_of(lambda: [[s.filter.matches(a) for s in subs] for a in alerts[:n_naive]],
                         1)
    t_naive *= n_alerts / n_naive
    print(f"matching {n_alerts:,} alerts x {n_subs} subscriptions -> {pairs:,} deliveries")
    print(f"  vectorised: {t_vec * 1e3:8.1f} ms  = {t_vec / n_alerts * 1e6:6.2f} us/alert")
    print(f"  naive loop: {t_naive * 1e3:8.1f} ms  = {t_naive / n_alerts * 1e6:6.2f} us/alert "
          f"(extrapolated from {n_naive:,})   speed-up x{t_naive / t_vec:.0f}")

    with tempfile.TemporaryDirectory() as d:
        plain = SQLiteAlertStore(Path(d) / "plain.db")
        t_plain, _ = best_of(lambda: plain.add_alerts(_alerts(n_alerts, seed=2)), 1)
        withbox = SQLiteAlertStore(Path(d) / "outbox.db")
        install_outbox(withbox)
        from hotline.alerts.access import SYSTEM
        from hotline.alerts.outbound import set_allow_list
        from hotline.alerts.subscription_store import add_subscription

        set_allow_list(withbox, SYSTEM, ["*", "127.0.0.1/32"])  # the local receiver

        for f in _filters(n_subs):
            add_subscription(withbox, owner="b", channel="webhook",
                             settings={"url": "http://127.0.0.1:9/"}, filter=f)
        t_box, _ = best_of(lambda: withbox.add_alerts(_alerts(n_alerts, seed=2)), 1)
        plain.close()
        withbox.close()
    print(f"  alert insert of {n_alerts:,}: {t_plain:.2f} s without subscriptions, "
          f"{t_box:.2f} s with outbox for {n_subs} subscriptions "
          f"(+{(t_box - t_plain) / n_alerts * 1e6:.0f} us/alert incl. alert generation)")
    return {"n_alerts": n_alerts, "n_subs": n_subs, "pairs": pairs,
            "match_us_per_alert": t_vec / n_alerts * 1e6,
            "naive_us_per_alert": t_naive / n_alerts * 1e6,
            "insert_s_plain": t_plain, "insert_s_outbox": t_box}


# --------------------------------------------------------------------------- receiver


def _serve(port: int, secrets: list[str], ready: mp.Event) -> None:  # in a child process
    import asyncio

    from aiohttp import web
    from standardwebhooks import Webhook

    hooks = [Webhook(s) for s in secrets]
    counts = {"ok": 0, "forged": 0}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        idx = int(request.match_info["i"])
        try:
            hooks[idx].verify(body, dict(request.headers))
        except Exception:  # noqa: BLE001
            counts["forged"] += 1
            return web.Response(status=401)
        counts["ok"] += 1
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook/{i}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _start_receiver(port: int, secrets: list[str]) -> mp.Process:
    ready = mp.Event()
    p = mp.Process(target=_serve, args=(port, secrets, ready), daemon=True)
    p.start()
    if not ready.wait(20):
        raise RuntimeError("benchmark receiver did not start")
    return p


def _setup_store(d: str, port: int, n_subs: int, n_alerts: int, **delivery):
    from hotline.alerts.outbox import install_outbox
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.alerts.subscription_store import add_subscription
    from hotline.alerts.subscriptions import new_secret

    store = SQLiteAlertStore(Path(d) / "alerts.db")
    install_outbox(store)
    from hotline.alerts.access import SYSTEM
    from hotline.alerts.outbound import set_allow_list

    set_allow_list(store, SYSTEM, ["*", "127.0.0.1/32"])  # the bench's local receiver
    secrets = [new_secret() for _ in range(n_subs)]
    for i, s in enumerate(secrets):
        # each subscription takes a disjoint tenth of the alerts (by run), as singles
        add_subscription(store, owner="bench", channel="webhook", secret=s,
                         settings={"url": f"http://127.0.0.1:{port}/hook/{i}"},
                         filter={"min_run": 300000 + 2 * i, "max_run": 300001 + 2 * i},
                         delivery={"storm_threshold": 10**9, **delivery})
    alerts = _alerts(n_alerts, seed=7)
    for i in range(0, n_alerts, 200):  # as the pipeline writes them: batch by batch
        store.add_alerts(alerts[i: i + 200])
    return store, secrets


def bench_throughput(n_alerts: int, threads: int) -> dict:
    from hotline.alerts.delivery import DeliveryWorker
    from hotline.alerts.outbox import delivery_stats

    with tempfile.TemporaryDirectory() as d:
        port = _port()
        store, secrets = _setup_store(d, port, 10, n_alerts)
        recv = _start_receiver(port, secrets)
        try:
            with DeliveryWorker(store, threads=threads, poll=0.05) as w:
                t0 = time.perf_counter()
                stats = w.run(until_idle=True, timeout=240)
                dt = time.perf_counter() - t0
            st = delivery_stats(store)
            sent = sum(v["sent"] for v in st.values())
            failed = sum(v["failed"] + v["pending"] for v in st.values())
        finally:
            recv.terminate()
            store.close()
    rate = sent / dt
    print(f"throughput: {sent:,} webhook deliveries ({threads} threads, keep-alive, signed, "
          f"receiver verifies) in {dt:.2f} s = {rate:,.0f} deliveries/s "
          f"(target >= 1,000: {'met' if rate >= 1000 else 'NOT met'}); "
          f"not delivered: {failed}, retried {stats.retried}")
    return {"throughput_per_s": rate, "sent": sent, "seconds": dt, "threads": threads}


def bench_backlog(n_alerts: int, threads: int) -> dict:
    from hotline.alerts.delivery import DeliveryWorker
    from hotline.alerts.outbox import delivery_stats

    with tempfile.TemporaryDirectory() as d:
        port = _port()
        store, secrets = _setup_store(d, port, 10, n_alerts, backoff_base=0.5, backoff_max=2.0)
        with DeliveryWorker(store, threads=threads, poll=0.05) as w:
            # receiver down: every notification is formed and attempted once (refused)
            while True:
                w.step()
                st = delivery_stats(store)
                if (sum(v["retried"] for v in st.values()) >= n_alerts * 0.999
                        and not w._inflight):
                    break
            backlog = sum(v["pending"] for v in st.values())
            recv = _start_receiver(port, secrets)
            t0 = time.perf_counter()
            try:
                w.run(until_idle=True, timeout=240)
                dt = time.perf_counter() - t0
            finally:
                recv.terminate()
        st = delivery_stats(store)
        sent = sum(v["sent"] for v in st.values())
        store.close()
    print(f"backlog: {backlog:,} pending deliveries (receiver down, each refused >= 2 times; "
          f"backoff <= 2 s) drained in {dt:.2f} s after the receiver came back "
          f"({sent:,} sent, {sent / dt:,.0f}/s incl. waiting out the backoff)")
    return {"backlog": backlog, "drain_s": dt, "sent": sent}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--subs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--skip", action="append", default=[],
                    choices=["matching", "throughput", "backlog"])
    args = ap.parse_args(argv)
    header("alert subscriptions: matching, delivery throughput, backlog drain")
    print(f"alerts {args.alerts:,}, subscriptions {args.subs} (matching) / 10 (delivery), "
          f"worker threads {args.threads}, pid {os.getpid()}")
    out: dict = {}
    if "matching" not in args.skip:
        out["matching"] = bench_matching(args.alerts, args.subs)
    if "throughput" not in args.skip:
        out["throughput"] = bench_throughput(args.alerts, args.threads)
    if "backlog" not in args.skip:
        out["backlog"] = bench_backlog(args.alerts, args.threads)
    print(f"results: {save('subscriptions', out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
