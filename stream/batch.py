"""The batch that moves between source and alert: ``EventBatch``.

One ``EventBatch`` is a chunk of events as columnar arrays: an awkward record
array whose fields are NanoAOD branch names (``Electron_pt`` jagged,
``MET_pt`` flat, ...) plus the identifiers ``run``, ``luminosityBlock`` and
``event``. The same object comes out of the ROOT replay and out of a decoded
Kafka message, and is what ``stream.pipeline.process_batch`` consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np

ID_BRANCHES = ("run", "luminosityBlock", "event")


@dataclass
class EventBatch:
    """A columnar chunk of events with their run / lumisection / event ids.

    ``source`` is the logical data-stream name (part of every alert id);
    ``origin`` says where the batch physically came from (file path,
    topic/partition/offset) for error messages and the dead-letter record.
    """

    arrays: ak.Array
    source: str = "hotline"
    origin: str = "memory"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [b for b in ID_BRANCHES if b not in self.arrays.fields]
        if missing:
            from hotline.errors import MissingBranchError

            raise MissingBranchError(
                f"{self.origin}: id branch '{missing[0]}' is missing; every event needs "
                "run, luminosityBlock and event"
            )

    def __len__(self) -> int:
        return len(self.arrays)

    @property
    def run(self) -> np.ndarray:
        return ak.to_numpy(self.arrays["run"]).astype(np.int64, copy=False)

    @property
    def lumi(self) -> np.ndarray:
        return ak.to_numpy(self.arrays["luminosityBlock"]).astype(np.int64, copy=False)

    @property
    def event(self) -> np.ndarray:
        return ak.to_numpy(self.arrays["event"]).astype(np.int64, copy=False)

    @property
    def fields(self) -> set[str]:
        return set(self.arrays.fields)

    def take(self, mask_or_index: np.ndarray) -> EventBatch:
        """A sub-batch (boolean mask or integer index), same source and origin."""
        return EventBatch(self.arrays[mask_or_index], self.source, self.origin, dict(self.meta))
