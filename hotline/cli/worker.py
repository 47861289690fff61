"""``hotline worker`` (a faust worker scoring ``hotline.events``) and ``hotline sink``.

``hotline worker`` checks the broker first (bounded retry with backoff, then a
one-line error), creates the topics if needed and runs the faust worker until
SIGTERM / Ctrl-C. Start several for more throughput: Kafka shares the
partitions of ``hotline.events`` between them. ``hotline sink`` writes alerts,
summaries and dead letters from Kafka into the alert store. Both write a heartbeat
(``stream.health``) that ``hotline health`` checks.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from hotline.cli.common import (
    add_emulation_options,
    add_model_options,
    add_store_option,
    config_from,
    emulation_section,
    model_section,
    store_from,
    with_default_model,
)
from hotline.config import Config


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", metavar="URL", default=None,
                   help="Kafka broker, kafka://HOST:PORT (env: HOTLINE_STREAM_BROKER)")
    p.add_argument("--connect-timeout", type=float, default=None, metavar="S",
                   help="give up if the broker cannot be reached for this long (default 30 s)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="score events from Kafka (hotline.events) and publish alerts (faust worker)",
        description="Run one faust worker: read event batches from hotline.events, apply the "
        "hotline rules and the registered default anomaly model (same code and defaults as "
        "'hotline replay': --model to choose another, --no-model for the classic rules "
        "only), publish alerts to hotline.alerts, "
        "lumisection summaries to hotline.scores and undecodable input to hotline.deadletter. "
        "Run several workers to share the partitions. Stop with Ctrl-C or SIGTERM.",
    )
    _add_stream_options(p)
    p.add_argument("--rules", metavar="TOML", default=None,
                   help="rule menu file (default: built-in Exotica Hotline menu)")
    p.add_argument("--datadir", metavar="DIR", default=None,
                   help="faust data directory of this worker (env: HOTLINE_STREAM_DATADIR)")
    p.add_argument("--web-port", type=int, default=None, metavar="PORT",
                   help="faust web/health port (default: disabled)")
    p.add_argument("--loglevel", default="warning", help="faust log level (default warning)")
    p.add_argument("--no-dqm", action="store_true",
                   help="do not score occupancy maps (hotline.occupancy); by default the worker "
                        "scores them with every registered conv-AE model")
    p.add_argument("--dqm-p-value", type=float, default=None, metavar="P",
                   help="DQM alert p-value of the occupancy maps (default: [dqm] p_value, env "
                        "HOTLINE_DQM_P_VALUE: 1e-3)")
    add_model_options(p, default="the registered default model (ae_default)")
    add_emulation_options(p)
    p.set_defaults(handler=handle_worker)

    s = sub.add_parser(
        "sink",
        help="write alerts from Kafka (hotline.alerts) into the alert store",
        description="Consume hotline.alerts, hotline.scores and hotline.deadletter and write them "
        "into the alert store; offsets are committed only after the store write, and alerts are "
        "stored once each even if records are read twice.",
    )
    _add_stream_options(s)
    add_store_option(s)
    s.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="stop after S seconds without new records (default: run forever)")
    s.set_defaults(handler=handle_sink)


def _config(args: argparse.Namespace, **extra: dict) -> Config:
    stream = {"broker": args.broker, "connect_timeout": args.connect_timeout,
              **extra.pop("stream", {})}
    return config_from(args, stream=stream, **extra)


def wait_for_broker(cfg: Config) -> None:
    """Bounded retry with backoff until the broker answers, then create missing topics."""
    from hotline.stream.kafka_producer import (
        BOOTSTRAP_TIMEOUT_MS,
        quiet_kafka_logs,
        retry_with_backoff,
    )
    from hotline.stream.topics import bootstrap_servers, ensure_topics

    quiet_kafka_logs()

    def probe() -> None:
        from kafka import KafkaAdminClient

        KafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.stream.broker),
                         request_timeout_ms=5000, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS).close()

    retry_with_backoff(f"cannot reach Kafka broker {cfg.stream.broker}", probe,
                       cfg.stream.connect_timeout)
    ensure_topics(cfg.stream, timeout=cfg.stream.connect_timeout)


def worker_config(args: argparse.Namespace) -> Config:
    """The worker's configuration: file < env < its command-line options; the anomaly model
    is the registered default unless one is configured or ``--no-model`` is given."""
    return with_default_model(_config(
        args, stream={"datadir": args.datadir, "web_port": args.web_port},
        alerts={"rules": args.rules}, dqm={"p_value": args.dqm_p_value},
        model=model_section(args), firmware=emulation_section(args)))


def dqm_context(cfg: Any) -> Any:
    """The DQM context the worker's occupancy agent scores with: every registered conv-AE
    and the ``[dqm] p_value`` of ``cfg`` (``HOTLINE_DQM_P_VALUE``, ``--dqm-p-value``)."""
    from hotline.stream.dqm_pipeline import DQMContext

    return DQMContext.from_config(cfg)


def dqm_agents(cfg: Any, enabled: bool = True) -> list[Any]:
    """The occupancy-scoring agent (``stream.agents_dqm``) when conv-AE models are registered."""
    if not enabled:
        return []
    from hotline.stream.agents_dqm import register_dqm_agent

    dctx = dqm_context(cfg)
    if not dctx.scorers:
        logging.getLogger(__name__).warning("no conv-AE model registered: occupancy maps on %s "
                                            "are not scored", cfg.stream.occupancy_topic)
        return []
    return [lambda app, topics: register_dqm_agent(app, topics, dctx)]


def handle_worker(args: argparse.Namespace) -> int:
    from hotline.stream.faust_app import make_app, make_worker
    from hotline.stream.health import Heartbeat, attach_worker_heartbeat

    beat = Heartbeat("worker").start()  # first: a worker failing on every start leaves a trace
    cfg = worker_config(args)
    wait_for_broker(cfg)
    from hotline.stream.topics import initialise_group_offsets

    initialise_group_offsets(cfg.stream, timeout=cfg.stream.connect_timeout)
    app = make_app(cfg, extra_agents=dqm_agents(cfg, enabled=not args.no_dqm))
    attach_worker_heartbeat(app, beat)
    worker = make_worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()  # returns on SIGTERM / SIGINT (exits the process)
    return 0


def handle_sink(args: argparse.Namespace) -> int:
    from hotline.stream.health import Heartbeat
    from hotline.stream.sink import run_sink

    beat = Heartbeat("sink").start()
    cfg = _config(args)
    wait_for_broker(cfg)
    with store_from(cfg) as store:
        logging.getLogger(__name__).warning("sink: writing %s into %s",
                                            cfg.stream.alerts_topic, store.url)
        report = run_sink(cfg.stream, store, idle_exit=args.idle_exit,
                          on_poll=lambda r: beat.beat(r.records),
                          l1_min_agreement=cfg.firmware.min_agreement)
    print(f"sink stored {report.alerts_new:,} new alerts ({report.alerts_seen:,} read), "
          f"{report.summaries:,} partial summaries ({report.summaries_new:,} new), "
          f"{report.storms_new:,} storm records, {report.deadletters:,} dead letters")
    return 0
