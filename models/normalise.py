"""Feature normalisation schemes, fitted on training data and stored in the model card.

Every scheme reduces to the same serving-time form, so the scorer needs one code
path (numpy here, and the same arithmetic baked into the ONNX graph by
``models.export``)::

    u  = log10(max(x, pt_floor))  for pT columns when ``log_pt`` else x
    xn = (u - offset) * scale      per feature
    xn = 0                         for padded (absent) object slots

Schemes:

* ``minmax``  -- (x - min) / (max - min), min/max from a first pass over the data
  (two-pass: pass 1 accumulates the range chunk by chunk, pass 2 trains);
* ``standard`` -- (x - mean) / std over real objects (Welford-style chunk merge);
* ``custom``  -- the log-pT scheme of the compression study:
  pT -> (log10 pT - a) / b, eta -> eta / 5, phi -> phi / pi.

``phi_frame = "met"`` (any scheme) first measures every object's phi from the MET
direction, wrapped to [-pi, pi) (MET's own phi becomes 0): physics is invariant
under a global rotation about the beam, so the absolute phi is noise the AE would
otherwise have to reproduce, while the angles to MET carry physics (a W's lepton
opposite its neutrino).

Statistics are computed over real objects only (``FeatureMatrix.mask``); padded
slots never enter the fit and are set to 0 in normalised space.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hotline.errors import ModelError

SCHEMES = ("minmax", "standard", "custom")
PHI_FRAMES = ("lab", "met")


def rotate_phi_to_met(x: np.ndarray) -> np.ndarray:
    """``x`` [n, f] with every phi column (2, 5, ...) measured from column 2 (MET phi).

    Wrapped to [-pi, pi) in float32, the arithmetic of the ONNX graph. Padded slots
    get arbitrary values here; ``Normaliser.transform`` zeroes them.
    """
    u = x.astype(np.float32, copy=True)
    pi = np.float32(np.pi)
    d = u[:, 2::3] - u[:, 2:3]
    u[:, 2::3] = d - np.float32(2.0) * pi * np.floor((d + pi) / (np.float32(2.0) * pi))
    return u
PT_FLOOR = 1e-3  #: GeV; keeps log10 finite for padded (zero) pT before masking


@dataclass(frozen=True)
class Normaliser:
    """Per-feature ``offset``/``scale`` (after optional log10 of pT columns)."""

    scheme: str
    offset: np.ndarray
    scale: np.ndarray
    log_pt: bool = False
    pt_columns: tuple[int, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    phi_frame: str = "lab"  #: "lab" or "met" (phi measured from the MET direction)

    @property
    def n_features(self) -> int:
        return int(self.offset.size)

    def transform_raw(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``x`` [n, f] ignoring the mask (padded slots are NOT zeroed)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ModelError(
                f"normaliser expects [n, {self.n_features}] features, got shape {x.shape}"
            )
        u = rotate_phi_to_met(x) if self.phi_frame == "met" else x.astype(np.float32, copy=True)
        if self.log_pt and self.pt_columns:
            cols = list(self.pt_columns)
            u[:, cols] = np.log10(np.maximum(u[:, cols], np.float32(PT_FLOOR)))
        u -= self.offset
        u *= self.scale
        return u

    def transform(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Normalise ``x`` [n, f]; padded object slots (``mask`` [n, objects] False) -> 0."""
        u = self.transform_raw(x)
        n_obj = mask.shape[1]
        u.reshape(len(u), n_obj, -1)[~mask.astype(bool)] = 0.0
        return u

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "log_pt": self.log_pt,
            "pt_columns": list(self.pt_columns),
            "pt_floor": PT_FLOOR,
            "offset": [float(v) for v in self.offset],
            "scale": [float(v) for v in self.scale],
            "params": self.params,
            "phi_frame": self.phi_frame,
            "formula": ("phi -> wrap(phi - phi_MET) to [-pi, pi) first; " if self.phi_frame
                        == "met" else "")
                       + "xn = (log10(max(x, pt_floor)) if log_pt and pT column else x - offset)"
                       " * scale; padded object slots -> 0 and masked from the loss",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        try:
            off = np.asarray(d["offset"], dtype=np.float32)
            sc = np.asarray(d["scale"], dtype=np.float32)
            if off.shape != sc.shape or off.ndim != 1:
                raise ValueError("offset and scale must be equal-length lists")
            if not (np.isfinite(off).all() and np.isfinite(sc).all()):
                raise ValueError("offset/scale hold NaN or inf")
            return cls(
                scheme=str(d["scheme"]), offset=off, scale=sc, log_pt=bool(d.get("log_pt")),
                pt_columns=tuple(int(c) for c in d.get("pt_columns", ())),
                params=dict(d.get("params", {})),
                phi_frame=_phi_frame(d.get("phi_frame", "lab")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"invalid normalisation in model card: {exc}") from None


def _phi_frame(value: Any) -> str:
    if value not in PHI_FRAMES:
        raise ModelError(f"unknown phi_frame '{value}'; known: {', '.join(PHI_FRAMES)}")
    return str(value)


def _columns(n_features: int) -> tuple[list[int], list[int], list[int]]:
    pt = list(range(0, n_features, 3))
    return pt, [c + 1 for c in pt], [c + 2 for c in pt]


@dataclass
class RunningStats:
    """First-pass accumulator over chunks: per-feature min, max, count, mean, M2 (real objects)."""

    n_features: int
    log_pt: bool = False
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        f = self.n_features
        self.count = np.zeros(f)
        self.mean = np.zeros(f)
        self.m2 = np.zeros(f)
        self.lo = np.full(f, np.inf)
        self.hi = np.full(f, -np.inf)

    def update(self, x: np.ndarray, mask: np.ndarray) -> None:
        """Add one chunk: ``x`` [n, f] raw features, ``mask`` [n, objects]."""
        u = x.astype(np.float64)
        if self.log_pt:
            pt, _, _ = _columns(self.n_features)
            u[:, pt] = np.log10(np.maximum(u[:, pt], PT_FLOOR))
        m = np.repeat(mask.astype(bool), 3, axis=1)
        cnt = m.sum(0).astype(float)
        s = np.where(m, u, 0.0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)
        m2_b = np.where(m, (u - mean_b) ** 2, 0.0).sum(0)
        tot = self.count + cnt
        delta = mean_b - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(tot > 0, self.mean + delta * cnt / np.maximum(tot, 1), 0.0)
            self.m2 = self.m2 + m2_b + delta**2 * self.count * cnt / np.maximum(tot, 1)
        self.count = tot
        self.lo = np.minimum(self.lo, np.where(m, u, np.inf).min(0))
        self.hi = np.maximum(self.hi, np.where(m, u, -np.inf).max(0))

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1))


