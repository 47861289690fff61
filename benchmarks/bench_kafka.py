"""Kafka path figures: throughput per worker, produce->stored latency, worker memory.

Starts a real single-node Kafka 3.9.1 broker (KRaft, cached Maven jars) and one
``hotline worker`` subprocess, then measures

1. throughput replay -> broker -> one worker -> alerts, events/s (wall, and per CPU-second
   of the worker process), with ~4096-event Arrow IPC messages, for the menus ``tight``
   (hotline-like alert rate, ~1e-3; thresholds raised) and ``storm40`` (40 % of events
   alerting), the latter without and with the storm guard (``[alerts]
   max_alerts_per_lumi``); each beside **the limit measured in the same run on the same
   topic**: an aiokafka consumer + Hotline's own ``decode_batch`` (and consumer + the
   worker's scoring, ``MessageMerger``, with the same menu: the worker with free output);
   and the naive
   design, one JSON message per event, each scored on its own - ratio;
2. latency event-produced -> alert-stored (worker + sink, SQLite) at a steady
   10 kHz input, 1000-event messages every 0.1 s: p50 / p99, for the ``moderate``
   menu (~1 % of events alert) and the alert-heavy default menu;
3. worker RSS at start and end of a long run (``--long-events``, default 10 M as
   in the issue; ~2.5 min here);
4. scale-out within one run: the same long run (one run number, ``--scaling-events``,
   20,000 events per lumisection) on 4 partitions keyed by lumisection
   (``[stream] partition_by = "lumi"``), published before the workers start, scored by 1
   and then by 2 workers: events/s from the first to the last scored message, and the
   ratio (target >= 1.7x on 2 cores).

Run: ``.venv/bin/python -m benchmarks.bench_kafka [--events N] [--long-events N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import awkward as ak
import numpy as np

from benchmarks.common import header, save

HOTLINE = str(Path(sys.executable).parent / "hotline")
TIGHT_MENU = """
[[rule]]
name = "1jet_pt600"
kind = "count"
collection = "Jet"
min_pt = 600
[[rule]]
name = "met400"
kind = "scalar"
branch = "MET_pt"
min_value = 400
[[rule]]
name = "1mu_pt300"
kind = "count"
collection = "Muon"
min_pt = 300
[[rule]]
name = "1e_pt300"
kind = "count"
collection = "Electron"
min_pt = 300
"""
MODERATE_MENU = """
[[rule]]
name = "1jet_pt250"
kind = "count"
collection = "Jet"
min_pt = 250
[[rule]]
name = "met250"
kind = "scalar"
branch = "MET_pt"
min_value = 250
[[rule]]
name = "1mu_pt150"
kind = "count"
collection = "Muon"
min_pt = 150
[[rule]]
name = "1e_pt150"
kind = "count"
collection = "Electron"
min_pt = 150
"""
#: ~40 % of the synthetic events alert (0.47 alerts per event)
STORM40_MENU = """
[[rule]]
name = "1jet_pt95"
kind = "count"
collection = "Jet"
min_pt = 95
[[rule]]
name = "met120"
kind = "scalar"
branch = "MET_pt"
min_value = 120
[[rule]]
name = "1mu_pt60"
kind = "count"
collection = "Muon"
min_pt = 60
[[rule]]
name = "1e_pt60"
kind = "count"
collection = "Electron"
min_pt = 60
"""
MENUS = {"tight": TIGHT_MENU, "moderate": MODERATE_MENU, "exotica": None,
         "storm40": STORM40_MENU}
#: the storm-guard run: alerts in full per rule per lumisection, then 1 in STORM_SAMPLE
STORM_THRESHOLD, STORM_SAMPLE = 1000, 100


def events(n: int, seed: int, run: int, start_event: int = 0,
           per_lumi: int = 20_000) -> ak.Array:
    from tests.conftest import make_events

    a = make_events(n, seed=seed, run=run, events_per_lumi=per_lumi)
    return ak.with_field(a, np.arange(start_event + 1, start_event + n + 1, dtype=np.uint64),
                         "event")


def write_cfg(tmp: Path, broker: str, tag: str, menu: str | None, per_message: int,
              partitions: int = 1, guard: int = 0) -> Path:
    lines = ["[stream]", f'broker = "{broker}"', f'app_id = "bench-{tag}"',
             f'events_topic = "ev-{tag}"', f'scores_topic = "sc-{tag}"',
             f'alerts_topic = "al-{tag}"', f'deadletter_topic = "dl-{tag}"',
             f'occupancy_topic = "oc-{tag}"', f'sink_group = "sink-{tag}"',
             f"events_per_message = {per_message}", f"partitions = {partitions}",
             "session_timeout = 10.0",
             "", "[store]", f'url = "sqlite:///{tmp / (tag + ".db")}"']
    alerts = [f"max_alerts_per_lumi = {guard}", f"storm_sample = {STORM_SAMPLE}"]
    if menu:
        (tmp / f"{tag}.toml").write_text(menu)
        alerts.append(f'rules = "{tmp / (tag + ".toml")}"')
    lines += ["", "[alerts]", *alerts]
    p = tmp / f"{tag}.cfg.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def start_worker(cfg_path: Path, tmp: Path, name: str) -> tuple[subprocess.Popen, Path]:
    log = tmp / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    p = subprocess.Popen([HOTLINE, "--config", str(cfg_path), "worker", "--datadir",
                          str(tmp / f"data-{name}"), "--loglevel", "info"],
                         stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                         start_new_session=True)
    return p, log


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


STAMP = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*scored (\d+) events from \S+"
    r"(?: \((\d+) messages\))?: (\d+) alerts"
)


def scored(log: Path) -> list[tuple[float, int, int, int]]:
    """(time, events, alerts, messages) of each scoring call the worker logged (a call
    scores one message, or several together: ``[stream] merge_events``)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = STAMP.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((t, int(m.group(2)), int(m.group(4)), int(m.group(3) or 1)))
    return out


