"""A batch's alert records, built together, and the features its rules and alerts need.

``RuleContext`` is the context ``process_batch`` hands its rules: the batch, the ``good``
mask, and ``features``, extracted for the whole batch only when something needs them there
(a scorer: ``PipelineContext.features_required``, or a rule that asks for
``context["features"]``). Otherwise ``batch_alerts`` extracts them for the alerted events
alone (their objects go into the alert payloads), so a batch where 4 % of events alert pays
for 4 % of the feature extraction (for the whole batch once more than 1 in ``WHOLE_FROM``
events alert: cheaper than a large subset). The quarantine does not depend on it: features flag as
bad only values that ``detectors.quality.check_events`` already quarantines (one policy).

``batch_alerts(batch, outcomes, context, now)`` turns the rule outcomes into
``AlertRecord``s with the work per batch, not per alert: one objects payload per alerted
event (the present feature-spec objects, [label, pt, eta, phi] rounded to 4 digits), built
and JSON-encoded once however many rules fire on it; a rule adds to it only the objects that
fired it and are not among them (a collection outside the spec, photons; or a jet beyond the
spec's ten), numbered on from the spec's own; ids for the whole batch (``alert_ids``); the
records built together (``AlertRecord.batch``), each holding its payload's JSON text, which
the store and the stream reuse instead of encoding it again.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hotline.alerts.records import AlertRecord, alert_ids
from hotline.alerts.rules import RuleOutcome
from hotline.detectors.features import FeatureMatrix, extract_features
from hotline.detectors.spec import FeatureSpec
from hotline.stream.batch import EventBatch

#: features of the alerted events alone while they are fewer than 1 in WHOLE_FROM events;
#: else of the whole batch (taking a subset of jagged arrays costs ~2x per event)
WHOLE_FROM = 8


class RuleContext(dict):
    """What rules see (a dict: ``features``, ``features_missing``, ``good``, ``batch``);
    ``features`` is extracted for the whole batch on first use (see module docstring)."""

    def __init__(self, batch: EventBatch, spec: FeatureSpec, features_missing: list[str],
                 eager: bool = False) -> None:
        super().__init__(features_missing=features_missing, batch=batch)
        self.spec = spec
        self._whole: FeatureMatrix | None = None
        if eager and not features_missing:
            self._whole = extract_features(batch.arrays, spec, where=batch.origin)

    @property
    def whole(self) -> FeatureMatrix | None:
        """The whole batch's features if they were extracted, else None."""
        return self._whole

    def _features(self) -> FeatureMatrix | None:
        if self._whole is None and not self["features_missing"]:
            batch = self["batch"]
            self._whole = extract_features(batch.arrays, self.spec, where=batch.origin)
        return self._whole

    def __getitem__(self, key: str) -> Any:
        return self._features() if key == "features" else super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "features":
            return self._features()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key == "features" or super().__contains__(key)

    def features_for(self, idx: np.ndarray) -> tuple[FeatureMatrix | None, np.ndarray]:
        """Features of the events ``idx`` (ascending) and the row of each in them: the whole
        batch's when extracted, else those of ``idx`` alone (None if the batch lacks them)."""
        if self._whole is not None:
            return self._whole, idx
        if self["features_missing"] or idx.size == 0:
            return None, np.zeros(idx.size, np.int64)
        batch = self["batch"]
        if idx.size * WHOLE_FROM > len(batch):  # extracting a subset costs more per event
            whole = self._features()
            if whole is not None:
                return whole, idx
        sub = extract_features(batch.arrays[idx], self.spec, where=batch.origin)
        return sub, np.arange(idx.size, dtype=np.int64)


def spec_objects(features: FeatureMatrix | None, rows: np.ndarray
                 ) -> tuple[list[list[list[Any]]], list[str]]:
    """For feature ``rows``: the present spec objects of each event as [label, pt, eta, phi]
    lists, and the JSON text of each event's list (numbers with 4 decimals, ``%.4f``: the
    same values as the lists; ``ValueError`` for a NaN or infinite value, as ``json``)."""
    if features is None or rows.size == 0:
        return [[] for _ in range(rows.size)], ["[]"] * rows.size
    labels = features.spec.object_labels
    mask = features.mask[rows]
    ev, slot = np.nonzero(mask)  # by event, then slot: the spec's order
    raw = features.objects()[rows[ev], slot].astype(np.float64)
    if not np.isfinite(raw).all():
        raise ValueError("Out of range float values are not JSON compliant")
    vals = np.round(raw, 4).tolist()
    slots = slot.tolist()
    flat = [[labels[j], *v] for j, v in zip(slots, vals)]
    ends = np.cumsum(mask.sum(1)).tolist()
    starts = [0, *ends[:-1]]
    objs = [flat[a:b] for a, b in zip(starts, ends)]
    fmts = [json.dumps(label) for label in labels]
    fmts = [f"[{f}, %.4f, %.4f, %.4f]" for f in fmts]
    one = [fmts[j] % tuple(v) for j, v in zip(slots, vals)]
    return objs, [f"[{', '.join(one[a:b])}]" for a, b in zip(starts, ends)]


