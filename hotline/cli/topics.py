"""``hotline topics``: create the Kafka topics, or grow them to ``[stream] partitions``.

The deployment's one-shot topic initialiser (``kafka-init`` in docker-compose.yml) and
an operator's tool after changing ``HOTLINE_STREAM_PARTITIONS``: missing topics are
created, topics with fewer partitions are grown, a topic with more partitions than
configured is refused in one line (Kafka cannot remove partitions). Prints every topic
with its partition count.
"""

from __future__ import annotations

import argparse

from hotline.cli.common import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "topics",
        help="create the Kafka topics or grow them to [stream] partitions",
        description="Create the Hotline topics (and the worker tables' changelogs) on the "
        "broker, or grow them to [stream] partitions (HOTLINE_STREAM_PARTITIONS); refuses "
        "fewer partitions than a topic has (Kafka cannot remove partitions). Waits for the "
        "broker up to [stream] connect_timeout.",
    )
    p.add_argument("--broker", metavar="URL", default=None,
                   help="Kafka broker, kafka://HOST:PORT (env: HOTLINE_STREAM_BROKER)")
    p.add_argument("--partitions", type=int, default=None, metavar="N",
                   help="partitions per topic (env: HOTLINE_STREAM_PARTITIONS, default 4)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from hotline.cli.worker import wait_for_broker
    from hotline.stream.topics import changelog_topics, topic_partitions, topics_for

    cfg = config_from(args, stream={"broker": args.broker, "partitions": args.partitions})
    wait_for_broker(cfg)  # creates and grows (or refuses) the topics
    names = [*topics_for(cfg.stream).all(), *changelog_topics(cfg.stream)]
    for name, n in topic_partitions(cfg.stream, names).items():
        print(f"{name}: {n} partitions")
    return 0
