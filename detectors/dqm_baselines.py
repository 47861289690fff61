"""Statistical DQM tests against a reference run: the baselines the conv-AE must beat.

All three compare a lumisection's occupancy map ``D`` with a reference run's map
``R`` (summed over its lumisections) after normalising ``R`` to the same total:

* ``poisson_pull``: per-cell pull ``(D - s R) / sqrt(s R + s^2 R)`` (``s = sum D /
  sum R``; the second term is the reference's own statistical error); the map's
  score is the maximum |pull|; a unit's score is the max |pull| of its cells.
* ``chi2_unit``: per hardware unit, chi2 = sum of pulls^2 over its cells, turned
  into ``-log10 p`` with ndf = number of cells; the map's score is the largest
  over all units of all levels.
* ``beta_binomial``: AutoDQM's pull: a bin's count is beta-binomial
  ``BB(N_D, R + 1, N_R - R + 1)`` (binomial share of the data total with a beta
  prior from the reference counts); the pull is the Gaussian-equivalent of the
  probability of the observed count relative to the most probable one,
  ``sqrt(-2 ln(P(D) / P(mode)))``, signed; score = max |pull|.

Each returns ``BaselineScores`` with a map score (``total``) and per-unit ranking scores over
all unit levels (same column order as ``Geometry.membership``), so the evaluation
treats the conv-AE and the baselines alike. Vectorised over maps.
Registry: ``register_baseline/get_baseline/available_baselines``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import betaln, gammaln
from scipy.stats import chi2

from hotline.detectors.geometry import Geometry
from hotline.registry import Registry


@dataclass
class BaselineScores:
    geometry: Geometry
    total: np.ndarray  #: [N] map score (named like the conv-AE's ``DQMScores.total``)
    cell: np.ndarray  #: [N, cells] signed per-cell statistic
    unit: np.ndarray  #: [N, units] ranking score per unit (all levels)

    def level_scores(self, level: str) -> np.ndarray:
        return self.unit[:, self.geometry.level_slices()[self.geometry.level(level).name]]


@dataclass
class Reference:
    """A reference run: summed counts per cell and its number of events."""

    geometry: Geometry
    counts: np.ndarray  #: [cells]
    n_events: int
    description: str = ""

    @classmethod
    def from_maps(cls, geo: Geometry, counts: np.ndarray, n_events: np.ndarray,
                  description: str = "") -> Reference:
        return cls(geo, np.asarray(counts, np.float64).reshape(len(counts), -1).sum(axis=0),
                   int(np.sum(n_events)), description)


def _unit_max(geo: Geometry, cell: np.ndarray) -> np.ndarray:
    """Max over each unit's cells, for every level, -> [N, units]."""
    outs = []
    for lv in geo.levels.values():
        order = np.argsort(lv.index, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(lv.index[order]) != 0])
        outs.append(np.maximum.reduceat(cell[:, order], starts, axis=1))
    return np.concatenate(outs, axis=1)


def _flat(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, np.float64)
    return c.reshape(1 if c.ndim == 2 else len(c), -1)


def poisson_pulls(counts: np.ndarray, ref: Reference) -> np.ndarray:
    d = _flat(counts)
    s = d.sum(axis=1, keepdims=True) / max(ref.counts.sum(), 1.0)
    e = s * ref.counts[None]
    var = np.maximum(e + s**2 * ref.counts[None], 1e-9)
    return (d - e) / np.sqrt(var)


def poisson_pull(counts: np.ndarray, ref: Reference) -> BaselineScores:
    pull = poisson_pulls(counts, ref)
    a = np.abs(pull)
    return BaselineScores(ref.geometry, a.max(axis=1), pull, _unit_max(ref.geometry, a))


def chi2_unit(counts: np.ndarray, ref: Reference) -> BaselineScores:
    pull = poisson_pulls(counts, ref)
    _, ncell, _ = ref.geometry.membership
    x = (pull**2) @ _sparse_membership(ref.geometry)
    logp = -chi2.logsf(x, ncell[None]) / np.log(10.0)
    return BaselineScores(ref.geometry, logp.max(axis=1), pull, logp)


_SPARSE: dict[int, tuple[Geometry, Any]] = {}


def _sparse_membership(geo: Geometry) -> Any:
    """The geometry's cell -> unit matrix as scipy CSR (cached per geometry object)."""
    hit = _SPARSE.get(id(geo))
    if hit is None or hit[0] is not geo:
        from scipy.sparse import csr_matrix

        hit = (geo, csr_matrix(geo.membership[0].astype(np.float64)))
        _SPARSE[id(geo)] = hit
    return hit[1]


def _bb_logpmf(k: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
            + betaln(k + a, n - k + b) - betaln(a, b))


def beta_binomial(counts: np.ndarray, ref: Reference) -> BaselineScores:
    d = _flat(counts)
    n = d.sum(axis=1, keepdims=True)
    m = max(ref.counts.sum(), 1.0)
    a = ref.counts[None] + 1.0
    b = m - ref.counts[None] + 1.0
    mode = np.clip(np.floor((n + 1) * (a - 1) / np.maximum(a + b - 2, 1e-9)), 0, n)
    lp = _bb_logpmf(d, n, a, b)
    lmax = np.maximum(_bb_logpmf(mode, n, a, b), _bb_logpmf(np.minimum(mode + 1, n), n, a, b))
    pull = np.sqrt(np.maximum(2.0 * (lmax - lp), 0.0)) * np.sign(d - n * a / (a + b))
    ab = np.abs(pull)
    return BaselineScores(ref.geometry, ab.max(axis=1), pull, _unit_max(ref.geometry, ab))


BaselineFn = Callable[[np.ndarray, Reference], BaselineScores]
_BASELINES: Registry[BaselineFn] = Registry(
    "DQM baseline",
    lambda: [("poisson_pull", poisson_pull), ("chi2_unit", chi2_unit),
             ("beta_binomial", beta_binomial)],
    sort=False,
)


def register_baseline(name: str, fn: BaselineFn) -> None:
    """Register a baseline test; a duplicate name is refused."""
    _BASELINES.register(name, fn)


def register_builtins() -> None:
    """Register the built-in baselines (idempotent; lookups do it by themselves)."""
    _BASELINES.available()


def get_baseline(name: str) -> BaselineFn:
    return _BASELINES.get(name)


def available_baselines() -> list[str]:
    return _BASELINES.available()
