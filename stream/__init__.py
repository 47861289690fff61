"""Event sources, the batch format and the pipelines.

- ``stream.batch``: ``EventBatch``, the columnar chunk every stage passes on.
- ``stream.archive``: archives of runs (``run_<number>/`` folders of ROOT files).
- ``stream.replay``: ``ReplaySource``, paced uproot replay of archived runs.
- ``stream.pipeline``: ``process_batch`` (the shared batch core) and ``run_embedded``.
"""

__all__: list[str] = []