def messages(log: Path) -> int:
    """Messages the worker has scored so far."""
    return sum(x[3] for x in scored(log))


def wait(cond, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def throughput(broker, tmp: Path, n: int, menu: str | None, label: str, guard: int = 0,
               per_lumi: int = 20_000) -> dict:
    """One worker scoring ``n`` published events; wall rate from its log stamps (messages
    2..N) and events per CPU-second of the worker process over the same span."""
    import psutil

    from hotline.config import load_config
    from hotline.stream.batch import EventBatch
    from hotline.stream.kafka_producer import publish
    from hotline.stream.topics import ensure_topics

    tag = f"{label}-{uuid.uuid4().hex[:6]}"
    cfg_path = write_cfg(tmp, broker.url, tag, menu, 4096, guard=guard)
    cfg = load_config(cfg_path, environ={})
    ensure_topics(cfg.stream)
    arrays = events(n, seed=1, run=1, per_lumi=per_lumi)
    batches = [EventBatch(arrays[i : i + 65536]) for i in range(0, n, 65536)]
    rep = publish(batches, cfg.stream)
    w, log = start_worker(cfg_path, tmp, tag)
    proc = psutil.Process(w.pid)
    n_msgs = rep.messages
    cpu0 = None
    t_end = time.monotonic() + 900
    try:
        while (done := messages(log)) < n_msgs and w.poll() is None:
            if cpu0 is None and done >= 1:  # the first call is logged: the clock starts
                c = proc.cpu_times()
                cpu0 = (c.user + c.system, len(scored(log)))
            if time.monotonic() > t_end:
                raise RuntimeError(f"timed out: the worker scored {done}/{n_msgs} messages")
            time.sleep(0.05)
        c = proc.cpu_times()
        cpu1 = c.user + c.system
    finally:
        stop(w)
    s = scored(log)
    if sum(x[3] for x in s) < n_msgs:
        raise RuntimeError(f"worker scored {sum(x[3] for x in s)} of {n_msgs} messages:\n"
                           + log.read_text()[-3000:])
    # rate over scoring calls 2..N (the first call's time includes the agent's start)
    ev = sum(x[1] for x in s[1:])
    secs = s[-1][0] - s[0][0]
    alerts = sum(x[2] for x in s)
    cpu_ev = sum(x[1] for x in s[cpu0[1]:]) if cpu0 else 0
    cpu_rate = cpu_ev / (cpu1 - cpu0[0]) if cpu0 and cpu1 > cpu0[0] else 0.0
    return {"label": label, "events": n, "messages": n_msgs, "produce_rate": rep.rate,
            "message_bytes": rep.bytes / max(1, n_msgs), "rate": ev / secs if secs > 0 else 0.0,
            "cpu_rate": cpu_rate, "alerts": alerts, "alert_fraction": alerts / n,
            "guard": guard, "per_lumi": per_lumi, "topic": cfg.stream.events_topic,
            "cfg_path": str(cfg_path)}


def limit(broker, topic: str, n: int, cfg_path: Path | None = None) -> dict:
    """The limit for the same work, same topic, same run: an aiokafka consumer reading the
    topic from the start + Hotline's ``decode_batch`` (and, with the worker's ``cfg_path``,
    its scoring: ``MessageMerger`` with the worker's context - menu, default model, storm
    guard, ``merge_events`` - records encoded: the worker with free output); events/s wall
    and per CPU-second."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from hotline.stream.agents import Incoming, MessageMerger
    from hotline.stream.codecs import decode_batch
    from hotline.stream.pipeline import PipelineContext
    from hotline.stream.topics import topics_for

    ctx = merger = None
    if cfg_path is not None:
        from hotline.cli.common import with_default_model
        from hotline.config import load_config

        cfg = load_config(cfg_path, environ={})
        ctx = PipelineContext.from_config(with_default_model(cfg))
        merger = MessageMerger(ctx, topics_for(cfg.stream), ctx.storm_guard(),
                               cfg.stream.merge_events)

    def scored(outcomes: list) -> tuple[int, int, int]:
        n = alerts = alerted = 0
        for o in outcomes:
            res = o.result
            if res is None:
                continue
            n += res.n_events
            alerts += len(res.alerts) + sum(st.listed for st in res.storms)
            alerted += len({a.event for a in res.alerts}
                           | {e for st in res.storms for e in st.events.tolist()})
        return n, alerts, alerted

    async def run() -> tuple[float, float, int, int, int]:
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=16 << 20,
                             fetch_max_bytes=64 << 20)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            done = alerts = alerted = 0
            t0 = c0 = None
            while done < n:
                got = await c.getmany(tp, timeout_ms=1000, max_records=64)
                outcomes: list = []
                for r in got.get(tp, []):
                    if t0 is None:
                        t0, c0 = time.perf_counter(), time.process_time()
                    if merger is None:
                        done += len(decode_batch(r.value))
                        continue
                    outcomes += merger.add(Incoming(r, tp, r.value, f"{topic}@{r.offset}"))
                if merger is not None:  # the fetched records are taken: score what is left
                    n_ev, n_al, n_ald = scored(outcomes + merger.flush())
                    done, alerts, alerted = done + n_ev, alerts + n_al, alerted + n_ald
            return (time.perf_counter() - t0, time.process_time() - c0, done, alerts, alerted)
        finally:
            await c.stop()

    wall, cpu, done, alerts, alerted = asyncio.run(run())
    return {"what": "consumer + decode" + (" + scoring" if ctx else ""), "events": done,
            "rate": done / wall, "cpu_rate": done / cpu, "alerts": alerts,
            "alerted_fraction": alerted / done if ctx else None}


def naive_json(broker, n: int) -> dict:
    """The naive design: one JSON message per event, decoded and scored one by one."""
    from kafka import KafkaConsumer, KafkaProducer

    from hotline.stream.batch import EventBatch
    from hotline.stream.pipeline import PipelineContext, process_batch

    topic = f"naive-{uuid.uuid4().hex[:6]}"
    records = ak.to_list(events(n, seed=2, run=1))
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, acks="all")
    for r in records:
        prod.send(topic, key=b"1", value=json.dumps(r).encode())
    prod.flush()
    prod.close()
    ctx = PipelineContext()
    cons = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                         group_id=topic, enable_auto_commit=False)
    done, alerts, t0 = 0, 0, None
    while done < n:
        for recs in cons.poll(timeout_ms=1000).values():
            for r in recs:
                if t0 is None:
                    t0 = time.perf_counter()
                batch = EventBatch(ak.Array([json.loads(r.value)]))
                alerts += len(process_batch(batch, ctx).alerts)
                done += 1
    secs = time.perf_counter() - t0
    cons.close()
    return {"label": "naive-json-per-event", "events": n, "rate": n / secs, "alerts": alerts}


def latency(broker, tmp: Path, seconds: float, menu: str = "moderate",
            rate: float = 10_000.0) -> dict:
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.stream.batch import EventBatch
    from hotline.stream.kafka_producer import make_producer, publish
    from hotline.stream.replay import Pacer
    from hotline.stream.sink import run_sink
    from hotline.stream.topics import ensure_topics

    per_msg = int(rate / 10)
    tag = f"lat-{uuid.uuid4().hex[:6]}"
    cfg_path = write_cfg(tmp, broker.url, tag, MENUS[menu], per_msg)
    cfg = load_config(cfg_path, environ={})
    ensure_topics(cfg.stream)
    store = SQLiteAlertStore(tmp / f"{tag}.sink.db")
    lat: list[float] = []
    t_send: dict[int, float] = {}
    stop_sink = threading.Event()

    def on_stored(records, new, t_stored):
        for a in new:
            lat.append(t_stored - t_send[(a.event - 1) // per_msg])

    sink = threading.Thread(target=run_sink, args=(cfg.stream, store),
                            kwargs={"stop": stop_sink.is_set, "on_stored": on_stored}, daemon=True)
    sink.start()
    w, log = start_worker(cfg_path, tmp, tag)
    wait(lambda: "Worker ready" in log.read_text(errors="replace"), 120,
         "the worker to join")
    prod = make_producer(cfg.stream, linger_ms=0)
    n_msgs = int(seconds * 10)
    arrays = events(n_msgs * per_msg, seed=3, run=1)
    pacer = Pacer(rate)
    for i in range(n_msgs):
        piece = EventBatch(arrays[i * per_msg : (i + 1) * per_msg])
        pacer.wait(per_msg)
        t_send[i] = time.time()
        publish([piece], cfg.stream, producer=prod)
    prod.close()
    expected = None
    try:
        wait(lambda: messages(log) >= n_msgs, 120, "the worker to catch up")
        expected = sum(x[2] for x in scored(log))
        wait(lambda: len(lat) >= expected, 60, "the sink to store every alert")
    finally:
        stop(w)
        stop_sink.set()
        sink.join(30)
        store.close()
    arr = np.array(lat)
    return {"menu": menu, "rate_hz": rate, "events": n_msgs * per_msg,
            "events_per_message": per_msg, "alerts": int(arr.size),
            "p50_s": float(np.percentile(arr, 50)),
            "p99_s": float(np.percentile(arr, 99)), "max_s": float(arr.max())}


def memory(broker, tmp: Path, n: int, chunk: int = 200_000) -> dict:
    import psutil

    from hotline.config import load_config
    from hotline.stream.batch import EventBatch
    from hotline.stream.kafka_producer import make_producer, publish
    from hotline.stream.topics import ensure_topics

    tag = f"mem-{uuid.uuid4().hex[:6]}"
    cfg_path = write_cfg(tmp, broker.url, tag, TIGHT_MENU, 4096)
    cfg = load_config(cfg_path, environ={})
    ensure_topics(cfg.stream)
    w, log = start_worker(cfg_path, tmp, tag)
    proc = psutil.Process(w.pid)
    wait(lambda: "Worker ready" in log.read_text(errors="replace"), 120,
         "the worker to join")
    prod = make_producer(cfg.stream)
    base = events(chunk, seed=4, run=2)
    rss: list[tuple[int, float]] = []
    sent = 0
    n_msgs = 0
    try:
        while sent < n:
            m = min(chunk, n - sent)
            arr = ak.with_field(base[:m], np.arange(sent + 1, sent + m + 1, dtype=np.uint64),
                                "event")
            n_msgs += publish([EventBatch(arr)], cfg.stream, producer=prod).messages
            sent += m
            done = messages(log)
            rss.append((done, proc.memory_info().rss / 1e6))
        t_end = time.monotonic() + 900
        while (done := messages(log)) < n_msgs:  # sample RSS while the worker catches up
            if time.monotonic() > t_end or w.poll() is not None:
                raise RuntimeError(f"worker stopped at {done}/{n_msgs} messages")
            rss.append((done, proc.memory_info().rss / 1e6))
            time.sleep(1.0)
        rss.append((n_msgs, proc.memory_info().rss / 1e6))
    finally:
        prod.close()
        stop(w)
    first = next((r for d, r in rss if d > 0), rss[0][1])
    half = [r for d, r in rss if d >= n_msgs // 2]
    return {"events": n, "messages": n_msgs, "rss_start_mb": first,
            "rss_half_mb": half[0] if half else first, "rss_end_mb": rss[-1][1],
            "rss_max_mb": max(r for _, r in rss), "samples": rss}


def scaling(broker, tmp: Path, n: int, n_workers: int, partitions: int = 4) -> dict:
    """One run of ``n`` events (20,000 per lumisection) scored by ``n_workers`` workers that
    share ``partitions`` lumisection-keyed partitions; rate from first to last scored."""
    from hotline.config import load_config
    from hotline.stream.batch import EventBatch
    from hotline.stream.kafka_producer import publish
    from hotline.stream.topics import ensure_topics

    tag = f"scale{n_workers}-{uuid.uuid4().hex[:6]}"
    cfg_path = write_cfg(tmp, broker.url, tag, TIGHT_MENU, 4096, partitions=partitions)
    cfg = load_config(cfg_path, environ={})
    ensure_topics(cfg.stream)
    # the run is on the broker before any worker starts: the rate is the workers', not the
    # publisher's (a publisher slower than the workers would cap both figures alike); the
    # workers start together and wait out the group's rebalance before resuming
    # (``[stream] recovery_delay``), so neither scores the run alone first
    arrays = events(n, seed=6, run=3)
    rep = publish([EventBatch(arrays[i : i + 65536]) for i in range(0, n, 65536)], cfg.stream)
    procs = [start_worker(cfg_path, tmp, f"{tag}-w{i}") for i in range(n_workers)]
    try:

        def done() -> int:
            return sum(messages(log) for _, log in procs)

        wait(lambda: done() >= rep.messages or any(p.poll() is not None for p, _ in procs),
             900, "the workers to score the run")
    finally:
        for p, _ in procs:
            stop(p)
    per = [scored(log) for _, log in procs]
    stamps = sorted(x for s in per for x in s)
    if sum(x[3] for x in stamps) < rep.messages:
        raise RuntimeError(f"workers scored {sum(x[3] for x in stamps)} of {rep.messages} "
                           "messages")
    secs = stamps[-1][0] - stamps[0][0]
    ev = sum(x[1] for x in stamps[1:])  # the first call's time includes the wake-up
    return {"workers": n_workers, "partitions": partitions, "events": n,
            "messages": rep.messages, "rate": ev / secs if secs > 0 else 0.0,
            "seconds": secs, "events_per_worker": [sum(x[1] for x in s) for s in per]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=800_000, help="events for the throughput runs")
    ap.add_argument("--naive-events", type=int, default=3_000)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--latency-menu", nargs="+", default=["moderate", "exotica"],
                    choices=sorted(MENUS), help="rule menus of the latency runs")
    ap.add_argument("--long-events", type=int, default=10_000_000,
                    help="events of the memory run (issue: 10,000,000)")
    ap.add_argument("--scaling-events", type=int, default=1_200_000,
                    help="events of the one run scored by 1 and by 2 workers")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["throughput", "latency", "memory", "scaling"])
    args = ap.parse_args(argv)

    from tests.integration.broker.kafka_server import KafkaBroker
    from tests.support.fetch import kafka_jars

    header("Kafka path: replay -> Kafka 3.9.1 (KRaft, 1 node) -> 1 faust worker -> alerts")
    print(f"load average at start: {os.getloadavg()[0]:.1f} (machine shared with other jobs)")
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-kafka-"))
    broker = KafkaBroker(kafka_jars(), workdir=tmp / "kafka", heap="1g")
    (tmp / "kafka").mkdir()
    broker.start()
    results: dict = {}
    try:
        if "throughput" not in args.skip:
            runs = [("tight", TIGHT_MENU, 0, 20_000), ("storm40", STORM40_MENU, 0, 20_000),
                    ("storm40-guard", STORM40_MENU, STORM_THRESHOLD, 200_000)]
            results["throughput"] = []
            print(f"events: {args.events:,} per run, 4096 events per message, 1 partition, "
                  "1 worker (default model on); load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"  {'run':15s} {'worker ev/s':>12s} {'per CPU-s':>10s} | {'limit ev/s':>11s} "
                  f"{'per CPU-s':>10s} {'fraction':>8s} | {'+scoring':>14s} "
                  f"{'per CPU-s':>10s}")
            for label, menu, guard, per_lumi in runs:
                r = throughput(broker, tmp, args.events, menu, label, guard, per_lumi)
                lim = limit(broker, r["topic"], args.events)
                core = limit(broker, r["topic"], args.events, Path(r["cfg_path"]))
                r["limit"], r["limit_process"] = lim, core
                results["throughput"].append(r)
                print(f"  {label:15s} {r['rate']:>12,.0f} {r['cpu_rate']:>10,.0f} | "
                      f"{lim['rate']:>11,.0f} {lim['cpu_rate']:>10,.0f} "
                      f"{r['rate'] / lim['rate']:>8.1%} | {core['rate']:>14,.0f} "
                      f"{core['cpu_rate']:>10,.0f}   alerts/event {r['alert_fraction']:.3f}, "
                      f"alerting events {core['alerted_fraction']:.1%}"
                      + (f", guard {guard}/rule/LS, LS {per_lumi:,} events" if guard else ""))
            naive = naive_json(broker, args.naive_events)
            results["naive"] = naive
            tight = results["throughput"][0]
            print(f"  naive (1 JSON message per event, {args.naive_events:,} events): "
                  f"{naive['rate']:>10,.0f} events/s; batched tight / naive "
                  f"{tight['rate'] / naive['rate']:.0f}x")
            print("  targets (issues 19, 21): tight >= 30 % of the limit and >= 186,000 ev/s, "
                  f"40 % alerts >= 100,000 ev/s (quiet machine; load now "
                  f"{os.getloadavg()[0]:.1f})")
        if "latency" not in args.skip:
            results["latency"] = []
            for menu in args.latency_menu:
                lat = latency(broker, tmp, args.latency_seconds, menu)
                results["latency"].append(lat)
                print(f"latency produce -> alert stored (worker + sink, SQLite), {menu} menu, "
                      f"{lat['rate_hz']:,.0f} Hz, {lat['events_per_message']} events/message, "
                      f"{lat['events']:,} events, {lat['alerts']:,} alerts: "
                      f"p50 {lat['p50_s']:.3f} s, p99 {lat['p99_s']:.3f} s, "
                      f"max {lat['max_s']:.3f} s (target p99 < 1 s)")
        if "memory" not in args.skip:
            mem = memory(broker, tmp, args.long_events)
            results["memory"] = mem
            scaled = "" if mem["events"] >= 10_000_000 else " (issue: 10,000,000; scaled down)"
            print(f"worker RSS over {mem['events']:,} events{scaled}: "
                  f"start {mem['rss_start_mb']:.0f} MB, half-way {mem['rss_half_mb']:.0f} MB, "
                  f"end {mem['rss_end_mb']:.0f} MB, "
                  f"max {mem['rss_max_mb']:.0f} MB (target < 1 GB, flat)")
        if "scaling" not in args.skip:
            one = scaling(broker, tmp, args.scaling_events, 1)
            two = scaling(broker, tmp, args.scaling_events, 2)
            results["scaling"] = [one, two]
            print(f"one run, {args.scaling_events:,} events, 20,000 per lumisection, 4 "
                  f"partitions keyed by lumisection, tight menu + default model:")
            for r in (one, two):
                print(f"  {r['workers']} worker(s): {r['rate']:>10,.0f} events/s "
                      f"(events per worker: {', '.join(f'{e:,}' for e in r['events_per_worker'])})")
            print(f"  ratio 2/1: {two['rate'] / one['rate']:.2f}x (target >= 1.7x on 2 cores; "
                  f"load average now {os.getloadavg()[0]:.1f})")
    finally:
        broker.cleanup()
    print(f"results: {save('kafka', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
