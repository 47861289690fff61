"""The DQM convolutional autoencoder's serving side: map scoring with onnxruntime, no torch.

One conv-AE per monitored subsystem looks at a lumisection's occupancy map as
an image (the network, its ONNX export and its firmware form are the torch side,
``models.conv_ae_net``). This module is the ``score`` handler of the kind ``conv-ae``
(``models.kinds``): ``ConvAEScorer`` implements the scorer interface of
``models.interface`` -- ``score(counts, n_events)`` returns ``DQMScores`` with the map
``total`` score and per-unit ``contributions``; ``p_value(total, n_events)``;
``threshold(p, n_events)``; ``calibration_problem(n_events)``.

Input normalisation (``normalise``): ``x = counts / (n_events * reference)`` where
``reference`` is the mean hits/event per cell of the good training lumisections
(so a good map is ~1 everywhere whatever the luminosity). The reconstruction is
turned back into expected counts ``mu = x_hat * n_events * reference`` and each
cell's loss is the Poisson deviance ``2 (n ln(n/mu) - (n - mu))`` (a chi2-like,
statistics-aware loss: dead cells and hot cells both count). Cell losses summed
over each hardware unit (channel, chamber, board, HV channel, sector ...) give
per-unit contributions; each unit sum is turned into a p-value with a scaled
chi2 whose mean and variance were measured on good lumisections (stored in the
card as ``unit_null``); a second test per unit, the pull of its summed counts
against the summed expectation (standardised with its good-data mean and
variance), catches coherent efficiency drops that a chi2 over many cells dilutes;
for unit levels with a measured cell covariance (card ``unit_null.whiten``: chambers
and sectors, ``whiten_units``) that sum is the whitened one, ``w . r`` with
``w = C^-1 sqrt(mu)`` over the unit's standardised residuals ``r = (n - mu)/sqrt(mu)``:
the hits of one muon are correlated across stations, so the optimal weights are
not uniform; a unit's p-value is the better of the two tests (x2 for trying both). The map's score
(card ``score_mode = "level_min_p"``) is the largest over unit levels of
``-log10(smallest unit p-value of the level) - log10(units in the level)``
(Bonferroni per level, so 960 channels do not drown 60 sectors); its thresholds
per p-value come from ``models.thresholds.calibrate`` on held-out good lumisections.
A card with a ``statistics_calibration`` (``models.occupancy_statistics``: one calibration
per events-per-lumisection level, measured on clean maps of that many events, interpolated
in log n) gives thresholds and p-values at each map's own statistics, and
``calibration_problem(n)`` names a map size outside its ``calibrated_events`` range.

Registered under ``models/registry/<name>/<version>/`` via ``models.registry``
(card kind ``conv-ae``, ``feature_spec`` null, ``geometry`` = the geometry as data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hotline.detectors.geometry import Geometry
from hotline.errors import ModelError
from hotline.models.interface import ModelScorer, Scores
from hotline.models.occupancy_statistics import StatisticsTable
from hotline.models.registry import RegisteredModel, load_model
from hotline.models.thresholds import ReferenceDistribution

KIND = "conv-ae"  #: the model kind (``models.kinds``) of these cards
MU_FLOOR = 1e-3  #: expected counts are floored here (a reconstruction can never be 0)


def normalise(counts: np.ndarray, n_events: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Counts [n, H, W] -> float32 [n, 1, H, W] in units of the reference occupancy."""
    n = counts.shape[0]
    ref = np.asarray(reference, np.float64).reshape(1, *counts.shape[1:])
    ne = np.maximum(np.asarray(n_events, np.float64), 1.0).reshape(n, 1, 1)
    return (counts / (ne * ref)).astype(np.float32)[:, None]


