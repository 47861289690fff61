"""Per-type calibrated evidence: background p-values of each object type's loss, their
combination into one event score, and the attribution they give. Numpy only (serving).

An autoencoder's summed loss is dominated by the type with most slots and the longest
background tail (jets: the "complexity bias"). Calibrating each object type's loss
contribution on background first puts the types on one scale, the background p-value:

* per object type k, one or more statistics (``STATISTICS``): ``loss`` -- the type's loss
  contribution ``c_k`` (the ``per_type`` output of the scoring graph: what the network
  failed to reconstruct, correlations); ``energy`` -- the type's scalar pT sum (MET: its pT;
  what a reconstruction network extrapolates well and hence misses: an isolated 1 TeV
  lepton is reconstructed to a few per cent in log pT, yet no background event has one);
  and, once per event, ``total`` -- the whole loss (the plain autoencoder score: what
  keeps the sensitivity to anomalies spread over several types);
* ``p = S(t)``: the background survival function of each statistic, a
  ``models.thresholds.ReferenceDistribution`` (table + generalised-Pareto tail), fitted
  by ``calibrate_types`` on a (weighted) calibration background and stored in the model
  card as ``type_calibration``; an absent type (no object: its slots are masked) has p = 1;
* combined per event over the M p-values (``METHODS``): ``sidak`` -- the
  Sidak-corrected minimum ``1 - (1 - min p)^M``; ``fisher`` -- Fisher's ``-2 sum log p``,
  referred to a chi-square with 2M degrees of freedom (closed form for even degrees);
  ``weighted`` -- a weighted Bonferroni minimum ``min_j p_j / w_j`` with weight
  ``total_weight`` on the ``total`` statistic and the rest shared by the per-type ones:
  in the bulk the plain autoencoder score orders the events (its AUC on broad anomalies),
  in the tails any type's extreme value wins (the combined p is capped at 1, so every event
  with ``p_total > total_weight`` ties at score 0); ``budget`` -- the same false-alarm budget
  split without the cap and with the per-type statistics counted only in their tails:
  ``min(p_total, min_j (w_total / w_j) p_j over the per-type p_j < tail_p)`` (``total_weight``
  times the weighted Bonferroni minimum): wherever no type is beyond ``tail_p`` the score is
  the whole loss's own background p-value, so the bulk keeps the autoencoder's order
  exactly, and a striking single object (``p_j < tail_p``) takes over with the weight its
  share of the budget gives it. Still a Bonferroni bound: ``P(p <= a) <= a / total_weight``;
* the event score is ``-log10`` of the combined p (``SCORE_FLOOR_P`` bounds it); the
  types are correlated, so the combined p is not itself the background p-value: the model's
  thresholds and reference distribution are calibrated on this score afterwards, like any
  other score.

Attribution (``explain``): the type of the smallest p-value (of any of its statistics) --
the strongest calibrated evidence -- explains the event; ties at the floor are broken by
the standardised excess ``(c_k - mean_k) / std_k`` over the background. No type is
"followed" to another: MET is a type like the others (an invisible particle is a MET
anomaly).

A card without ``type_calibration`` has no per-type p-values; ``explain`` then uses the
standardised excess alone (``reference_contributions``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hotline.errors import ModelError
from hotline.models.thresholds import ReferenceDistribution, calibrate

__all__ = ["METHODS", "SCORE_FLOOR_P", "STATISTICS", "TypeEvidence", "calibrate_types",
           "combine", "explain_by_excess", "type_energy"]

#: combinations of the per-type p-values a card's ``type_calibration.method`` may name
METHODS = ("sidak", "fisher", "weighted", "budget")
#: statistics a ``type_calibration.statistics`` may list (``total``: the event's whole loss)
STATISTICS = ("loss", "energy", "total")
#: smallest p-value represented: scores are at most -log10 of it
SCORE_FLOOR_P = 1e-300


def combine(p: np.ndarray, method: str) -> np.ndarray:
    """Combined p-value of each row of per-type p-values ``p`` [n, K]."""
    p = np.clip(np.asarray(p, np.float64), SCORE_FLOOR_P, 1.0)
    k = p.shape[1]
    if method == "sidak":
        pmin = p.min(axis=1)
        return np.maximum(-np.expm1(k * np.log1p(-np.minimum(pmin, 1.0 - 1e-16))),
                          SCORE_FLOOR_P)
    if method == "fisher":
        half = -np.log(p).sum(axis=1)  # chi2 / 2 with 2K degrees of freedom
        term = np.ones_like(half)
        total = np.ones_like(half)
        for i in range(1, k):
            term = term * half / i
            total += term
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.exp(-half) * total
        return np.clip(np.nan_to_num(out, nan=SCORE_FLOOR_P), SCORE_FLOOR_P, 1.0)
    raise ModelError(f"unknown per-type combination '{method}'; known: {', '.join(METHODS)}")


def type_energy(x: np.ndarray, mask: np.ndarray, type_index: Sequence[int],
                n_types: int) -> np.ndarray:
    """Scalar pT sum per object type [n, K] of raw features ``x`` [n, 3 O] (pT first of each
    object's triple) and object ``mask`` [n, O]; ``type_index``: the type of each slot.

    Summed in float64 and rounded once to float32: a few dozen float32 pTs add exactly in
    float64, so the sum does not depend on the order (nor on the batch an event is in)."""
    ti = np.asarray(type_index)
    onehot = np.zeros((len(ti), n_types))
    onehot[np.arange(len(ti)), ti] = 1.0
    # padded slots hold pT 0 (detectors.features); the mask zeroes anything else it hides
    pt = np.multiply(np.asarray(x, np.float32)[:, 0::3], mask, dtype=np.float64)
    return (pt @ onehot).astype(np.float32)


def explain_by_excess(per_type: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """Index of the type with the largest standardised excess over the background."""
    mean = np.asarray(reference["types"]["mean"], np.float64)
    std = np.maximum(np.asarray(reference["types"]["std"], np.float64), 1e-12)
    return np.argmax((np.asarray(per_type, np.float64) - mean) / std, axis=1)


@dataclass(frozen=True)
class TypeEvidence:
    """The per-type background references of one model (see module docstring)."""

    labels: tuple[str, ...]
    #: one per (statistic, type), statistic-major: loss of every type, then energy, ...
    references: tuple[ReferenceDistribution, ...]
    method: str = "sidak"
    mean: np.ndarray | None = None  #: background mean of the loss per type (tie-breaks)
    std: np.ndarray | None = None  #: background std of the loss per type
    statistics: tuple[str, ...] = ("loss",)
    total_weight: float = 0.5  #: ``weighted``: the ``total`` statistic's Bonferroni weight
    #: ``budget``: a per-type statistic counts only where its p-value is below this
    #: (None: everywhere); see the module docstring
    tail_p: float | None = None

    def __post_init__(self) -> None:
        if self.method in ("weighted", "budget") and ("total" not in self.statistics
                                          or len(self.statistics) < 2
                                          or not 0 < self.total_weight < 1):
            raise ModelError(f"type calibration: method '{self.method}' needs the 'total' "
                             "statistic, a per-type one and 0 < total_weight < 1")
        if self.tail_p is not None and not 0 < self.tail_p <= 1:
            raise ModelError(f"type calibration: tail_p {self.tail_p} is not in (0, 1]")
        if self.method not in METHODS:
            raise ModelError(f"type calibration: method '{self.method}' is not one of "
                             f"{', '.join(METHODS)}")
        bad = [t for t in self.statistics if t not in STATISTICS]
        if bad or not self.statistics:
            raise ModelError(f"type calibration: statistics {list(self.statistics)}; known: "
                             f"{', '.join(STATISTICS)}")
        if len(self.columns()) != len(self.references) or not self.labels:
            raise ModelError("type calibration: one reference per type and statistic is "
                             f"needed ({len(self.columns())} for {len(self.labels)} types and "
                             f"statistics {list(self.statistics)}, got {len(self.references)})")

    def columns(self) -> list[tuple[str, int | None]]:
        """(statistic, type index) of each evidence column; ``total`` has no type."""
        return [(st, None) if st == "total" else (st, k) for st in self.statistics
                for k in (range(1) if st == "total" else range(len(self.labels)))]

    def evidence(self, per_type: np.ndarray, energy: np.ndarray | None = None) -> np.ndarray:
        """The statistics of each event [n, K x S] (statistic-major); ``energy``: the
        per-type pT sums (``type_energy``), needed when ``energy`` is a statistic."""
        cols = []
        for stat in self.statistics:
            if stat == "loss":
                cols.append(np.asarray(per_type))
            elif stat == "total":
                cols.append(np.asarray(per_type).sum(axis=1, keepdims=True))
            else:
                if energy is None:
                    raise ModelError("type calibration uses the 'energy' statistic: pass the "
                                     "per-type pT sums")
                cols.append(np.asarray(energy))
        return cols[0] if len(cols) == 1 else np.hstack(cols)

    def check_labels(self, labels: Sequence[str], where: str) -> None:
        """``ModelError`` unless the scorer's type labels are the calibrated ones."""
        if tuple(labels) != self.labels:
            raise ModelError(f"{where}: type calibration is for types {list(self.labels)}, "
                             f"the feature spec has {list(labels)}")

    def log10_p_values(self, per_type: np.ndarray, energy: np.ndarray | None = None
                       ) -> np.ndarray:
        """log10 of the background p-value of each statistic of each type, [n, K x S]
        (the serving path: every statistic's survival table on one uniform lookup grid in
        log10 p, all columns in one gather; the generalised-Pareto tail only where needed;
        ``_Table``)."""
        return self.log10_p_values_of_rows(self.evidence_rows(per_type, energy))

    def log10_p_values_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """``log10_p_values`` of the statistics ``rows`` (``evidence_rows``), [n, K x S]."""
        return self._table().log10_sf(rows).T

    def evidence_rows(self, per_type: np.ndarray, energy: np.ndarray | None = None
                      ) -> np.ndarray:
        """The statistics of each event as rows, [K x S, n] float32 (``evidence`` transposed,
        the layout of the lookups)."""
        per_type = np.asarray(per_type, np.float32)
        k, n = len(self.labels), len(per_type)
        rows = np.empty((len(self.references), n), np.float32)
        loss_t = per_type.T.copy()  # [K, n]; summed over rows: each event's sum in order
        j = 0
        for stat in self.statistics:
            if stat == "total":
                rows[j] = loss_t.sum(axis=0)
                j += 1
                continue
            if stat == "loss":
                rows[j:j + k] = loss_t
                j += k
                continue
            src = per_type if stat == "loss" else energy
            if src is None:
                raise ModelError("type calibration uses the 'energy' statistic: pass the "
                                 "per-type pT sums")
            rows[j:j + k] = np.asarray(src, np.float32).T
            j += k
        return rows

    def score_rows(self, rows: np.ndarray, method: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        """The event score (float32) from the statistics ``rows`` (``evidence_rows``), and the
        log10 p-values [n, K x S] when they were all needed for it (else None: the serving
        path of ``budget`` looks up the whole loss's p-value of every event, but the per-type
        ones only for the events with a per-type statistic beyond ``tail_p``; equal to
        ``score_log10`` of all of them)."""
        method = method or self.method
        if method != "budget" or self.tail_p is None or not self._equal_type_weights():
            lp = self._table().log10_sf(rows).T
            return self.score_log10(lp, method), lp
        tab = self._table()
        m_lq = tab.log10_sf(rows[:1], 0)[0]  # the whole loss: its own p-value
        # the (statistic, event) entries that may be beyond tail_p: looked up one by one
        hot = np.flatnonzero(rows[1:] > tab.below(self.tail_p)[1:])
        if hot.size:
            n = rows.shape[1]
            col, evt = hot // n + 1, hot % n
            lt = tab.log10_sf_at(col, rows[col, evt])
            tail = lt < np.log10(self.tail_p)
            q = lt[tail] + np.log10(self.total_weight / self.weights()[1])
            np.minimum.at(m_lq, evt[tail], q)
        return np.clip(-m_lq, 0.0, -np.log10(SCORE_FLOOR_P)).astype(np.float32), None

    def _table(self) -> _Table:
        cached = self.__dict__.get("_table_cache")
        if cached is None:
            cached = _Table([_Lookup(r) for r in self.references])
            object.__setattr__(self, "_table_cache", cached)
        return cached

    def p_values(self, per_type: np.ndarray, energy: np.ndarray | None = None) -> np.ndarray:
        """Background p-value of each statistic of each type, [n, K x S] float64."""
        return np.power(10.0, self.log10_p_values(per_type, energy))

    def score_log10(self, lp: np.ndarray, method: str | None = None) -> np.ndarray:
        """The event score (float32) from per-statistic log10 p-values ``lp``."""
        method = method or self.method
        m = lp.shape[1]
        if method == "budget" and self._equal_type_weights():
            # the per-type statistics share their budget equally: min_j (w_t / w_j) p_j is
            # (w_t / w) min_j p_j, one reduction over the rows of the column-major ``lp``
            lt = lp.T
            mt = lt[1:].min(axis=0)
            off = np.log10(self.total_weight / self.weights()[1])
            if self.tail_p is not None:
                mt = np.where(mt < np.log10(self.tail_p), mt + off, np.inf)
            else:
                mt += off
            m_lq = np.minimum(lt[0], mt)
            return np.clip(-m_lq, 0.0, -np.log10(SCORE_FLOOR_P)).astype(np.float32)
        if method in ("weighted", "budget"):
            # log10 of min_j p_j / w_j, the weighted Bonferroni p (capped at 1: score >= 0)
            q = lp - np.log10(self.weights())
            if method == "budget":  # times w_total: the total column is p_total itself
                q += np.log10(self.total_weight)
                if self.tail_p is not None:  # per-type statistics only in their tails
                    typed = np.array([k is not None for _, k in self.columns()])
                    q = np.where(typed & (lp >= np.log10(self.tail_p)), np.inf, q)
            m_lq = q.min(axis=1)
            return np.clip(-m_lq, 0.0, -np.log10(SCORE_FLOOR_P)).astype(np.float32)
        if method == "sidak":
            nl = -lp.min(axis=1)  # -log10 of the smallest p
            with np.errstate(over="ignore", under="ignore"):
                pmin = np.power(10.0, -nl)
                comb = -np.expm1(m * np.log1p(-np.minimum(pmin, 1.0 - 1e-16)))
            # for tiny p the Sidak p is m * p (no underflow): -log10 = nl - log10(m)
            small = pmin < 1e-12
            out = np.where(small, nl - np.log10(m), -np.log10(np.maximum(comb, SCORE_FLOOR_P)))
            return np.minimum(out, -np.log10(SCORE_FLOOR_P)).astype(np.float32)
        return (-np.log10(combine(np.power(10.0, lp), method))).astype(np.float32)

    def _equal_type_weights(self) -> bool:
        """The whole loss first and every per-type column with the same weight."""
        cols = self.columns()
        return cols[0][1] is None and all(k is not None for _, k in cols[1:])

    def weights(self) -> np.ndarray:
        """Bonferroni weights of the columns for ``weighted`` and ``budget`` (sum 1)."""
        cols = self.columns()
        n_type = sum(1 for _, k in cols if k is not None)
        return np.array([self.total_weight if k is None else (1 - self.total_weight) / n_type
                         for _, k in cols])

    def type_p(self, p: np.ndarray) -> np.ndarray:
        """The smallest p-value of each type over its statistics, [n, K] (the event-level
        ``total`` names no type and is left out)."""
        p = np.asarray(p)
        out = np.ones((len(p), len(self.labels)), p.dtype)
        for j, (_, k) in enumerate(self.columns()):
            if k is not None:
                np.minimum(out[:, k], p[:, j], out=out[:, k])
        return out

    def score(self, p: np.ndarray, method: str | None = None) -> np.ndarray:
        """-log10 of the combined p-value of per-statistic p-values ``p`` (float32)."""
        return self.score_log10(np.log10(np.clip(p, SCORE_FLOOR_P, 1.0)), method)

    def explain(self, p: np.ndarray, per_type: np.ndarray) -> np.ndarray:
        """Index of the type explaining each event: the smallest p-value (ties: the largest
        standardised excess)."""
        key = -np.log10(np.clip(self.type_p(p), SCORE_FLOOR_P, 1.0))
        if self.mean is not None and self.std is not None:
            z = (np.asarray(per_type, np.float64) - self.mean) / np.maximum(self.std, 1e-12)
            key = key + 1e-9 * np.tanh(z / 1e3)
        return np.argmax(key, axis=1)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "labels": list(self.labels),
                             "statistics": list(self.statistics),
                             "total_weight": self.total_weight,
                             **({} if self.tail_p is None else {"tail_p": self.tail_p}),
                             "references": [r.to_dict() for r in self.references]}
        if self.mean is not None and self.std is not None:
            d["mean"] = [float(v) for v in self.mean]
            d["std"] = [float(v) for v in self.std]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TypeEvidence:
        try:
            labels = tuple(str(v) for v in d["labels"])
            refs = tuple(ReferenceDistribution.from_dict(r) for r in d["references"])
            mean = None if d.get("mean") is None else np.asarray(d["mean"], np.float64)
            std = None if d.get("std") is None else np.asarray(d["std"], np.float64)
            stats = tuple(str(v) for v in d.get("statistics", ("loss",)))
            return cls(labels, refs, str(d.get("method", "sidak")), mean, std, stats,
                       float(d.get("total_weight", 0.5)),
                       None if d.get("tail_p") is None else float(d["tail_p"]))
        except (KeyError, TypeError) as exc:
            raise ModelError(f"invalid type calibration in model card: {exc}") from None


def calibrate_types(per_type: np.ndarray, labels: Sequence[str], method: str = "sidak",
                    weights: np.ndarray | None = None, seed: int = 0,
                    statistics: Sequence[str] = ("loss",),
                    energy: np.ndarray | None = None,
                    total_weight: float = 0.5, tail_p: float | None = None) -> TypeEvidence:
    """Per-type references from the ``per_type`` loss contributions (and ``energy``, the
    per-type pT sums, when a statistic) of a calibration background (``weights``: physical
    event weights)."""
    per_type = np.asarray(per_type, np.float64)
    if per_type.ndim != 2 or per_type.shape[1] != len(labels):
        raise ModelError(f"type calibration: contributions of shape {per_type.shape} for "
                         f"{len(labels)} types")
    mean = np.average(per_type, axis=0, weights=weights)
    std = np.sqrt(np.average((per_type - mean) ** 2, axis=0, weights=weights))
    # a first object with placeholder references gives the statistics' layout
    n_cols = sum(1 if st == "total" else len(labels) for st in statistics)
    probe = TypeEvidence(tuple(labels), tuple(_PLACEHOLDER for _ in range(n_cols)),
                         method, mean, std, tuple(statistics), total_weight)
    ev = np.asarray(probe.evidence(per_type, energy), np.float64)
    refs = []
    for k in range(ev.shape[1]):
        col = ev[:, k]
        present = col > 0  # absent types have p = 1 by definition; calibrate the present ones
        w = None if weights is None else np.asarray(weights, np.float64)[present]
        if present.sum() < 20:
            refs.append(_PLACEHOLDER)
            continue
        cal = calibrate(col[present], (), seed=seed, n_boot=0, weights=w)
        ref = ReferenceDistribution.from_dict(cal["reference"])
        if ref.shape is not None and ref.shape < 0:
            # no lighter than exponential: a fitted negative shape has an endpoint beyond
            # which p = 0, and a signal far out would tie with any background event there
            ref = dataclasses.replace(ref, shape=0.0)
        if ref.u is None:
            ref = _exponential_tail(ref, col[present], w)
        # survival over all events: scale by the (weighted) fraction where the type is present
        frac = (float(present.mean()) if weights is None
                else float(np.asarray(weights)[present].sum() / np.sum(weights)))
        refs.append(_scaled(ref, frac))
    return TypeEvidence(tuple(labels), tuple(refs), method, mean, std, tuple(statistics),
                        total_weight, tail_p)


def _exponential_tail(ref: ReferenceDistribution, values: np.ndarray,
                      weights: np.ndarray | None) -> ReferenceDistribution:
    """A rare type (too few background events for a Pareto fit, e.g. photons in the
    single-lepton stream): an exponential tail above the median of its values, scale the
    weighted mean excess -- an assumption, stated in docs/attribution.md; without it the
    type's p could never go below 1 / (its few events) and a 750 GeV photon pair would weigh
    no more than a 50 GeV one."""
    w = np.ones(len(values)) if weights is None else np.asarray(weights, np.float64)
    order = np.argsort(values)
    cw = np.cumsum(w[order]) / w.sum()
    u = float(values[order][np.searchsorted(cw, 0.5)])
    above = values > u
    if above.sum() < 5:
        return ref
    scale = float(np.average(values[above] - u, weights=w[above]))
    p_u = float(w[above].sum() / w.sum())
    keep = ref.scores <= u
    if keep.sum() < 2:
        return ref
    return ReferenceDistribution(ref.scores[keep], ref.log10_p[keep], ref.n_ref, u, p_u, 0.0,
                                 max(scale, 1e-12))


class _Lookup:
    """One survival table on a uniform grid (``GRID`` points from 0 to the tail start or
    the last table score), read by ``_Table``: log10 p by index arithmetic and a gather,
    the left grid point (conservative: p never below the table's); above: the
    generalised-Pareto tail in log space (or the table's last value capped at 1 / n_ref)."""

    GRID = 8192

    def __init__(self, ref: ReferenceDistribution) -> None:
        self.ref = ref
        tail = ref.tail()
        self.top = float(tail[0]) if tail is not None else float(ref.scores[-1])
        self.tail = tail
        hi = self.top if self.top > 0 else 1.0
        xs = np.linspace(0.0, hi, self.GRID)
        grid = np.interp(xs, ref.scores, ref.log10_p, left=0.0,
                         right=float(ref.log10_p[-1]))
        self.grid = np.maximum(grid, np.log10(SCORE_FLOOR_P))
        self.grid[0] = 0.0  # s <= 0: an absent type, p = 1
        self.inv = (self.GRID - 1) / hi
        if tail is None:
            self.beyond = min(float(ref.log10_p[-1]), -float(np.log10(ref.n_ref)))


class _Table:
    """The ``_Lookup`` grids of all statistics in one flat array (each padded by its last
    value, so an index rounded up to ``GRID`` stays in its own grid): one clip, one
    multiply and one gather for all columns of a batch."""

    def __init__(self, lookups: list[_Lookup]) -> None:
        self.lookups = lookups
        g = _Lookup.GRID + 1
        self.grid = np.empty(len(lookups) * g, np.float64)
        for j, lk in enumerate(lookups):
            self.grid[j * g:j * g + g - 1] = lk.grid
            self.grid[j * g + g - 1] = lk.grid[-1]
        self.top = np.array([lk.top for lk in lookups], np.float32)[:, None]
        self.inv = np.array([lk.inv for lk in lookups], np.float32)[:, None]
        self.offset = (np.arange(len(lookups)) * g)[:, None]
        # the tails' parameters by column (a column without a tail fit: its constant)
        tails = [lk.tail if lk.tail is not None else (0.0, 1.0, 0.0, 1.0) for lk in lookups]
        self.u, p_u, self.c, self.scale = (np.array(v, np.float64) for v in zip(*tails))
        self.log10_p_u = np.log10(p_u)
        self.exponential = np.abs(self.c) < 1e-9
        self.c_safe = np.where(self.exponential, 1.0, self.c)
        self.no_tail = np.array([lk.tail is None for lk in lookups])
        self.beyond = np.array([getattr(lk, "beyond", 0.0) for lk in lookups])
        self._below: dict[float, np.ndarray] = {}

    def log10_sf(self, rows: np.ndarray, first: int = 0) -> np.ndarray:
        """log10 p of the statistics ``rows`` [C', n] (float32) of columns ``first`` ..
        ``first + C' - 1``, [C', n] float64."""
        cols = slice(first, first + len(rows))
        top = self.top[cols]
        idx = np.minimum(rows, top)
        np.maximum(idx, np.float32(0.0), out=idx)
        idx *= self.inv[cols]
        ii = idx.astype(np.intp)
        ii += self.offset[cols]
        out = self.grid.take(ii, mode="clip")  # in range; "clip": no bounds-check buffering
        beyond = np.flatnonzero(rows > top)
        if beyond.size:
            col = beyond // rows.shape[1] + first
            out.flat[beyond] = self._tail(col, rows.flat[beyond])
        return out

    def log10_sf_at(self, col: np.ndarray, s: np.ndarray) -> np.ndarray:
        """log10 p of single statistics ``s`` (float32) of columns ``col``, as
        ``log10_sf``."""
        top = self.top[col, 0]
        idx = np.minimum(s, top)
        np.maximum(idx, np.float32(0.0), out=idx)
        idx *= self.inv[col, 0]
        out = self.grid.take(idx.astype(np.intp) + self.offset[col, 0], mode="clip")
        beyond = np.flatnonzero(s > top)
        if beyond.size:
            out[beyond] = self._tail(col[beyond], s[beyond])
        return out

    def below(self, p: float) -> np.ndarray:
        """Per column [C, 1] (float32), a statistic value at or below which the looked-up
        p-value is at least ``p`` (cached per ``p``): the grid point before the first one
        below ``p``, or where the tail reaches ``p``, or the grid's end."""
        cached = self._below.get(p)
        if cached is None:
            g = _Lookup.GRID + 1
            lp = np.log10(p)
            out = np.empty(len(self.lookups), np.float32)
            for j, lk in enumerate(self.lookups):
                under = np.flatnonzero(self.grid[j * g:(j + 1) * g - 1] < lp)
                if under.size:
                    out[j] = min(max(int(under[0]) - 1, 0) / float(self.inv[j, 0]), lk.top)
                elif lk.tail is not None and p < lk.tail[1]:
                    # in the generalised-Pareto tail: where it reaches p (a hair below)
                    u, p_u, c, sc = lk.tail
                    y = (-sc * np.log(p / p_u) if abs(c) < 1e-9
                         else sc / c * ((p / p_u) ** -c - 1.0))
                    out[j] = np.nextafter(np.float32(u + y * (1 - 1e-6)), np.float32(0))
                else:
                    out[j] = lk.top
            cached = self._below[p] = out[:, None]
        return cached

    def _tail(self, col: np.ndarray, s: np.ndarray) -> np.ndarray:
        """log10 p of scores ``s`` beyond their column's grid, element by element: the
        generalised-Pareto tail in log space (exponential for a zero shape; a column without
        a tail fit: its last table value capped at 1 / n_ref)."""
        y = s.astype(np.float64) - self.u[col]
        c, sc = self.c_safe[col], self.scale[col]
        with np.errstate(divide="ignore", invalid="ignore"):
            base = 1.0 + c * y / sc
            gpd = np.where(base > 0, (-1.0 / c) * np.log10(np.maximum(base, 1e-300)), -np.inf)
        lt = np.where(self.exponential[col], -y / sc / np.log(10.0), gpd)
        out = np.maximum(self.log10_p_u[col] + lt, np.log10(SCORE_FLOOR_P))
        return np.where(self.no_tail[col], self.beyond[col], out)


#: a reference for a statistic that never occurs in the calibration background: p = 1 below
#: 0, and at most 1 / n_ref above (the reference saw nothing of it)
_PLACEHOLDER = ReferenceDistribution(np.array([0.0, 1e-12]), np.array([0.0, -3.0]), 1000)


def _scaled(ref: ReferenceDistribution, frac: float) -> ReferenceDistribution:
    """``ref`` of the events where a type is present, as a survival over all events."""
    shift = float(np.log10(max(frac, 1e-300)))
    p_u = None if ref.p_u is None else ref.p_u * frac
    return ReferenceDistribution(ref.scores, ref.log10_p + shift, ref.n_ref, ref.u, p_u,
                                 ref.shape, ref.scale)
