"""``[stream] fetch_max_wait`` reaches the consumer faust creates for a worker.

faust 0.15 hard-codes a 1.5 s fetch wait, which held the events partition behind the
worker's empty occupancy and changelog partitions (``stream.faust_app``); the consumer the
worker's app builds must carry the configured wait instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from hotline.config import Config
from hotline.stream.faust_app import make_app


@pytest.mark.parametrize("seconds, expect_ms", [(0.1, 100), (0.25, 250), (2.0, 2000)])
def test_worker_consumer_fetch_wait_is_the_configured_one(tmp_path, seconds, expect_ms):
    base = Config()
    cfg = dataclasses.replace(base, stream=dataclasses.replace(
        base.stream, broker="kafka://127.0.0.1:1", fetch_max_wait=seconds))

    async def consumer_wait() -> int:
        app = make_app(cfg, datadir=tmp_path / "faust", tables=False)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()  # never started: closes its client

    # its own thread and event loop: an earlier test of the session may have left one
    # running in this thread (asyncio.run refuses to nest)
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(asyncio.run(consumer_wait())))
    t.start()
    t.join(60)
    assert got == [expect_ms]