def fired_extras(features: FeatureMatrix | None, rows: np.ndarray, outcome: RuleOutcome,
                 spec: FeatureSpec, idx: np.ndarray) -> dict[int, list[list[Any]]]:
    """For the hit events ``idx`` of ``outcome`` (feature ``rows``): the objects that fired
    its rule and are not among the event's spec objects, by position in ``idx``."""
    n = idx.size
    if outcome.objects is None or outcome.collection is None or not n:
        return {}
    used = features.spec if features is not None else spec
    label = used.label_for(outcome.collection)
    pos, vals = outcome.objects(idx)
    first = np.zeros(n, dtype=np.int64)
    obj = used.object_for(outcome.collection)
    if features is not None and obj is not None and pos.size:
        start = sum(o.count for o in used.objects[: used.objects.index(obj)])
        slots = features.objects()[rows, start:start + obj.count]
        present = features.mask[rows, start:start + obj.count]
        same = (slots[pos] == vals[:, None, :].astype(np.float32)).all(-1) & present[pos]
        new = ~same.any(-1)  # fired objects not already shown as spec objects
        pos, vals = pos[new], vals[new]
        first = present.sum(1).astype(np.int64)
    if not pos.size:
        return {}
    group_start = np.r_[0, np.flatnonzero(np.diff(pos)) + 1]
    rank = np.arange(pos.size) - np.repeat(group_start, np.diff(np.r_[group_start, pos.size]))
    numbers = (first[pos] + rank + 1).tolist()
    out: dict[int, list[list[Any]]] = {}
    for p, k, v in zip(pos.tolist(), numbers, np.round(vals.astype(np.float64), 4).tolist()):
        out.setdefault(p, []).append([f"{label}{k}", *v])
    return out


def batch_alerts(batch: EventBatch, outcomes: list[RuleOutcome], good: np.ndarray,
                 context: RuleContext, now: float) -> list[AlertRecord]:
    """The alerts of a batch's rule ``outcomes`` (good events only), rule by rule in the
    menu's order and by event within a rule (see module docstring)."""
    hits = {o.rule: np.flatnonzero(o.mask & good) for o in outcomes if o.mask is not None}
    hits = {r: h for r, h in hits.items() if h.size}
    if not hits:
        return []
    alerted = np.unique(np.concatenate(list(hits.values())))
    features, rows = context.features_for(alerted)
    objects, texts = spec_objects(features, rows)
    run, lumi, event = batch.run, batch.lumi, batch.event
    out: list[AlertRecord] = []
    for o in outcomes:
        h = hits.get(o.rule)
        if h is None:
            continue
        at = np.searchsorted(alerted, h)  # each hit's entry among the alerted events
        extras = fired_extras(features, rows[at], o, context.spec, h)
        at_list = at.tolist()
        objs = [objects[a] for a in at_list]
        obj_texts: list[str | None] = [texts[a] for a in at_list]
        for k, more in extras.items():
            objs[k] = objs[k] + more
            obj_texts[k] = json.dumps(objs[k], allow_nan=False)
        if o.details is None:
            payloads: list[dict[str, Any]] = [{"objects": x} for x in objs]
            payload_texts: list[str | None] = [f'{{"objects": {t}}}' for t in obj_texts]
        else:
            payloads = [{"objects": x, **o.details(i)} for x, i in zip(objs, h.tolist())]
            payload_texts = [None] * h.size  # encoded on first use
        runs, lumis, events = run[h].tolist(), lumi[h].tolist(), event[h].tolist()
        out.extend(AlertRecord.batch(
            kind=o.kind, rule=o.rule, source=batch.source,
            ids=alert_ids(batch.source, runs, lumis, events, o.rule),
            runs=runs, lumis=lumis, events=events,
            scores=o.score[h].tolist() if o.score is not None else [None] * h.size,
            p_values=o.p_value[h].tolist() if o.p_value is not None else [None] * h.size,
            payloads=payloads, payload_texts=payload_texts, created=now))
    return out

