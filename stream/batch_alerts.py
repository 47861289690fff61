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
event (the present feature-spec objects, [label, pt, eta, phi] rounded to 4 digits), written
as JSON text once however many rules fire on it (``spec_objects``: straight from the numpy
values, no lists built); a rule adds to it only the objects that fired it and are not among
them (a collection outside the spec, photons; or a jet beyond the spec's ten), numbered on
from the spec's own; ids for the whole batch (``alert_ids``); the records built together
(``AlertRecord.batch``), each holding its payload's JSON text, which the store and the stream
reuse; a payload without rule details is parsed from that text only when read.
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


def spec_objects(features: FeatureMatrix | None, rows: np.ndarray) -> list[str]:
    """For feature ``rows``: the JSON text of each event's present spec objects, a list of
    [label, pt, eta, phi] (values rounded to 4 digits), exactly as ``json.dumps`` writes it.

    Written without building the lists: one ``%``-format per pattern of present slots
    (cached per batch), joined for all events and filled with the rounded values of one
    ``tolist`` in a single ``%`` (one C call for the batch), then split per event."""
    if features is None or rows.size == 0:
        return ["[]"] * rows.size
    labels = features.spec.object_labels
    mask = features.mask[rows]
    vals = np.round(features.objects()[rows].astype(np.float64)[mask], 4)
    if not np.isfinite(vals).all():  # never after the quarantine; json refuses NaN
        raise ValueError("Out of range float values are not JSON compliant")
    packed = np.packbits(mask, axis=1)
    width = packed.shape[1]
    _, first, which = np.unique(packed.view(f"V{width}").ravel(), return_index=True,
                                return_inverse=True)
    formats = ["[" + ", ".join(f"[{json.dumps(labels[j]).replace('%', '%%')}, %r, %r, %r]"
                               for j in np.flatnonzero(mask[i]).tolist()) + "]"
               for i in first.tolist()]
    # "\n" never occurs in JSON text (json.dumps escapes it), so it separates the events
    text = "\n".join([formats[k] for k in which.ravel().tolist()]) % tuple(
        vals.ravel().tolist())
    return text.split("\n")


def fired_extras(features: FeatureMatrix | None, rows: np.ndarray, outcome: RuleOutcome,
                 spec: FeatureSpec, idx: np.ndarray) -> dict[int, str]:
    """For the hit events ``idx`` of ``outcome`` (feature ``rows``): the objects that fired
    its rule and are not among the event's spec objects, by position in ``idx``, as the JSON
    text of their [label, pt, eta, phi] lists joined by ", " (``json.dumps``'s own text)."""
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
    rounded = np.round(vals.astype(np.float64), 4)
    if not np.isfinite(rounded).all():  # never after the quarantine; json refuses NaN
        raise ValueError("Out of range float values are not JSON compliant")
    head = json.dumps(label)[:-1]  # '"label' without its closing quote
    out: dict[int, str] = {}
    for p, k, v in zip(pos.tolist(), numbers, rounded.tolist()):
        text = f'[{head}{k}", {v[0]!r}, {v[1]!r}, {v[2]!r}]'
        out[p] = f"{out[p]}, {text}" if p in out else text
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
    texts = spec_objects(features, rows)
    shared = [f'{{"objects": {t}}}' for t in texts]  # one payload text per alerted event
    run, lumi, event = batch.run, batch.lumi, batch.event
    out: list[AlertRecord] = []
    for o in outcomes:
        h = hits.get(o.rule)
        if h is None:
            continue
        at = np.searchsorted(alerted, h)  # each hit's entry among the alerted events
        extras = fired_extras(features, rows[at], o, context.spec, h)
        at_list = at.tolist()
        obj_texts = [texts[a] for a in at_list]
        for k, more in extras.items():  # the rule's own objects appended to the list's text
            t = obj_texts[k]
            obj_texts[k] = f"{t[:-1]}, {more}]" if len(t) > 2 else f"[{more}]"
        payloads: list[dict[str, Any] | None]
        if o.details is None:  # the payloads are read from their text when first used
            payloads = [None] * h.size
            payload_texts: list[str | None] = [shared[a] for a in at_list]
            for k in extras:
                payload_texts[k] = f'{{"objects": {obj_texts[k]}}}'
        else:
            payloads = [{"objects": json.loads(t), **o.details(i)}
                        for t, i in zip(obj_texts, h.tolist())]
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

