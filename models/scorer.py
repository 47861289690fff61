"""The serving-time scorer of the event model kinds: onnxruntime on batches, with the loss
decomposition.

``Scorer`` is the ``score`` handler of the kinds ``ae``, ``vae`` and ``ensemble`` (any
event kind whose ONNX graph takes ``x`` and ``mask``; ``models.kinds``) and implements the
scorer interface of ``models.interface`` (``ScoreResult`` its ``Scores``). No torch.

``Scorer(model)`` / ``Scorer.from_registry(name, version)`` opens the model's
ONNX scoring graph in one single-threaded onnxruntime session. ``score(features)``
takes a ``detectors.features.FeatureMatrix`` (raw features + object mask) and
returns a ``ScoreResult``: per event the total score and its decomposition into
per-feature, per-object (met, e1..e4, mu1..mu4, j1..j10) and per-type (MET,
electrons, muons, jets) contributions that sum to the total.

Normalisation is baked into the ONNX graph (see ``models.export``): the scorer
passes raw features and the mask, so serving and training apply exactly the
same transformation, and padded objects are masked from the loss in both.
Graphs of the current layout return the squared errors by field (``sq_by_field``); the
per-feature losses are computed from them when ``ScoreResult.per_feature`` is first read
(``per_feature_from_fields``). Graphs exported before it (the shipped registry versions)
return ``per_feature`` directly; both load and give the same numbers.

For a VAE scored by ``kl`` or ``mu2`` the latent score has no per-feature
decomposition; the contributions are then the reconstruction-loss shares
rescaled to sum to the score (documented attribution, not a decomposition).

A card whose ``score`` is ``types_<method>`` (sidak, fisher, weighted, budget) scores events
by the combined per-type background p-values of its ``type_calibration``
(``models.type_evidence``): ``total`` is ``-log10`` of the combined p, the contributions
stay the raw loss decomposition (summing to ``extra["recon"]``), ``extra["type_evidence"]``
holds every type's statistics and ``type_log10_p(result)`` (kept in
``extra["type_log10_p"]``) their log10 p-values, computed when first asked for (the
``types_budget`` score itself needs only the whole loss's p-value and the per-type
tails). ``explain(result)`` names the type that explains each event (smallest per-type
p-value; without a type calibration the largest standardised excess).

``p_value(total)`` maps scores to background p-values with the reference
survival table + tail fit stored in the card; ``threshold(p)`` returns the
calibrated threshold (or refuses when the reference cannot support p).

Bad input -- wrong feature count or feature spec, NaN/inf values -- raises
``ModelError`` naming the problem; the pipeline quarantines such batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import ModelError
from hotline.models.interface import ModelScorer, Scores
from hotline.models.registry import RegisteredModel, load_model
from hotline.models.thresholds import ReferenceDistribution
from hotline.models.type_evidence import TypeEvidence, explain_by_excess, type_energy

#: card scores computed from the per-type references: ``types_<combination>``
TYPE_SCORES = ("types_sidak", "types_fisher", "types_weighted", "types_budget")

log = logging.getLogger(__name__)

CHUNK = 4096  #: batches larger than this run in chunks (cache-friendly, no extra copies)


def per_feature_from_fields(sq_by_field: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-feature losses [n, F] (features' order, padded slots 0, / F) from a scoring graph's
    ``sq_by_field`` output (squared errors in the permuted order pT..., eta..., phi...)."""
    n, f = sq_by_field.shape
    o = f // 3
    out = sq_by_field.reshape(n, 3, o).transpose(0, 2, 1) * (
        mask.astype(np.float32)[:, :, None] / np.float32(f))
    return np.ascontiguousarray(out.reshape(n, f), dtype=np.float32)


