"""The scorer interface every model kind's serving scorer implements (no torch, no onnxruntime).

Event models (``models.scorer.Scorer`` -> ``ScoreResult``) and occupancy models
(``models.conv_ae.ConvAEScorer`` -> ``DQMScores``) are used the same way:

* ``scorer.score(...)`` scores a batch (events: a ``FeatureMatrix``; maps: counts and
  event numbers) and returns :class:`Scores`: ``total`` [N], the score thresholds apply to,
  and ``contributions(i)``, input ``i``'s score broken down by group and label;
* ``scorer.p_value(total)``: background p-values of scores, from the card's reference;
* ``scorer.threshold(p)``: the calibrated score threshold for background p-value ``p``;
* ``scorer.name``, ``scorer.version`` and ``scorer.card`` identify the registered model.

A kind's ``score`` handler (``models.kinds``) returns a ``ModelScorer``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scores(Protocol):
    """Scores of a batch of N inputs (events or occupancy maps)."""

    total: np.ndarray  #: [N] the score thresholds apply to (larger = more anomalous)

    def __len__(self) -> int: ...

    def contributions(self, i: int, digits: int = 6) -> dict[str, dict[str, float]]:
        """Input ``i``'s score broken down: ``{group: {label: contribution}}``."""
        ...


@runtime_checkable
class ModelScorer(Protocol):
    """The serving scorer of one registered model."""

    card: dict[str, Any]

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def score(self, *args: Any, **kwargs: Any) -> Scores:
        """Score one batch of the kind's inputs."""
        ...

    def p_value(self, total: np.ndarray) -> np.ndarray:
        """Background p-value of each score (``ModelError`` when the model is not calibrated)."""
        ...

    def threshold(self, p: float) -> float:
        """The score threshold for background p-value ``p``."""
        ...


@runtime_checkable
class OccupancyScores(Scores, Protocol):
    """Scores of N occupancy maps: the map score plus what the DQM alert shows."""

    p_value: np.ndarray  #: [N] background p-value of the map score
    cell_loss: np.ndarray  #: [N, cells] per-cell loss
    expected: np.ndarray  #: [N, cells] the model's expected counts

    def top_units(self, i: int, k: int = 5) -> list[dict[str, Any]]:
        """Map ``i``'s most significant hardware units, most significant first."""
        ...


@runtime_checkable
class OccupancyScorer(ModelScorer, Protocol):
    """A scorer of the ``occupancy`` family: one monitored subsystem's maps."""

    geometry: Any  #: the subsystem's ``detectors.geometry.Geometry``

    def score(self, *args: Any, **kwargs: Any) -> OccupancyScores:
        """Score maps: ``score(counts [N, *shape], n_events [N])``."""
        ...

    @property
    def subsystem(self) -> str: ...

