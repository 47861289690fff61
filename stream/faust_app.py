"""The faust-streaming application of the distributed path: ``make_app(cfg)``.

Delivery guarantee (why a SIGKILLed worker loses no alert and duplicates none
in the store): the app runs with ``processing_guarantee="at_least_once"``. The
agent queues a message's alert batch, summaries and dead letters on the producer and
acks the message only once the broker has confirmed them and every earlier message
of the partition is acked (``stream.agents.InFlight``: up to 16 messages in flight,
no wait per message); faust commits the consumer offset of ``hotline.events`` only
up to the first message not acked, and flushes its producer before every commit
(every ``[stream] commit_interval`` s). So a worker killed at any point has either
published everything a message produced, or its offset was not committed and
the message is processed again after a rebalance (by the restarted worker or
another one). Re-processing produces the *same* alert ids (hash of source, run,
lumisection, event, rule), and the alert store inserts each id once, so the
store ends up exact: at-least-once delivery + idempotent store = effectively
once. (Exactly-once transactions would add Kafka transaction latency and still
need the idempotent store for the sink side.) Per-lumisection *summaries* are
exact the same way: each partial summary carries a part id derived from the
events it covers (``stream.pipeline``), the same whichever worker re-processes
the message, and the store adds each part id once (``add_summary_parts``, one
transaction, safe with several sinks). Only the faust count tables (events and
alerts per lumisection, changelogged in Kafka) stay additive: a message
re-processed after a crash is counted twice there. ``hotline worker`` also
commits the start offset of every ``hotline.events`` partition the group never
committed (``stream.topics.initialise_group_offsets``), so the first rebalances
of a fresh group cannot skip records either.

Broker outages: faust 0.15 does not pass aiokafka's ``retry_backoff_ms`` on, so
the clients retry every 100 ms and log each failure; ``make_worker`` runs the
app in a faust ``Worker`` whose log handlers carry ``stream.log_throttle``'s
filter (one WARNING per backoff step, with the count of suppressed lines).

Fetch wait: faust 0.15 creates its consumer with ``fetch_max_wait_ms=1500``. A worker's
consumer also fetches the empty occupancy and changelog partitions on the same broker,
and aiokafka sends no new fetch to a broker while one is in flight; an empty fetch is held
by the broker for the whole wait, so the events partition was fetched only every ~1.6 s
and a worker faster than ~24 messages per 1.6 s idled up to half of its time
(``bench_kafka``). ``make_app`` sets the wait to ``[stream] fetch_max_wait`` (0.1 s).

No module-level app: nothing happens at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hotline.config import Config, default_state_dir
from hotline.stream.pipeline import PipelineContext
from hotline.stream.topics import Topics, topics_for

log = logging.getLogger(__name__)


_FETCH_WAIT_MS: list[int] = []  #: the wait set_fetch_max_wait chose (empty: faust's)


def set_fetch_max_wait(seconds: float) -> None:
    """Make faust's worker consumers let the broker hold an empty fetch at most ``seconds``
    (module docstring): wraps its consumer factory once, which reads the value at start."""
    from faust.transport.drivers import aiokafka as driver

    _FETCH_WAIT_MS[:] = [max(1, round(seconds * 1000))]
    thread = driver.AIOKafkaConsumerThread
    if getattr(thread._create_worker_consumer, "hotline_fetch_wait", False):
        return
    create = thread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        if _FETCH_WAIT_MS:  # read by aiokafka when the consumer starts its fetcher
            consumer._fetch_max_wait_ms = _FETCH_WAIT_MS[0]
        return consumer

    create_worker_consumer.hotline_fetch_wait = True  # type: ignore[attr-defined]
    thread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def make_app(
    cfg: Config,
    ctx: PipelineContext | None = None,
    datadir: str | Path | None = None,
    web_port: int | None = None,
    tables: bool = True,
    extra_agents: Iterable[Callable[[Any, Topics], Any]] = (),
) -> Any:
    """A configured ``faust.App`` with the Hotline agents attached (not started).

    ``extra_agents``: callables ``f(app, topics)`` that attach more agents (e.g. the DQM
    occupancy agent of ``stream.agents_dqm``) to the same app and topics.
    """
    import faust

    from hotline.stream.agents import register_agents
    from hotline.stream.codecs import register_codecs

    s = cfg.stream
    register_codecs()
    set_fetch_max_wait(s.fetch_max_wait)
    port = s.web_port if web_port is None else web_port
    datadir = Path(datadir or s.datadir or default_state_dir() / "faust" / s.app_id)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        s.app_id,
        broker=s.broker,
        processing_guarantee="at_least_once",
        broker_commit_interval=s.commit_interval,
        broker_commit_every=1000,
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=max(0.5, s.session_timeout / 10),
        broker_request_timeout=max(40.0, s.session_timeout + 5),
        broker_rebalance_timeout=max(20.0, s.session_timeout * 2),
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=s.max_message_bytes,
        producer_max_request_size=s.max_message_bytes,
        producer_acks=-1,
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_disable_leader=True,
        table_cleanup_interval=60.0,
        # wait after a rebalance before table recovery / resuming streams: workers that join
        # one after another then cause one rebalance, not a recovery cut short by a second
        # one (seen here to leave a worker idle on its new partitions with faust 0.15.3)
        stream_recovery_delay=s.recovery_delay,
        # a full buffer pauses the partition's fetch, and faust 0.15 resumes it only when
        # its fetcher's current getmany (timeout 1 s) returns: a stall of up to 1 s that
        # cost 40 % of a worker's wall time with a 16-message buffer (bench_kafka); the
        # buffer refills at half, which must hold more than a second of scoring
        stream_buffer_maxsize=max(4, s.buffer_messages),
        web_enabled=port > 0,
        web_port=port if port > 0 else 6066,
        web_host="0.0.0.0" if port > 0 else "127.0.0.1",
        datadir=str(datadir),
        store="memory://",
        autodiscover=False,
        logging_config=None,
    )
    if ctx is None:
        ctx = PipelineContext.from_config(cfg)
    topics = topics_for(s)
    register_agents(app, topics, ctx, tables=tables, merge_events=max(0, s.merge_events))
    for attach in extra_agents:
        attach(app, topics)
    return app


def make_worker(app: Any, loglevel: str = "warning") -> Any:
    """A faust ``Worker`` running ``app`` whose logging throttles the Kafka clients' repeated
    lines during a broker outage (``stream.log_throttle``)."""
    import logging as _logging

    from faust import Worker

    from hotline.stream.log_throttle import install

    class HotlineWorker(Worker):
        def on_setup_root_logger(self, logger: _logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            install(logger)  # faust has just replaced the root handlers

    return HotlineWorker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
