"""Helpers of the broker tests: publish test events, read the store, run the embedded reference."""

from __future__ import annotations

from hotline.alerts.store import SQLiteAlertStore
from hotline.config import Config
from hotline.stream.batch import EventBatch
from hotline.stream.kafka_producer import PublishReport, publish
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.topics import ensure_topics
from tests.conftest import make_events


def event_batches(n: int, runs: tuple[int, ...] = (11,), seed: int = 5,
                  per_batch: int = 1000) -> list[EventBatch]:
    out = []
    for k, run in enumerate(runs):
        arrays = make_events(n, seed=seed + k, run=run, events_per_lumi=200)
        for i in range(0, n, per_batch):
            out.append(EventBatch(arrays[i : i + per_batch], source="hotline", origin=f"run{run}"))
    return out


def send(cfg: Config, batches: list[EventBatch], per_message: int = 500) -> PublishReport:
    ensure_topics(cfg.stream)
    scfg = cfg.with_overrides({"stream": {"events_per_message": per_message}}).stream
    return publish(batches, scfg)


def embedded_ids(batches: list[EventBatch], tmp_path) -> set[str]:
    """Alert ids of the embedded pipeline on the same batches (the parity reference)."""
    with SQLiteAlertStore(tmp_path / "reference.db") as ref:
        run_embedded(batches, PipelineContext(), ref)
        return {a.id for a in ref.alerts()}


def stored_ids(store) -> set[str]:
    return {a.id for a in store.alerts()}
