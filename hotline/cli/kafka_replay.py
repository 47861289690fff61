"""``hotline replay RUN --to kafka://HOST:PORT``: publish an archived run to ``hotline.events``.

Called by ``hotline.cli.replay`` when ``--to`` is given. Reads the run with the
same ``ReplaySource`` as the embedded path (same branches, rate, start lumi),
creates the topics if needed, sends one Arrow IPC message per ~4096 events keyed
by run, waits for every broker confirmation and prints the final count and rate.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from hotline.config import Config
from hotline.errors import SourceError, StreamError
from hotline.stream.kafka_producer import make_producer, quiet_kafka_logs
from hotline.stream.kafka_producer import publish as publish_batches
from hotline.stream.topics import ensure_topics


def publish(cfg: Config, args: argparse.Namespace, source: Any) -> int:
    """Publish ``source`` (a ``ReplaySource`` / ``H5Source``) to ``args.to``."""
    if not args.to.startswith("kafka://"):
        raise StreamError(f"--to {args.to}: only kafka://HOST:PORT is supported")
    cfg = cfg.with_overrides({"stream": {"broker": args.to}})
    quiet_kafka_logs()
    probe = make_producer(cfg.stream)  # bounded retry with backoff when the broker is absent
    created = ensure_topics(cfg.stream, timeout=cfg.stream.connect_timeout)
    console = Console(soft_wrap=True)
    if created:
        console.print(f"created topics: {', '.join(created)}")
    report = publish_batches(source, cfg.stream, producer=probe)
    probe.close(timeout=10)
    console.print(
        f"published {report.events:,} events in {report.messages:,} messages "
        f"({report.bytes / 1e6:,.1f} MB) to {cfg.stream.events_topic} at {cfg.stream.broker}; "
        f"all confirmed by the broker; {report.seconds:.2f} s, {report.rate:,.0f} events/s"
    )
    errors = list(getattr(source, "errors", []))
    if report.events == 0:
        raise SourceError("no events were published"
                          + (f": {'; '.join(map(str, errors))}" if errors else ""))
    return 0  # file problems: printed once (per-file table) by the caller
