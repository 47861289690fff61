"""The AE hotline rule: events whose anomaly score passes the threshold for a p-value.

``AERule(scorer, p_value)`` joins the classic cut-based rules in a menu (kind
``"ae"``). It scores the batch's feature matrix (``context["features"]``) with
the onnxruntime ``models.scorer.Scorer``, selects events above
``scorer.threshold(p_value)``, and attaches per event the score, its background
p-value and ``details(i)`` -- the per-object and per-type loss contributions (raw) and
the model name/version -- for the alert payload, with ``explained_by``: the type with the
strongest background-calibrated evidence (the smallest per-type p-value, listed as
``type_p_values``, when the card has a type calibration, else the largest standardised
excess ``excess``; ``models.type_evidence``, docs/attribution.md). Events flagged bad (NaN/inf)
are excluded from scoring (they are quarantined by the pipeline). A batch that lacks
feature branches (``context["features_missing"]``) makes the rule *unavailable* for it,
like a cut rule whose branches are absent; a batch whose features do not fit the model
raises ``ModelError``, which the pipeline turns into a dead letter.

A built-in rule kind ``"ae"`` of ``alerts.menu``, so a menu entry
``{name = "ae", kind = "ae", model = "ae_default", p_value = 1e-4}`` works too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hotline.alerts.rules import RuleOutcome
from hotline.errors import ModelError


class AERule:
    """Anomaly-score rule (see module docstring)."""

    kind = "ae"

    def __init__(self, scorer: Any, p_value: float, name: str | None = None) -> None:
        if not 0 < p_value < 1:
            raise ModelError(f"AE rule: p-value must be in (0, 1), got {p_value}")
        self.scorer = scorer
        self.p_value = float(p_value)
        self.threshold = float(scorer.threshold(self.p_value))
        self.name = name or f"{scorer.name}_p{p_value:.0e}"

    @property
    def needs(self) -> list[str]:
        return []

    def evaluate(self, arrays: Any, context: dict[str, Any]) -> RuleOutcome:
        features = context.get("features")
        if features is None and context.get("features_missing"):
            # a partial schema: the batch lacks feature branches -> unavailable, like a cut
            # rule whose branches are absent (never a failed file)
            return RuleOutcome(self.name, None, kind="ae",
                               missing=list(context["features_missing"]))
        if features is None:
            raise ModelError(f"rule {self.name}: the batch has no feature matrix "
                             f"(model {self.scorer.name} needs spec '{self.scorer.spec.name}')")
        n = len(features)
        good = context.get("good")
        good = ~features.bad if good is None else good
        idx = np.flatnonzero(good)
        self.scorer.check_spec(features)
        where = getattr(context.get("batch"), "origin", "batch")
        if idx.size == n:
            res = self.scorer.score_arrays(features.x, features.mask, where=where)
        else:
            res = self.scorer.score_arrays(features.x[idx], features.mask[idx], where=where)
        score = np.zeros(n, np.float64)
        score[idx] = res.total
        pval = np.ones(n, np.float64)
        pval[idx] = self.scorer.p_value(res.total)
        mask = np.zeros(n, bool)
        mask[idx] = res.total > self.threshold
        row = np.full(n, -1, np.int64)
        row[idx] = np.arange(idx.size)
        model, version = self.scorer.name, self.scorer.version
        ref = self.scorer.reference_contributions
        explain = getattr(self.scorer, "explain", None) or (
            lambda r: np.argmax(r.per_type, axis=1))
        type_p = getattr(self.scorer, "type_p_values", None) or (lambda r: None)
        explained: list[Any] = []  # computed once, on the first alert's details

        def details(i: int) -> dict[str, Any]:
            r = int(row[i])
            if r < 0:
                return {"contributions": {"objects": {}, "types": {}}, "model": model,
                        "version": version}
            out = {"contributions": res.contributions(r), "model": model, "version": version,
                   "threshold": self.threshold, "p_value_threshold": self.p_value}
            out["top_type"] = res.type_labels[int(np.argmax(res.per_type[r]))]
            if ref:  # (c - mean) / std per type vs the background reference: a second view
                out["excess"] = res.excess(r, ref)
            if not explained:
                explained.append(explain(res))
                explained.append(type_p(res))
            tp = explained[1]
            if tp is not None:  # per-type background p-values: the calibrated evidence
                out["type_p_values"] = {lab: float(f"{v:.3g}")
                                        for lab, v in zip(res.type_labels, tp[r])}
            if ref or tp is not None:
                # the type with the strongest calibrated evidence (models.type_evidence)
                out["explained_by"] = res.type_labels[int(explained[0][r])]
            return out

        per_type = np.zeros((n, len(res.type_labels)), np.float64)
        per_type[idx] = res.per_type
        return RuleOutcome(self.name, mask, kind="ae", score=score, p_value=pval,
                           details=details, per_type=per_type,
                           type_labels=tuple(res.type_labels))


def make_ae_rule(
    name: str, model: str, p_value: float = 1e-4, version: str = "latest",
    registry: str | Path | None = None,
) -> AERule:
    """Factory for rule menus: an ``AERule`` for a registered model."""
    from hotline.models.scorer import Scorer

    return AERule(Scorer.from_registry(model, version, registry), p_value, name=name)