class ScoreResult(Scores):
    """Scores of one batch (numpy arrays, float32 unless noted).

    ``per_feature`` may be given as an array or as a function computing it, called on first
    read (the scorer's per-feature losses: see ``per_feature_from_fields``)."""

    def __init__(self, total: np.ndarray,
                 per_feature: np.ndarray | Callable[[], np.ndarray],
                 per_object: np.ndarray, per_type: np.ndarray, object_labels: list[str],
                 type_labels: list[str], extra: dict[str, np.ndarray] | None = None) -> None:
        self.total = total  #: [n]
        self._per_feature = per_feature  #: [n, F], or how to compute it
        self.per_object = per_object  #: [n, O]
        self.per_type = per_type  #: [n, K]
        self.object_labels = object_labels
        self.type_labels = type_labels
        self.extra: dict[str, np.ndarray] = extra or {}  #: recon, kl, mu2 (VAE)

    @property
    def per_feature(self) -> np.ndarray:
        """[n, F] per-feature losses (computed on first read when given as a function)."""
        if callable(self._per_feature):
            self._per_feature = self._per_feature()
        return self._per_feature

    @per_feature.setter
    def per_feature(self, value: np.ndarray) -> None:
        self._per_feature = value

    def __len__(self) -> int:
        return int(self.total.shape[0])

    def contributions(self, i: int, digits: int = 6) -> dict[str, dict[str, float]]:
        """Event ``i``'s contributions as {"objects": {label: v}, "types": {label: v}}."""
        return {
            "objects": {lab: round(float(v), digits)
                        for lab, v in zip(self.object_labels, self.per_object[i])},
            "types": {lab: round(float(v), digits)
                      for lab, v in zip(self.type_labels, self.per_type[i])},
        }

    def top_type(self, reference: dict[str, Any] | None = None) -> np.ndarray:
        """Index of the most anomalous object type of each event.

        Without ``reference``: the largest per-type contribution. With the card's
        ``reference_contributions`` ({"types": {"mean": [...], "std": [...]}}): the
        largest standardised excess (c - mean) / std over the background, so a type
        with many slots (jets) does not win just by being large on average.
        """
        if not reference:
            return np.argmax(self.per_type, axis=1)
        mean = np.asarray(reference["types"]["mean"], np.float64)
        std = np.maximum(np.asarray(reference["types"]["std"], np.float64), 1e-12)
        return np.argmax((self.per_type - mean) / std, axis=1)

    def attribute(self, reference: dict[str, Any] | None = None,
                  follow_z: float = 1.0) -> np.ndarray:
        """Index of the object type that explains each event's score (shown to the crew).

        The largest per-type contribution -- except that MET, which is derived (minus the
        vector sum of the visible objects), is followed to the visible type that moved
        it: when MET is the top contribution and the largest visible type's contribution
        is more than ``follow_z`` background standard deviations above its reference mean
        (``reference_contributions``), that type is named. MET stays when no visible type
        is anomalous (invisible particles, objects lost in a dead region). Without a
        reference this is ``top_type()``.
        """
        top = np.argmax(self.per_type, axis=1)
        labels = list(self.type_labels)
        if not reference or "MET" not in labels:
            return top
        k_met = labels.index("MET")
        mean = np.asarray(reference["types"]["mean"], np.float64)
        std = np.maximum(np.asarray(reference["types"]["std"], np.float64), 1e-12)
        visible = self.per_type.astype(np.float64).copy()
        visible[:, k_met] = -np.inf
        second = np.argmax(visible, axis=1)
        z = (self.per_type[np.arange(len(top)), second] - mean[second]) / std[second]
        return np.where((top == k_met) & (z > follow_z), second, top)

    def excess(self, i: int, reference: dict[str, Any], digits: int = 3) -> dict[str, float]:
        """Event ``i``'s per-type standardised excess over the background reference."""
        mean = np.asarray(reference["types"]["mean"], np.float64)
        std = np.maximum(np.asarray(reference["types"]["std"], np.float64), 1e-12)
        z = (self.per_type[i] - mean) / std
        return {lab: round(float(v), digits) for lab, v in zip(self.type_labels, z)}


