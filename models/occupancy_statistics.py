"""Calibration of an occupancy model per events-per-lumisection: the statistics table.

A lumisection's occupancy map is sparse at a few hundred events and smooth at tens of
thousands; the null distribution of a map score depends on those statistics (single
tracks dominate a 250-event muon map). A model card therefore carries one calibration
per statistics *level* (``n_events`` log-spaced from the smallest to the largest the
model serves), each measured on clean maps of that many events:

```
"calibrated_events": {"min": 100, "max": 20000, "interpolation": "linear in log10 n"},
"statistics_calibration": {"levels": [
    {"n_events": 100, "n_ref": 4000, "thresholds": [{p, threshold, uncertainty, ...}],
     "reference": {...}}, ...], "sample": "...", "regenerate": "hotline dqm train ..."}
```

``StatisticsTable.from_card(card)`` reads it (None for cards without a table);
``threshold(p, n)`` interpolates each level's threshold for ``p`` linearly in
``log10 n`` between the two neighbouring levels (from the level's listed threshold, or
its reference distribution's inverse survival function for a p the card does not
list); ``p_value(score, n)`` interpolates ``log10 p`` the same way; ``problem(n)`` is
the one-line reason a map of ``n`` events is outside the calibrated range (None when
inside). numpy only (serving side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hotline.errors import ModelError
from hotline.models.thresholds import ReferenceDistribution

INTERPOLATION = "linear in log10(n_events) between neighbouring levels"


@dataclass
class StatisticsLevel:
    """The calibration at one statistics level: listed thresholds + reference scores."""

    n_events: float
    thresholds: dict[float, float]  #: p -> threshold
    reference: ReferenceDistribution

    def threshold(self, p: float) -> float:
        for q, t in self.thresholds.items():
            if abs(q - p) <= 1e-12 * max(p, 1e-300):
                return t
        return self.reference.isf(p)


class StatisticsTable:
    """Per-level calibration of a map score, interpolated in log10(n_events)."""

    def __init__(self, levels: list[StatisticsLevel], name: str = "model") -> None:
        if not levels:
            raise ModelError(f"{name}: statistics_calibration has no levels")
        self.levels = sorted(levels, key=lambda lv: lv.n_events)
        self.name = name
        self.log_n = np.log10([lv.n_events for lv in self.levels])
        if np.any(np.diff(self.log_n) <= 0):
            raise ModelError(f"{name}: statistics_calibration lists a level twice")

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> StatisticsTable | None:
        """The card's table, or None when the card has none (one calibration for all n)."""
        sc = card.get("statistics_calibration")
        if not sc:
            return None
        name = f"model {card.get('name', '?')} v{card.get('version', '?')}"
        try:
            levels = [StatisticsLevel(
                float(lv["n_events"]),
                {float(t["p"]): float(t["threshold"]) for t in lv.get("thresholds", [])},
                ReferenceDistribution.from_dict(lv["reference"]))
                for lv in sc["levels"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{name}: invalid statistics_calibration in its card ({exc!r})"
                             ) from None
        return cls(levels, name)

    @property
    def min_events(self) -> float:
        return float(self.levels[0].n_events)

    @property
    def max_events(self) -> float:
        return float(self.levels[-1].n_events)

    def problem(self, n_events: float) -> str | None:
        """Why a map of ``n_events`` events cannot be scored (None: it can)."""
        if self.min_events <= n_events <= self.max_events:
            return None
        return (f"{n_events:,.0f} events per lumisection is outside the range {self.name} is "
                f"calibrated for ({self.min_events:,.0f} to {self.max_events:,.0f}); "
                "map not scored")

    def inside(self, n_events: np.ndarray) -> np.ndarray:
        n = np.asarray(n_events, np.float64)
        return (n >= self.min_events) & (n <= self.max_events)

    def _bracket(self, n_events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower level index, upper level index, weight of the upper) per n (clipped)."""
        x = np.clip(np.log10(np.maximum(np.asarray(n_events, np.float64), 1.0)),
                    self.log_n[0], self.log_n[-1])
        hi = np.clip(np.searchsorted(self.log_n, x, side="left"), 0, len(self.log_n) - 1)
        lo = np.maximum(hi - 1, 0)
        span = self.log_n[hi] - self.log_n[lo]
        w = np.where(span > 0, (x - self.log_n[lo]) / np.where(span > 0, span, 1.0), 0.0)
        return lo, hi, w

    def threshold(self, p: float, n_events: float | np.ndarray) -> np.ndarray:
        """Map-score threshold for background p-value ``p`` at ``n_events`` (array-able)."""
        per_level = np.array([lv.threshold(p) for lv in self.levels])
        lo, hi, w = self._bracket(np.atleast_1d(n_events))
        out = (1.0 - w) * per_level[lo] + w * per_level[hi]
        return out if np.ndim(n_events) else out[:1].reshape(())

    def p_value(self, score: np.ndarray, n_events: np.ndarray) -> np.ndarray:
        """Background p-value of map scores at their events per lumisection (NaN outside
        the calibrated range). Each level's p-value is floored at what its reference
        supports, 1 / (100 x reference size)."""
        s = np.atleast_1d(np.asarray(score, np.float64))
        n = np.broadcast_to(np.asarray(n_events, np.float64), s.shape)
        logp = np.stack([np.log10(np.maximum(lv.reference.p_value(s),
                                             0.01 / lv.reference.n_ref))
                         for lv in self.levels])  # [levels, N]
        lo, hi, w = self._bracket(n)
        idx = np.arange(s.size)
        out = 10.0 ** ((1.0 - w) * logp[lo, idx] + w * logp[hi, idx])
        return np.where(self.inside(n), out, np.nan)

    def summary(self, p_values: tuple[float, ...] = (0.01, 1e-3)) -> list[dict[str, Any]]:
        """Rows ``{n_events, p: threshold ...}`` (for tables and messages)."""
        return [{"n_events": lv.n_events, **{f"{p:g}": round(lv.threshold(p), 4)
                                              for p in p_values}} for lv in self.levels]


def level_grid(lo: float, hi: float, k: int) -> list[int]:
    """``k`` statistics levels log-spaced from ``lo`` to ``hi`` events (rounded, distinct)."""
    if not (0 < lo < hi) or k < 2:
        raise ModelError(f"statistics levels {lo}:{hi}:{k}: need 0 < low < high and >= 2 "
                         "levels")
    return sorted({int(round(v)) for v in np.geomspace(lo, hi, k)})
