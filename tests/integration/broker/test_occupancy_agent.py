"""DQM through Kafka: occupancy maps on hotline.occupancy -> worker's conv-AE agent -> store.

The same maps scored in-process (``stream.dqm_pipeline.process_occupancy``) and through a real
broker + ``hotline worker`` + sink must give the same DQM alert ids; a bad map is a dead letter.
"""

from __future__ import annotations

import pytest

from hotline.detectors.occupancy import OccupancyMap, synthesize_lumis
from hotline.detectors.occupancy_faults import Fault, inject
from hotline.stream.agents_dqm import publish_maps
from hotline.stream.dqm_pipeline import DQMContext, process_occupancy
from hotline.stream.kafka_producer import make_producer
from tests.integration.broker.conftest import wait_for
from tests.integration.broker.helpers import stored_ids
from tests.integration.broker.test_kafka_path import sink  # noqa: F401 - fixture

pytestmark = pytest.mark.broker


def test_worker_scores_occupancy_maps_like_the_embedded_path(stream_env, workers, sink):  # noqa: F811
    _, cfg = stream_env
    dctx = DQMContext.from_registry(None, cfg.model.registry)
    geo = dctx.scorers["muon_barrel"].geometry
    epl = 10_000  # 7k-13k per lumisection: inside the models' calibrated range
    maps = synthesize_lumis(geo, 5, seed=21, run=88, events_per_lumi=epl).maps("hotline")
    bad, _ = inject(maps[2].counts, geo, [Fault("dead_board", unit="W+1 S04")])
    maps[2] = OccupancyMap(geo.name, 88, maps[2].lumi, bad, maps[2].n_events, "hotline")
    expected = {a.id for a in process_occupancy(maps, dctx).alerts}
    assert len(expected) >= 1
    prod = make_producer(cfg.stream)
    publish_maps(prod.send, cfg.stream.occupancy_topic, maps)
    prod.send(cfg.stream.occupancy_topic, key=b"88", value=b"not an occupancy message")
    prod.flush()
    prod.close()
    w = workers.start("w1")
    wait_for(lambda: stored_ids(sink.store) == expected or w.poll() is not None, 90,
             "DQM alerts from the worker in the store")
    assert w.poll() is None, workers.log("w1")
    assert stored_ids(sink.store) == expected
    [a] = [a for a in sink.store.alerts(kind="dqm") if a.lumi == maps[2].lumi]
    assert a.payload["top_units"][0]["unit"].startswith("W+1 S04")
    wait_for(lambda: len(sink.store.deadletters()) >= 1, 30, "the bad map as a dead letter")
