"""NanoAOD-style jagged collections -> fixed-length feature matrix.

``extract_features`` turns a chunk of events (an awkward record array or a
mapping of branch name -> array, as ``uproot.iterate`` yields) into the
``FeatureSpec`` layout: per object type, apply the kinematic cuts, order by pT,
keep the leading ``count`` objects and zero-pad. Everything is vectorised over
the whole chunk; there is no per-event Python loop.

Events whose inputs hold NaN or inf are not silently zeroed: they are flagged in
``FeatureMatrix.bad`` (their rows are zero) so the pipeline can quarantine them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from detectors.spec import DEFAULT_SPEC, FeatureSpec, ObjectSpec
from hotline.errors import MissingBranchError


@dataclass
class FeatureMatrix:
    """Features of one batch: ``x`` [n, n_features] float32, ``mask`` [n, n_objects] bool.

    ``mask`` is True where an object slot holds a real object (False = padding).
    ``bad`` is True for events whose inputs held NaN/inf (their rows are zero).
    ``collections`` maps each object name to the branch prefix actually used.
    """

    x: np.ndarray
    mask: np.ndarray
    bad: np.ndarray
    spec: FeatureSpec
    collections: dict[str, str]

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


def _leading(
    pt: ak.Array, eta: ak.Array, phi: ak.Array, obj: ObjectSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading ``obj.count`` objects passing cuts: values [n, count, 3], mask, bad."""
    sel = pt > obj.min_pt
    if obj.max_abs_eta is not None:
        sel = sel & (abs(eta) < obj.max_abs_eta)
    # NaN comparisons are False, so a NaN object would silently vanish: catch it first.
    finite = np.isfinite(pt) & np.isfinite(eta) & np.isfinite(phi)
    bad = ak.to_numpy(ak.any(~finite, axis=1))
    pt, eta, phi = pt[sel], eta[sel], phi[sel]
    order = ak.argsort(pt, axis=1, ascending=False)
    pt, eta, phi = pt[order], eta[order], phi[order]
    n = len(pt)
    out = np.zeros((n, obj.count, 3), dtype=np.float32)
    mask = np.zeros((n, obj.count), dtype=bool)
    for k, arr in enumerate((pt, eta, phi)):
        padded = ak.pad_none(arr, obj.count, axis=1, clip=True)
        vals = ak.to_numpy(ak.fill_none(padded, np.nan)).astype(np.float32, copy=False)
        present = ~np.isnan(vals)
        if k == 0:
            mask = present
        out[:, :, k] = np.where(present, vals, 0.0)
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
            pt = np.asarray(arrays[f"{prefix}_pt"], dtype=np.float32)
            phi = np.asarray(arrays[f"{prefix}_phi"], dtype=np.float32)
            bad |= ~(np.isfinite(pt) & np.isfinite(phi))
            vals = np.stack([pt, np.zeros_like(pt), phi], axis=1)[:, None, :]
            msk = (pt > obj.min_pt)[:, None]
            vals = np.where(msk[:, :, None], vals, 0.0).astype(np.float32)
        else:
            vals, msk, b = _leading(
                arrays[f"{prefix}_pt"], arrays[f"{prefix}_eta"], arrays[f"{prefix}_phi"], obj
            )
            bad |= b
        blocks.append(vals)
        masks.append(msk)
    objects = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0, 3), np.float32)
    mask = np.concatenate(masks, axis=1) if masks else np.zeros((n, 0), bool)
    objects[bad] = 0.0
    mask[bad] = False
    x = np.ascontiguousarray(objects.reshape(n, -1), dtype=np.float32)
    return FeatureMatrix(x=x, mask=mask, bad=bad, spec=spec, collections=used)
