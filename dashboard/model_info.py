"""What the dashboard knows of the anomaly model: its thresholds and background reference.

Owns ``Threshold`` (one calibrated AE threshold: background p-value and score),
``ReferenceSF`` (the model card's background survival function -- the table and, beyond
it, the card's fitted tail -- turned into expected counts per score bin for the score
histogram over the whole score range), ``reference_from_card`` and ``load_model_info`` /
``load_thresholds``, which read them from the registered model's card
(``models.registry.load_model``). Loading never raises: no model configured, no registry
or a broken card give empty thresholds and a one-line note for the page, and the
dashboard then shows the classic rules only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ReferenceSF", "Threshold", "load_model_info", "load_thresholds",
           "reference_from_card"]


@dataclass(frozen=True)
class Threshold:
    """One calibrated AE threshold from the model card."""

    p: float
    threshold: float

    @property
    def label(self) -> str:
        return f"p={self.p:.0e}".replace("e-0", "e-")


@dataclass(frozen=True)
class ReferenceSF:
    """The model card's background reference: survival table log10 P(score > s), continued
    beyond the table by the card's tail fit (``dist``, ``models.thresholds``) when it has one."""

    scores: np.ndarray
    log10_p: np.ndarray
    n_ref: int
    dist: Any = field(default=None, compare=False)  #: ``ReferenceDistribution`` with tail

    @property
    def has_tail(self) -> bool:
        """True when the survival function is known beyond the table (a tail fit)."""
        return self.dist is not None and self.dist.u is not None

    def survival(self, s: np.ndarray) -> np.ndarray:
        """P(score > s) of the background: the table, then the tail fit; without a tail
        fit the survival beyond the table is unknown and taken as the table's last value
        (so no events are expected there)."""
        s = np.asarray(s, dtype=float)
        if self.has_tail:
            return np.asarray(self.dist.p_value(s), dtype=float)
        return np.power(10.0, np.interp(s, self.scores, self.log10_p, left=0.0,
                                        right=float(self.log10_p[-1])))

    def expected(self, edges: np.ndarray, n: float) -> np.ndarray:
        """Expected counts of ``n`` background events in the bins ``edges``."""
        sf = self.survival(edges)
        return n * np.clip(sf[:-1] - sf[1:], 0.0, None)

    def reach(self) -> float:
        """The largest score with a known survival (inf with a tail fit)."""
        return float("inf") if self.has_tail else float(self.scores[-1])


def reference_from_card(card: dict[str, Any]) -> ReferenceSF | None:
    """``card["reference"]`` ({n_ref, scores, log10_p}) as a ``ReferenceSF`` (None if absent)."""
    ref = card.get("reference") or {}
    try:
        scores = np.asarray(ref["scores"], dtype=float)
        logp = np.asarray(ref["log10_p"], dtype=float)
        if scores.size < 2 or scores.size != logp.size:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    dist = None
    if ref.get("tail"):
        from hotline.errors import ModelError
        from hotline.models.thresholds import ReferenceDistribution

        try:
            dist = ReferenceDistribution.from_dict(ref)
            dist.tail()  # an incomplete tail fit is no tail
        except ModelError:
            dist = None
    return ReferenceSF(scores, logp, int(ref.get("n_ref", 0)), dist)


def load_thresholds(model_name: str, registry: str | None = None,
                    version: str | None = None) -> tuple[list[Threshold], str]:
    """Thresholds from ``models.registry.load_model(name).card["thresholds"]``.

    Returns (thresholds sorted by decreasing p, a one-line note for the page).
    Never raises: no model configured, no registry yet, or a broken card all give
    ``([], reason)`` so the dashboard still shows the classic rules.
    """
    thresholds, _, note = load_model_info(model_name, registry, version)
    return thresholds, note


def load_model_info(model_name: str, registry: str | None = None, version: str | None = None,
                    ) -> tuple[list[Threshold], ReferenceSF | None, str]:
    """(thresholds, background reference, note) of a registered model; never raises."""
    if not model_name:
        return [], None, "no anomaly model configured ([model] name): classic rules only"
    try:
        from hotline.models.registry import load_model
    except ImportError as exc:
        return [], None, f"model registry unavailable ({exc})"
    model = None
    errors = []
    for kwargs in ({"registry": registry, "version": version}, {"version": version}, {}):
        kwargs = {k: v for k, v in kwargs.items() if v}
        try:
            model = load_model(model_name, **kwargs)
            break
        except TypeError as exc:  # older/newer signature: try a simpler call
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown on the page, not fatal
            return [], None, f"cannot load model '{model_name}': {exc}"
    if model is None:
        return [], None, f"cannot load model '{model_name}': {'; '.join(errors)}"
    card = getattr(model, "card", None) or {}
    out = []
    for t in card.get("thresholds", []) or []:
        try:
            out.append(Threshold(float(t["p"]), float(t["threshold"])))
        except (KeyError, TypeError, ValueError):
            continue
    ref = reference_from_card(card)
    if not out:
        return [], ref, f"model '{model_name}' has no thresholds in its card"
    out.sort(key=lambda t: -t.p)
    return out, ref, f"model {model_name} ({len(out)} thresholds)"
