"""The one quarantine policy for event data: which values make an event unusable.

Every numeric branch of a batch is checked, not only the feature set, whichever rules and
models are on. An event is quarantined when any of its values is

- **non-finite** (NaN, +inf, -inf) in any floating-point branch;
- **null** (a missing value in an optional column, e.g. from a decoded Arrow batch);
- a **negative transverse momentum** in any pT branch (``pt`` or ``*_pt``; MET_pt included);
- an **|eta| above** ``max_abs_eta`` (default 6.0) in any ``*_eta`` branch. CMS reaches
  |eta| 5.2 with the forward calorimeter (ATLAS 4.9 with its FCal), so 6 keeps every forward
  jet, including jets whose axis lies a little beyond the acceptance edge, and catches
  corrupt values;
- an **|phi| above** pi + ``phi_tolerance`` (default 1e-3 rad) in any ``*_phi`` branch: the
  azimuth is stored in [-pi, pi]; the tolerance absorbs float32 rounding of +-pi
  (float32(pi) exceeds pi by 9e-8) and nothing else.

pT, eta and phi rules apply to floating-point branches (an integer ``nElectron_phi`` is a
counter, not an angle). The eta and phi ranges apply to reconstructed objects only: in
generator-level truth collections (``Gen*``, ``*Gen*``, ``LHE*``: ``GenPart``, ``LHEPart``,
``GenJet``...) incoming partons and beam remnants have |eta| -> infinity by construction;
non-finite values quarantine there too. The id branches (run, luminosityBlock, event) are not
checked here (their absence or type is the batch's business). Non-numeric branches (strings,
records) are skipped. Only the branches a batch holds are checked: a replay reads the
branches its rules and feature spec need (``PipelineContext.branches``).

``check_events(arrays)`` returns a ``Quarantine``: the per-event ``bad`` mask and one
``Problem`` per (branch, reason) with the indices of the events concerned. ``bad_values(branch,
values)`` is the per-value test on a flat numpy array; ``detectors.features`` uses it too, so
the pipeline, sample production and training apply the same policy. Everything is vectorised:
one pass over each branch's flat content, and per-event indices only when a problem is found.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.columns import plain_values

#: branches that identify an event; never kinematics
ID_BRANCHES = ("run", "luminosityBlock", "event")

NON_FINITE = "NaN or inf"
NULL = "null (missing) value"
NEGATIVE_PT = "negative pT"


@dataclass(frozen=True)
class QualityPolicy:
    """The limits of the quarantine policy (see the module docstring for the reasoning)."""

    max_abs_eta: float = 6.0
    phi_tolerance: float = 1e-3

    @property
    def max_abs_phi(self) -> float:
        return math.pi + self.phi_tolerance

    def eta_reason(self) -> str:
        return f"|eta| > {self.max_abs_eta:g}"

    def phi_reason(self) -> str:
        return f"|phi| > pi + {self.phi_tolerance:g}"


DEFAULT_POLICY = QualityPolicy()


def quantity(branch: str) -> str:
    """What a branch holds, from its name: ``pt``, ``eta``, ``phi`` or ``""`` (anything else)."""
    last = branch.rsplit("_", 1)[-1]
    return last if last in ("pt", "eta", "phi") else ""


def is_generator_level(branch: str) -> bool:
    """True for generator-level truth collections (``GenPart_eta``, ``LHEPart_eta``...)."""
    head = branch.split("_", 1)[0]
    return "Gen" in head or head.startswith("LHE")


def value_problems(
    branch: str, values: np.ndarray, policy: QualityPolicy = DEFAULT_POLICY
) -> list[tuple[str, np.ndarray]]:
    """(reason, bad-value mask) for each rule of the policy that ``values`` break (flat array)."""
    if values.dtype.kind not in "fiu" or values.size == 0:
        return []
    out: list[tuple[str, np.ndarray]] = []
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            out.append((NON_FINITE, ~finite))
    q = quantity(branch)
    if q in ("eta", "phi") and is_generator_level(branch):
        q = ""
    if q and values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if q == "pt":
                neg = values < 0
                if neg.any():
                    out.append((NEGATIVE_PT, neg))
            else:
                limit = policy.max_abs_eta if q == "eta" else policy.max_abs_phi
                far = np.abs(values) > limit
                if far.any():
                    out.append((policy.eta_reason() if q == "eta" else policy.phi_reason(), far))
    return out


def bad_values(
    branch: str, values: np.ndarray, policy: QualityPolicy = DEFAULT_POLICY
) -> np.ndarray | None:
    """Mask of the values of ``branch`` the policy rejects (None when all pass)."""
    probs = value_problems(branch, values, policy)
    if not probs:
        return None
    mask = probs[0][1].copy()
    for _, m in probs[1:]:
        mask |= m
    return mask


@dataclass(frozen=True)
class Problem:
    """Events (indices into the batch) that break one rule of the policy in one branch."""

    branch: str
    reason: str
    events: np.ndarray

    def describe(self) -> str:
        return f"{self.branch}: {self.reason}"


@dataclass
class Quarantine:
    """The outcome of ``check_events``: ``bad`` per event and the problems that made it so."""

    bad: np.ndarray
    problems: list[Problem] = field(default_factory=list)

    @property
    def n_bad(self) -> int:
        return int(self.bad.sum())


def _leaf(layout: Any) -> tuple[np.dtype | None, bool]:
    """(dtype of the numeric leaf or None, whether an option type occurs) of a layout."""
    has_option = False
    node = layout
    while True:
        if node.parameter("__array__") in ("string", "bytestring", "char", "byte"):
            return None, has_option
        if node.is_option:
            has_option = True
        if node.is_numpy:
            return node.data.dtype, has_option
        if node.is_record or node.is_union or not hasattr(node, "content"):
            return None, has_option
        node = node.content


def _event_of_values(col: ak.Array, n: int) -> np.ndarray:
    """For each value of ``ak.flatten(col, axis=None)``, the index of its event."""
    if col.ndim == 1:
        return np.flatnonzero(~ak.to_numpy(ak.is_none(col, axis=0)))
    per_event = ak.count(col, axis=-1)
    while per_event.ndim > 1:
        per_event = ak.sum(per_event, axis=-1)
    counts = ak.to_numpy(ak.fill_none(per_event, 0)).astype(np.int64)
    return np.repeat(np.arange(n, dtype=np.int64), counts)


def _null_events(col: ak.Array) -> np.ndarray:
    """Per-event mask: the event holds a null anywhere in ``col``."""
    out = ak.to_numpy(ak.is_none(col, axis=0)).astype(bool)
    for axis in range(1, col.ndim):
        nulls = ak.is_none(col, axis=axis)
        while nulls.ndim > 1:
            nulls = ak.any(nulls, axis=-1)
        out |= ak.to_numpy(ak.fill_none(nulls, False)).astype(bool)
    return out


def _fields(arrays: Any) -> list[str]:
    if isinstance(arrays, ak.Array):
        return list(arrays.fields)
    return list(arrays.keys())


def check_events(
    arrays: ak.Array | Mapping[str, Any],
    branches: Iterable[str] | None = None,
    policy: QualityPolicy = DEFAULT_POLICY,
) -> Quarantine:
    """Apply the policy to every numeric branch of ``arrays`` (or to ``branches`` only)."""
    names = [b for b in (branches if branches is not None else _fields(arrays))
             if b not in ID_BRANCHES]
    n = len(arrays[_fields(arrays)[0]]) if _fields(arrays) else 0
    bad = np.zeros(n, dtype=bool)
    problems: list[Problem] = []
    for name in names:
        plain = plain_values(arrays, name)
        if plain is not None:  # the usual layout, read from its buffers
            values, counts = plain
            for reason, vmask in value_problems(name, values, policy):
                event_of = (np.arange(n) if counts is None
                            else np.repeat(np.arange(n, dtype=np.int64), counts))
                idx = np.unique(event_of[vmask])
                problems.append(Problem(name, reason, idx))
                bad[idx] = True
            continue
        col = arrays[name]
        if not isinstance(col, ak.Array):
            col = ak.Array(np.asarray(col)) if np.ndim(col) else ak.Array(col)
        dtype, has_option = _leaf(col.layout)
        if dtype is None:
            continue
        if has_option:
            nulls = _null_events(col)
            if nulls.any():
                idx = np.flatnonzero(nulls)
                problems.append(Problem(name, NULL, idx))
                bad[idx] = True
        if col.ndim == 1 and not has_option:
            values = ak.to_numpy(col)
        else:
            values = ak.to_numpy(ak.flatten(col, axis=None))
        found = value_problems(name, values, policy)
        if not found:
            continue
        event_of = np.arange(n) if col.ndim == 1 and not has_option else _event_of_values(col, n)
        for reason, vmask in found:
            idx = np.unique(event_of[vmask])
            problems.append(Problem(name, reason, idx))
            bad[idx] = True
    return Quarantine(bad, problems)