class Scorer(ModelScorer):
    """onnxruntime scorer of a registered event model (see module docstring)."""

    def __init__(self, model: RegisteredModel, threads: int = 1) -> None:
        import onnxruntime as ort

        from hotline.detectors.spec import FeatureSpec

        self.model = model
        self.card = model.card
        self.spec = FeatureSpec.from_dict(self.card["feature_spec"])
        self._spec_dict = self.spec.to_dict()
        self.score_name = str(self.card.get("score", "recon"))
        self.object_labels = self.spec.object_labels
        self.type_labels = self.spec.object_types
        self._type_index = self.spec.object_type_index()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(model.onnx_path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(f"model {model.name} v{model.version}: onnxruntime cannot load "
                             f"{model.onnx_path}: {exc}") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if set(inputs) != {"x", "mask"} or inputs["x"][1] != self.spec.n_features:
            raise ModelError(f"model {model.name} v{model.version}: ONNX inputs {inputs} do not "
                             f"match the card's feature spec ({self.spec.n_features} features)")
        tc = self.card.get("type_calibration")
        #: per-type background references (``models.type_evidence``), when calibrated
        self.type_evidence = TypeEvidence.from_dict(tc) if tc else None
        if self.type_evidence is not None:
            self.type_evidence.check_labels(self.type_labels, f"model {model.name}")
        if self.score_name in TYPE_SCORES:
            if self.type_evidence is None:
                raise ModelError(f"model {model.name}: score '{self.score_name}' needs the "
                                 "card's type_calibration (per-type references)")
        elif self.score_name != "recon" and self.score_name not in self.outputs:
            raise ModelError(f"model {model.name}: score '{self.score_name}' is not an output")
        ref = self.card.get("reference")
        self.reference = ReferenceDistribution.from_dict(ref) if ref else None
        #: mean/std of per-type and per-object contributions on the reference background
        self.reference_contributions: dict[str, Any] | None = self.card.get(
            "reference_contributions")

    @classmethod
    def from_registry(
        cls, name: str, version: str | int = "latest", registry: str | Path | None = None
    ) -> Scorer:
        return cls(load_model(name, version, registry))

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.version

    def _check(self, x: np.ndarray, mask: np.ndarray, where: str) -> None:
        f, o = self.spec.n_features, self.spec.n_objects
        if x.ndim != 2 or x.shape[1] != f:
            raise ModelError(
                f"{where}: model {self.name} v{self.version} expects {f} features "
                f"(spec '{self.spec.name}'), got an array of shape {x.shape}"
            )
        if mask.shape != (x.shape[0], o):
            raise ModelError(f"{where}: object mask has shape {mask.shape}, "
                             f"expected ({x.shape[0]}, {o})")
        if not np.isfinite(x).all():
            rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
            if rows.size:
                raise ModelError(
                    f"{where}: {rows.size} event(s) hold NaN/inf features (first rows "
                    f"{rows[:5].tolist()}); quarantine them before scoring"
                )

    def score_arrays(self, x: np.ndarray, mask: np.ndarray, where: str = "batch") -> ScoreResult:
        """Score raw features ``x`` [n, F] with object ``mask`` [n, O]."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        mask = np.ascontiguousarray(mask, dtype=bool)
        self._check(x, mask, where)
        if x.shape[0] == 0:
            o, k = self.spec.n_objects, len(self.type_labels)
            z = np.zeros(0, np.float32)
            return ScoreResult(z, np.zeros((0, x.shape[1]), np.float32), np.zeros((0, o),
                               np.float32), np.zeros((0, k), np.float32),
                               self.object_labels, self.type_labels)
        if x.shape[0] > CHUNK:
            out = self._run_chunked(x, mask)
        else:
            out = dict(zip(self.outputs, self.session.run(None, {"x": x, "mask": mask})))
        ratio: np.ndarray | None = None
        total = out["total"]
        if "kl" in out and self.score_name != "recon":
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(total > 0, out[self.score_name] / total, 0.0).astype(np.float32)
        per_feature: np.ndarray | Callable[[], np.ndarray]
        if "per_feature" in out:  # a graph exported before the permuted layout
            per_feature = out["per_feature"] if ratio is None else out["per_feature"] * ratio[
                :, None]
        else:
            sq, r = out["sq_by_field"], ratio

            def per_feature() -> np.ndarray:
                pf = per_feature_from_fields(sq, mask)
                return pf if r is None else pf * r[:, None]
        res = ScoreResult(total, per_feature, out["per_object"], out["per_type"],
                          self.object_labels, self.type_labels)
        if self.type_evidence is not None:
            te = self.type_evidence
            energy = (type_energy(x, mask, self._type_index, len(self.type_labels))
                      if "energy" in te.statistics else None)
            rows = te.evidence_rows(res.per_type, energy)
            res.extra = {**res.extra, "type_evidence": rows.T}  # [n, K x S], like the rest
            if self.score_name in TYPE_SCORES:
                # the score is the combined per-type evidence; the contributions stay the
                # raw loss decomposition (their sum is extra["recon"])
                res.extra["recon"] = res.total
                res.total, lp = te.score_rows(rows, self.score_name[len("types_"):])
                if lp is not None:
                    res.extra["type_log10_p"] = lp
        if "kl" in out:
            res.extra = {"recon": total, "kl": out["kl"], "mu2": out["mu2"]}
            if ratio is not None:
                res.per_object = res.per_object * ratio[:, None]
                res.per_type = res.per_type * ratio[:, None]
                res.total = out[self.score_name]
        return res

    def _run_chunked(self, x: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Large batches: run in CHUNK-row pieces that onnxruntime writes straight into
        preallocated result arrays (IO binding), keeping the working set in cache."""
        n = x.shape[0]
        widths = {"per_feature": x.shape[1], "sq_by_field": x.shape[1], "per_object": mask.shape[1],
                  "per_type": len(self.type_labels)}
        out = {k: np.empty((n, widths[k]) if k in widths else (n,), np.float32)
               for k in self.outputs}
        io = self.session.io_binding()
        for s in range(0, n, CHUNK):
            e = min(n, s + CHUNK)
            io.bind_cpu_input("x", x[s:e])
            io.bind_cpu_input("mask", mask[s:e])
            for k, arr in out.items():
                view = arr[s:e]
                io.bind_output(k, "cpu", 0, np.float32, list(view.shape), view.ctypes.data)
            self.session.run_with_iobinding(io)
        return out

    def explain(self, res: ScoreResult) -> np.ndarray:
        """Index of the object type that explains each event of ``res`` (the alerts'
        ``explained_by``): the smallest per-type background p-value when the card has a
        type calibration, else the largest standardised excess over the background
        (``reference_contributions``), else the largest raw contribution."""
        lp = self.type_log10_p(res)
        if self.type_evidence is not None and lp is not None:
            return self.type_evidence.explain(np.power(10.0, lp), res.per_type)
        if self.reference_contributions:
            return explain_by_excess(res.per_type, self.reference_contributions)
        return np.argmax(res.per_type, axis=1)

    def type_p_values(self, res: ScoreResult) -> np.ndarray | None:
        """Per-type background p-values of ``res`` [n, K], the smallest over each type's
        statistics (None without a type calibration)."""
        lp = self.type_log10_p(res)
        if self.type_evidence is None or lp is None:
            return None
        return self.type_evidence.type_p(np.power(10.0, lp))

    def type_log10_p(self, res: ScoreResult) -> np.ndarray | None:
        """log10 background p-values of every statistic of every type of ``res`` [n, K x S]
        (None without a type calibration), computed on first request and kept in
        ``res.extra["type_log10_p"]``: the score of ``types_budget`` does not need them
        all, alerts' details do."""
        if "type_log10_p" not in res.extra:
            if self.type_evidence is None or "type_evidence" not in res.extra:
                return None
            res.extra["type_log10_p"] = self.type_evidence.log10_p_values_of_rows(
                res.extra["type_evidence"].T)
        return res.extra["type_log10_p"]

    def check_spec(self, features: Any) -> None:
        """``ModelError`` unless ``features`` (a FeatureMatrix) uses this model's feature spec."""
        spec = getattr(features, "spec", None)
        if spec is not None and spec.to_dict() != self._spec_dict:
            raise ModelError(
                f"features use spec '{spec.name}' ({spec.n_features} features), but model "
                f"{self.name} v{self.version} was trained on spec '{self.spec.name}' "
                f"({self.spec.n_features} features); extract features with the model's spec"
            )

    def score(self, features: Any) -> ScoreResult:
        """Score a ``FeatureMatrix`` (its spec must be the model's)."""
        self.check_spec(features)
        return self.score_arrays(features.x, features.mask)

    def p_value(self, total: np.ndarray) -> np.ndarray:
        """Background p-value of each score, from the card's reference distribution."""
        if self.reference is None:
            raise ModelError(f"model {self.name} v{self.version} is not calibrated "
                             "(no reference distribution); run 'hotline calibrate'")
        return self.reference.p_value(total)

    def threshold(self, p: float) -> float:
        """The score threshold for background p-value ``p``."""
        for t in self.card.get("thresholds", []):
            if np.isclose(t["p"], p, rtol=1e-9, atol=0):
                return float(t["threshold"])
        for r in self.card.get("refused", []):
            if np.isclose(r["p"], p, rtol=1e-9, atol=0):
                raise ModelError(f"model {self.name} v{self.version}: no threshold for "
                                 f"p = {p:g}: {r['reason']}")
        if self.reference is None:
            raise ModelError(f"model {self.name} v{self.version} is not calibrated; "
                             "run 'hotline calibrate'")
        return self.reference.isf(p)