def poisson_deviance(n: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Per-cell Poisson deviance 2 (n ln(n/mu) - (n - mu)); 0 log 0 = 0."""
    mu = np.maximum(mu, MU_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(n > 0, n * np.log(np.maximum(n, 1e-300) / mu), 0.0)
    return 2.0 * (t - (n - mu))


def unit_log10_p(loss: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """-log10 p of unit losses under a scaled chi2 with the good-data mean and variance."""
    from scipy.special import chdtrc
    from scipy.stats import chi2

    a = var / (2.0 * mean)
    nu = 2.0 * mean**2 / var
    x = np.maximum(loss, 0.0) / a
    p = chdtrc(nu, x)
    out = -np.log10(np.maximum(p, 1e-300))
    tiny = p < 1e-250  # deep tail: use the log survival function directly
    if tiny.any():
        nu_b = np.broadcast_to(nu, x.shape)
        out[tiny] = -chi2.logsf(x[tiny], nu_b[tiny]) / np.log(10.0)
    return out


WHITEN_MAX_CELLS = 32  #: levels with at most this many cells per unit get a whitened test


def whiten_units(r: np.ndarray, mu: np.ndarray, cells: np.ndarray, ridge: float = 1e-3
                 ) -> dict[str, list]:
    """Weights of the whitened sum test of each unit, from good-data residuals.

    ``r`` [N, cells] are standardised residuals ``(n - mu) / sqrt(mu)`` of good
    lumisections, ``mu`` [N, cells] their expected counts, ``cells`` [units, k] the
    cells of each unit. Hits of one muon are correlated across stations and the
    reconstruction adds correlated errors, so the plain count sum of a unit is not the
    best test of a coherent efficiency change: with the measured covariance ``C`` of
    the unit's residuals (overdispersion and correlations measured on good data) and
    the signal direction ``d = sqrt(mu)`` (a relative change ``eps`` moves ``r`` by
    ``eps sqrt(mu)``), the optimal linear statistic is ``w . (r - m)`` with
    ``w = C^-1 d``, scaled to unit variance on good data.
    """
    ru = r[:, cells]  # [N, units, k]
    m = ru.mean(axis=0)
    x = ru - m
    cov = np.einsum("nui,nuj->uij", x, x) / max(len(r) - 1, 1)
    k = cells.shape[1]
    cov += ridge * np.trace(cov, axis1=1, axis2=2)[:, None, None] / k * np.eye(k)[None]
    d = np.sqrt(np.maximum(mu[:, cells], MU_FLOOR)).mean(axis=0)  # [units, k]
    w = np.linalg.solve(cov, d[..., None])[..., 0]
    w = w / np.sqrt(np.einsum("ui,uij,uj->u", w, cov, w))[:, None]
    return {"cells": cells.tolist(), "w": [[round(float(v), 6) for v in row] for row in w],
            "off": [round(float(v), 6) for v in np.einsum("ui,ui->u", w, m)]}


def whitened_z(r: np.ndarray, wd: dict[str, np.ndarray]) -> np.ndarray:
    """[N, units] whitened sum statistic (unit variance on good data; < 0 = deficit)."""
    cells = wd["cells"].astype(np.int64)
    return np.einsum("nui,ui->nu", r[:, cells], wd["w"]) - wd["off"][None]


@dataclass
class DQMScores(Scores):
    """Scores of N maps of one subsystem (per map, per cell, per hardware unit)."""

    geometry: Geometry
    total: np.ndarray  #: [N] the map score (largest level-corrected unit -log10 p)
    p_value: np.ndarray  #: [N] background p-value of the score (from the reference)
    cell_loss: np.ndarray  #: [N, cells] Poisson deviance
    expected: np.ndarray  #: [N, cells] reconstructed expected counts
    unit_loss: np.ndarray  #: [N, units] summed cell loss per unit (all levels)
    unit_logp: np.ndarray  #: [N, units] -log10 p per unit (all levels)
    unit_excess: np.ndarray | None = None  #: [N, units] (loss - good mean) per cell
    unit_pull: np.ndarray | None = None  #: [N, units] (sum n - sum mu) / sqrt(sum mu)
    unit_mu: np.ndarray | None = None  #: [N, units] expected counts per unit


    def __len__(self) -> int:
        return len(self.total)

    def contributions(self, i: int, digits: int = 6) -> dict[str, dict[str, float]]:
        """Map ``i``'s summed Poisson deviance per hardware unit: {level: {unit: loss}}.

        Within each level the units' losses add up to the map's total deviance.
        """
        geo = self.geometry
        out: dict[str, dict[str, float]] = {}
        for j, (level, u) in enumerate(geo.membership[2]):
            out.setdefault(level, {})[geo.unit_name(level, u)] = round(
                float(self.unit_loss[i, j]), digits)
        return out

    def level_scores(self, level: str) -> np.ndarray:
        """[N, units of level] ranking scores (unit -log10 p) at one level."""
        return self.unit_logp[:, self.geometry.level_slices()[self.geometry.level(level).name]]

    def top_units(self, i: int, k: int = 5, min_log10_p: float = 3.0) -> list[dict[str, Any]]:
        """The k hardware units of map i that best say what broke, over all levels.

        Units significant after the per-level correction (``-log10 p - log10 n_units >=
        min_log10_p``) are candidates; a unit inside a larger candidate whose excess loss
        per cell is at least 2/3 of its own is *explained* by it (a dead board's channels
        and chambers are not listed, the board is). Remaining candidates are ordered by
        excess loss per cell (most specific first); if none is significant, by p-value.
        """
        geo = self.geometry
        _, _, labels = geo.membership
        total = max(float(self.cell_loss[i].sum()), 1e-12)
        corr = np.concatenate([np.full(sl.stop - sl.start, np.log10(sl.stop - sl.start))
                               for sl in geo.level_slices().values()])
        cand = np.flatnonzero(self.unit_logp[i] - corr >= min_log10_p)
        if cand.size and self.unit_excess is not None:
            d = self.unit_excess[i]
            sub = geo.contains[np.ix_(cand, cand)]  # [parent, child]
            explained = (sub & (d[cand][:, None] >= d[cand][None, :] / 1.5)).any(axis=0)
            keep = cand[~explained]
            rest = cand[explained]
            order = np.concatenate([keep[np.argsort(-d[keep], kind="stable")],
                                    rest[np.argsort(-self.unit_logp[i][rest], kind="stable")]])
            order = order[:k]
        else:
            order = np.lexsort((-self.unit_loss[i], -self.unit_logp[i]))[:k]
        out = []
        for j in order:
            level, u = labels[j]
            out.append({"level": level, "unit": self.geometry.unit_name(level, u),
                        "contribution": round(float(self.unit_loss[i, j]) / total, 4),
                        "loss": round(float(self.unit_loss[i, j]), 3),
                        "log10_p": round(float(self.unit_logp[i, j]), 2)})
        return out


class ConvAEScorer(ModelScorer):
    """onnxruntime scorer of one registered conv-AE (card + model.onnx); ``models.interface``.

    Built from a card and its ONNX file (also before registration, while calibrating),
    ``from_model`` (the kind's score handler) or ``from_registry``.
    """

    def __init__(self, card: dict[str, Any], onnx_path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        if card.get("kind") != KIND:
            raise ModelError(f"{onnx_path}: model kind is {card.get('kind')!r}, not '{KIND}'")
        self.card = card
        self.geometry = Geometry.from_dict(card["geometry"], source=f"card of {card['name']}")
        self.reference = np.asarray(card["normalisation"]["reference"], np.float64)
        if self.reference.size != self.geometry.n_cells:
            raise ModelError(f"model {card['name']}: reference has {self.reference.size} cells, "
                             f"geometry {self.geometry.n_cells}")
        null = card.get("unit_null") or {}
        self.null_mean = np.asarray(null.get("mean", []), np.float64)
        self.null_var = np.asarray(null.get("var", []), np.float64)
        self.sum_mean = np.asarray(null.get("sum_mean", []), np.float64)
        self.sum_var = np.asarray(null.get("sum_var", []), np.float64)
        #: statistics-aware form: bias and extra variance relative to the expected counts
        self.sum_rel_bias = np.asarray(null.get("sum_rel_bias", []), np.float64)
        self.sum_rel_var = np.asarray(null.get("sum_rel_var", []), np.float64)
        #: per level: whitened sum test weights [units, cells per unit] (``whiten_units``)
        self.whiten = {lv: {k: np.asarray(v, np.float64) for k, v in d.items()}
                       for lv, d in (null.get("whiten") or {}).items()}
        self.ref_dist = (ReferenceDistribution.from_dict(card["reference"])
                         if card.get("reference") else None)
        #: per events-per-lumisection calibration (``models.occupancy_statistics``); None
        #: for cards calibrated at one size (their thresholds serve every map)
        self.statistics = StatisticsTable.from_card(card)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts,
                                            providers=["CPUExecutionProvider"])
        from scipy.sparse import csr_matrix

        # cells -> units (all levels), sparse: each cell is in one unit per level
        self.membership = csr_matrix(self.geometry.membership[0].astype(np.float64))

    @classmethod
    def from_model(cls, model: RegisteredModel, threads: int = 1) -> ConvAEScorer:
        """The scorer of a registered conv-AE (score handler of kind ``conv-ae``)."""
        return cls(model.card, model.onnx_path, threads)

    @classmethod
    def from_registry(cls, name: str, version: str | int = "latest",
                      registry: str | Path | None = None, threads: int = 1) -> ConvAEScorer:
        return cls.from_model(load_model(name, version, registry), threads)

    @property
    def name(self) -> str:
        return str(self.card.get("name", KIND))

    @property
    def version(self) -> str:
        return str(self.card.get("version", "?"))

    @property
    def subsystem(self) -> str:
        return self.geometry.name

    def threshold(self, p: float, n_events: float | None = None) -> float:
        """The map-score threshold for background p-value ``p`` (at ``n_events`` events per
        lumisection when the card has a statistics table)."""
        if self.statistics is not None and n_events is not None:
            return float(self.statistics.threshold(p, float(n_events)))
        for t in self.card.get("thresholds", []):
            if abs(float(t["p"]) - p) <= 1e-12 * max(p, 1e-300):
                return float(t["threshold"])
        if self.ref_dist is None:
            raise ModelError(f"model {self.name} has no threshold for p = {p:g}")
        return self.ref_dist.isf(p)

    def calibration_problem(self, n_events: float) -> str | None:
        """Why a map of ``n_events`` events is outside what the model is calibrated for
        (one line), or None. Cards without a statistics table accept every size."""
        return None if self.statistics is None else self.statistics.problem(n_events)

    def p_value(self, total: np.ndarray, n_events: np.ndarray | None = None) -> np.ndarray:
        """Background p-value of map scores; beyond the reference's reach (bounded tail
        fits give 0) the smallest p-value it supports, 1 / (100 x reference size). With a
        statistics table and ``n_events``: at each map's events per lumisection (NaN
        outside the calibrated range)."""
        if self.statistics is not None and n_events is not None:
            return self.statistics.p_value(total, n_events)
        if self.ref_dist is None:
            raise ModelError(f"model {self.name} v{self.version} is not calibrated "
                             "(no reference distribution); run 'hotline dqm train'")
        return np.maximum(self.ref_dist.p_value(total), 0.01 / self.ref_dist.n_ref)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["x_hat"], {"x": np.ascontiguousarray(x, np.float32)})[0]

    def score(self, counts: np.ndarray, n_events: np.ndarray) -> DQMScores:
        """Score maps: counts [N, H, W] (raw hits) with their event numbers [N]."""
        counts = np.asarray(counts, np.float64)
        if counts.ndim == 2:
            counts = counts[None]
        if counts.shape[1:] != self.geometry.shape:
            raise ModelError(
                f"model {self.name}: occupancy map of shape {counts.shape[1:]} does not fit "
                f"geometry '{self.geometry.name}' {self.geometry.shape}"
            )
        n = counts.shape[0]
        ne = np.maximum(np.asarray(n_events, np.float64).reshape(n), 1.0)
        x = normalise(counts, ne, self.reference)
        x_hat = self.reconstruct(x)[:, 0].reshape(n, -1).astype(np.float64)
        mu = np.maximum(x_hat, 0.0) * ne[:, None] * self.reference[None]
        flat = counts.reshape(n, -1)
        cell = poisson_deviance(flat, mu)
        unit_loss = cell @ self.membership
        # coherent deficit/excess of a whole unit: pull of its summed counts
        unit_mu = np.maximum(mu @ self.membership, MU_FLOOR)
        unit_pull = (flat @ self.membership - unit_mu) / np.sqrt(unit_mu)
        if self.null_mean.size == unit_loss.shape[1]:
            logp = unit_log10_p(unit_loss, self.null_mean[None], self.null_var[None])
            if self.sum_rel_bias.size == unit_loss.shape[1]:
                # the model's relative bias and spread scale with the counts: a map with
                # 10x fewer events than the calibration gets a 10x smaller correction
                z = ((unit_pull - self.sum_rel_bias[None] * np.sqrt(unit_mu))
                     / np.sqrt(1.0 + self.sum_rel_var[None] * unit_mu))
            elif self.sum_mean.size == unit_loss.shape[1]:
                z = (unit_pull - self.sum_mean[None]) / np.sqrt(self.sum_var[None])
            if self.whiten:
                # units with a measured cell covariance: the whitened (optimal linear) sum
                # test replaces the plain summed-count pull
                z = np.array(z, copy=True)
                base = self.geometry.level_slices()
                r = (flat - mu) / np.sqrt(np.maximum(mu, MU_FLOOR))
                for lv, wd in self.whiten.items():
                    z[:, base[lv]] = whitened_z(r, wd)
            if self.sum_mean.size == unit_loss.shape[1]:
                from scipy.special import log_ndtr

                logp_sum = -(np.log(2.0) + log_ndtr(-np.abs(z))) / np.log(10.0)
                # the better of the two tests per unit, corrected for trying two
                logp = np.maximum(logp, logp_sum) - np.log10(2.0)
        else:  # not calibrated yet (during training): a loss per cell
            logp = unit_loss / self.geometry.membership[1][None]
        logp = np.minimum(logp, 1e4)  # finite for JSON (p below 1e-10000 is just "broken")
        if self.card.get("score_mode", "min_p") == "level_min_p":
            # smallest p per unit level, corrected for the number of units in the level
            score = np.max([logp[:, sl].max(axis=1) - np.log10(sl.stop - sl.start)
                            for sl in self.geometry.level_slices().values()], axis=0)
        else:
            score = logp.max(axis=1)
        # not calibrated yet (during calibration): no p-values
        pv = (self.p_value(score, ne) if self.ref_dist is not None or self.statistics
              else np.full(n, np.nan))
        ncell = self.geometry.membership[1][None]
        if self.null_mean.size == unit_loss.shape[1]:
            excess = (unit_loss - self.null_mean[None]) / ncell
        else:
            excess = unit_loss / ncell
        return DQMScores(self.geometry, score, pv, cell, mu, unit_loss, logp, excess, unit_pull,
                         unit_mu)
