"""NanoAOD-style jagged collections -> fixed-length feature matrix.

``extract_features`` turns a chunk of events (an awkward record array or a
mapping of branch name -> array, as ``uproot.iterate`` yields) into the
``FeatureSpec`` layout: per object type, apply the kinematic cuts, order by pT,
keep the leading ``count`` objects and zero-pad. Everything is vectorised over
the whole chunk; there is no per-event Python loop.

Events whose inputs break the quarantine policy of ``detectors.quality`` (NaN or inf,
negative pT, |eta| or |phi| out of range) are not silently zeroed or cut away: they are
flagged in ``FeatureMatrix.bad`` (their rows are zero) so the pipeline can quarantine them.
``missing_branches`` names the branches a spec needs that a batch lacks, so a caller can
report the features as unavailable instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.columns import flat, scalar
from hotline.detectors.quality import bad_values
from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec, ObjectSpec
from hotline.errors import MissingBranchError


@dataclass
class FeatureMatrix:
    """Features of one batch: ``x`` [n, n_features] float32, ``mask`` [n, n_objects] bool.

    ``mask`` is True where an object slot holds a real object (False = padding).
    ``bad`` is True for events whose inputs break the quarantine policy (their rows are zero).
    ``collections`` maps each object name to the branch prefix actually used.
    ``weights`` are physical event weights when the events come from a weighted
    (biased-sampling) sample, else None (every event weighs 1).
    """

    x: np.ndarray
    mask: np.ndarray
    bad: np.ndarray
    spec: FeatureSpec
    collections: dict[str, str]
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def objects(self) -> np.ndarray:
        """Features reshaped as [n, n_objects, 3] (pt, eta, phi)."""
        return self.x.reshape(len(self), self.spec.n_objects, 3)


def _fields(arrays: Any) -> set[str]:
    if isinstance(arrays, ak.Array):
        return set(arrays.fields)
    return set(arrays.keys())


def resolve_collection(obj: ObjectSpec, available: set[str]) -> str | None:
    """The first prefix (collection, then fallbacks) whose branches are all present."""
    for prefix in (obj.collection, *obj.fallbacks):
        if all(b in available for b in obj.branches(prefix)):
            return prefix
    return None


def required_branches(spec: FeatureSpec, available: set[str]) -> list[str]:
    """Branches to read for ``spec`` given what a file has (fallbacks resolved)."""
    out: list[str] = []
    for obj in spec.objects:
        prefix = resolve_collection(obj, available) or obj.collection
        out.extend(obj.branches(prefix))
    return out


def missing_branches(spec: FeatureSpec, available: set[str]) -> list[str]:
    """Branches of ``spec`` absent from ``available`` (objects whose fallbacks resolve excluded)."""
    out: list[str] = []
    for obj in spec.objects:
        if resolve_collection(obj, available) is None:
            out.extend(b for b in obj.branches() if b not in available)
    return out


def _bad_objects(branches: list[str], values: list[np.ndarray]) -> np.ndarray | None:
    """Values (flat) that break the quarantine policy in any of the object's branches."""
    out: np.ndarray | None = None
    for b, v in zip(branches, values):
        m = bad_values(b, v)
        if m is not None:
            out = m if out is None else out | m
    return out


def _leading(
    arrays: Any, obj: ObjectSpec, prefix: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading ``obj.count`` objects passing cuts: values [n, count, 3], mask, bad.

    Works on the flat content with numpy: cut, order by (event, -pT) (skipped when the
    input is already pT-ordered within events, as NanoAOD collections are), rank within
    the event, and scatter the first ``count`` ranks into a zero-padded block.
    """
    pt_f, counts = flat(arrays, f"{prefix}_pt")
    eta_f, _ = flat(arrays, f"{prefix}_eta")
    phi_f, _ = flat(arrays, f"{prefix}_phi")
    n = counts.size
    ev = np.repeat(np.arange(n, dtype=np.int64), counts)
    # NaN comparisons are False, so a NaN object would silently vanish: catch it first.
    rejected = _bad_objects(obj.branches(prefix), [pt_f, eta_f, phi_f])
    bad = np.zeros(n, dtype=bool)
    if rejected is not None:
        bad[ev[rejected]] = True
    sel = pt_f > obj.min_pt
    if obj.max_abs_eta is not None:
        sel &= np.abs(eta_f) < obj.max_abs_eta
    ev, p, e, f = ev[sel], pt_f[sel], eta_f[sel], phi_f[sel]
    same_event = ev[1:] == ev[:-1]
    if np.any(same_event & (p[1:] > p[:-1])):
        order = np.lexsort((-p, ev))
        ev, p, e, f = ev[order], p[order], e[order], f[order]
    n_sel = np.bincount(ev, minlength=n)
    starts = np.cumsum(n_sel) - n_sel
    rank = np.arange(ev.size, dtype=np.int64) - starts[ev]
    keep = rank < obj.count
    ev, rank = ev[keep], rank[keep]
    out = np.zeros((n, obj.count, 3), dtype=np.float32)
    out[ev, rank, 0] = p[keep]
    out[ev, rank, 1] = e[keep]
    out[ev, rank, 2] = f[keep]
    mask = np.zeros((n, obj.count), dtype=bool)
    mask[ev, rank] = True
    return out, mask, bad


def extract_features(
    arrays: ak.Array | Mapping[str, Any], spec: FeatureSpec = DEFAULT_SPEC, where: str = "batch"
) -> FeatureMatrix:
    """Build the feature matrix of a chunk of events.

    ``where`` names the input (file, run) in error messages. Raises
    ``MissingBranchError`` when an object's branches (and all its fallbacks) are absent.
    """
    available = _fields(arrays)
    n = len(arrays[next(iter(available))]) if available else 0
    blocks: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    bad = np.zeros(n, dtype=bool)
    used: dict[str, str] = {}
    for obj in spec.objects:
        prefix = resolve_collection(obj, available)
        if prefix is None:
            missing = [b for b in obj.branches() if b not in available]
            alts = f" (nor fallbacks {', '.join(obj.fallbacks)})" if obj.fallbacks else ""
            raise MissingBranchError(
                f"{where}: branch '{missing[0]}' is missing{alts}; "
                f"the feature spec '{spec.name}' needs it for object '{obj.name}'"
            )
        used[obj.name] = prefix
        if obj.scalar:
            pt = np.asarray(scalar(arrays, f"{prefix}_pt"), dtype=np.float32)
            phi = np.asarray(scalar(arrays, f"{prefix}_phi"), dtype=np.float32)
            rejected = _bad_objects(obj.branches(prefix), [pt, phi])
            if rejected is not None:
                bad |= rejected
            vals = np.stack([pt, np.zeros_like(pt), phi], axis=1)[:, None, :]
            msk = (pt > obj.min_pt)[:, None]
            vals = np.where(msk[:, :, None], vals, 0.0).astype(np.float32)
        else:
            vals, msk, b = _leading(arrays, obj, prefix)
            bad |= b
        blocks.append(vals)
        masks.append(msk)
    objects = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0, 3), np.float32)
    mask = np.concatenate(masks, axis=1) if masks else np.zeros((n, 0), bool)
    objects[bad] = 0.0
    mask[bad] = False
    x = np.ascontiguousarray(objects.reshape(n, -1), dtype=np.float32)
    return FeatureMatrix(x=x, mask=mask, bad=bad, spec=spec, collections=used)
