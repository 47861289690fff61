"""Event sources, the batch format, the pipelines and the Kafka/faust transport.

Sources and formats:

- ``stream.batch``: ``EventBatch``, the columnar chunk every stage passes on.
- ``stream.archive``: archives of runs (``run_<number>/`` folders of ROOT files, ``run.json``).
- ``stream.archive_writer``: writing archived runs (NanoAOD-style ROOT files).
- ``stream.replay``: ``ReplaySource``, paced uproot replay of archived runs.
- ``stream.h5source``: ADC2021-format HDF5 input as ``EventBatch``.
- ``stream.samples``: features of a process from the generated-sample archive or the toy
  generator (what training, calibration and firmware checks read).

Pipelines (the same functions on the embedded and the distributed path):

- ``stream.pipeline``: ``process_batch`` (the batch core), ``PipelineContext.from_config``
  and ``run_embedded``.
- ``stream.batch_alerts``: a batch's alert records built together (one objects payload and
  its JSON per alerted event, ids per batch) and the features its rules and alerts need.
- ``stream.dqm_pipeline``: occupancy maps -> conv-AE scores -> DQM alerts.
- ``stream.l1_emulation``: firmware in the loop: a build's bit-accurate L1 emulation beside
  the serving score (the ``l1`` rule, per-lumisection agreement, the divergence alarm).
- ``stream.redrive``: re-driving dead letters (fixed files replayed, kept payloads re-processed).

Distributed path (the ``kafka`` extra):

- ``stream.topics``: the Kafka topics, declared once from ``StreamConfig``.
- ``stream.codecs``: wire formats of the topics (Arrow IPC batches, JSON records).
- ``stream.alert_batches``: alert-batch records of ``hotline.alerts`` (JSON lines: a
  message's alerts and storm records; older single-alert records still read).
- ``stream.partitioning``: cutting batches into messages and routing them to partitions
  (by lumisection, run or message).
- ``stream.kafka_producer``: publishing batches to ``hotline.events`` (retry with backoff).
- ``stream.faust_app``: the faust application (``make_app``).
- ``stream.agents``: the event agent (decode, call the core, send; messages in flight,
  acked in offset order).
- ``stream.agents_dqm``: the occupancy agent and the occupancy-map wire format.
- ``stream.sink``: ``hotline.alerts`` / ``scores`` / ``deadletter`` -> alert store.
- ``stream.health``: heartbeat files of the worker and the sink, and their health checks.
- ``stream.log_throttle``: Kafka-client log lines during a broker outage, one per backoff step.
"""

__all__: list[str] = []
