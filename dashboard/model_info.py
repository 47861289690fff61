"""What the dashboard knows of the anomaly model: its thresholds and background reference.

Owns ``Threshold`` (one calibrated AE threshold: background p-value and score),
``ReferenceSF`` (the model card's background survival table, turned into expected counts
per score bin for the score histogram), ``reference_from_card`` and ``load_model_info`` /
``load_thresholds``, which read them from the registered model's card
(``models.registry.load_model``). Loading never raises: no model configured, no registry
or a broken card give empty thresholds and a one-line note for the page, and the
dashboard then shows the classic rules only.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """The model card's background reference: survival table log10 P(score > s)."""

    scores: np.ndarray
    log10_p: np.ndarray
    n_ref: int

    def expected(self, edges: np.ndarray, n: float) -> np.ndarray:
        """Expected counts of ``n`` background events in the bins ``edges``."""
        sf = np.power(10.0, np.interp(edges, self.scores, self.log10_p, left=0.0,
                                      right=float(self.log10_p[-1])))
        return n * np.clip(sf[:-1] - sf[1:], 0.0, None)


def reference_from_card(card: dict[str, Any]) -> ReferenceSF | None:
    """``card["reference"]`` ({n_ref, scores, log10_p}) as a ``ReferenceSF`` (None if absent)."""
    ref = card.get("reference") or {}
    try:
        scores = np.asarray(ref["scores"], dtype=float)
        logp = np.asarray(ref["log10_p"], dtype=float)
        if scores.size < 2 or scores.size != logp.size:
            return None
        return ReferenceSF(scores, logp, int(ref.get("n_ref", 0)))
    except (KeyError, TypeError, ValueError):
        return None


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