def _safe_scale(width: np.ndarray) -> np.ndarray:
    """1/width, with 1 where a feature never varied (or never occurred)."""
    ok = np.isfinite(width) & (width > 1e-6)
    return np.where(ok, 1.0 / np.where(ok, width, 1.0), 1.0)


def fit_normaliser(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    scheme: str = "custom",
    pt_a: float = 1.0,
    pt_b: float = 1.0,
    eta_weight: float = 1.0,
    phi_weight: float = 1.0,
    phi_frame: str = "lab",
) -> Normaliser:
    """Fit ``scheme`` on ``chunks`` of (x [n, f], mask [n, objects]) -- the first pass.

    ``custom`` needs no statistics (``pt_a``/``pt_b`` are its constants: log10 pT
    of ~10 GeV -> 0, of ~100 GeV -> 1); the chunks are still read to check shapes.
    ``eta_weight``/``phi_weight`` multiply the eta/5 and phi/pi columns: a feature's
    squared residual, hence its share of the score, scales with weight^2. Uniform phi
    carries little the AE can learn yet dominates the loss at weight 1 (see README,
    "Attribution"); 0 removes a column from the model's view and its score entirely.
    """
    phi_frame = _phi_frame(phi_frame)
    if phi_frame == "met":  # statistics of the rotated features
        chunks = ((rotate_phi_to_met(x), m) for x, m in chunks)
    for name, w in (("eta_weight", eta_weight), ("phi_weight", phi_weight)):
        if not (np.isfinite(w) and w >= 0):
            raise ModelError(f"normalisation {name} must be a finite number >= 0, got {w}")
    if scheme not in SCHEMES:
        raise ModelError(f"unknown normalisation scheme '{scheme}'; known: {', '.join(SCHEMES)}")
    stats: RunningStats | None = None
    for x, mask in chunks:
        if stats is None:
            stats = RunningStats(x.shape[1], log_pt=False)
        stats.update(x, mask)
    if stats is None or stats.count.sum() == 0:
        raise ModelError("cannot fit a normalisation: the training data hold no objects")
    f = stats.n_features
    pt, eta, phi = _columns(f)
    if scheme == "custom":
        off = np.zeros(f)
        sc = np.ones(f)
        off[pt] = pt_a
        sc[pt] = 1.0 / pt_b
        sc[eta] = eta_weight / 5.0
        sc[phi] = phi_weight / np.pi
        params = {"a": pt_a, "b": pt_b}
        if (eta_weight, phi_weight) != (1.0, 1.0):
            params.update(eta_weight=eta_weight, phi_weight=phi_weight)
        return Normaliser("custom", off.astype(np.float32), sc.astype(np.float32), log_pt=True,
                          pt_columns=tuple(pt), params=params, phi_frame=phi_frame)
    if scheme == "minmax":
        lo = np.where(np.isfinite(stats.lo), stats.lo, 0.0)
        sc = _safe_scale(stats.hi - stats.lo)
        return Normaliser("minmax", lo.astype(np.float32), sc.astype(np.float32),
                          params={"min": lo.tolist(), "max": np.where(
                              np.isfinite(stats.hi), stats.hi, 0.0).tolist()},
                          phi_frame=phi_frame)
    sc = _safe_scale(stats.std)
    return Normaliser("standard", stats.mean.astype(np.float32), sc.astype(np.float32),
                      params={"mean": stats.mean.tolist(), "std": stats.std.tolist()},
                      phi_frame=phi_frame)
