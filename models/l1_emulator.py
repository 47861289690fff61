"""The L1 trigger menu of a firmware build and its bit-accurate emulation, for serving.

``hotline firmware build`` writes, beside the HLS project, ``l1_menu.json`` and the compiled
emulation library (``l1/emulation-<sha12>.so``, the g++ build of the hls4ml C++). The menu
holds, per calibrated p-value of the model card, the threshold in the firmware's fixed-point
score units (the integer count of score LSBs, like the AXOL1TL VLoose..VTight seeds), the
sha256 of the library and a hash of the model card (ONNX sha256, thresholds, normalisation,
feature spec) it was built for.

:class:`L1Emulator` opens a build for the stream: it refuses, in one line, a library whose
sha256 is not the menu's and a menu whose card hash is not the registered model's; it loads
the library with ``ctypes`` (no hls4ml, no torch) and scores events exactly as the firmware
block does: the card's normalisation, the 0/1 feature mask, the ``<project>_double`` entry
point (the ``ap_fixed`` score converts to a double exactly). Firmware decisions are
``score > seed`` in fixed-point units: ``floor(score * 2**F) > fixed`` with F fractional
bits, exactly the comparison of the hardware.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import ModelError

MENU_FILE = "l1_menu.json"
LIBRARY_DIR = "l1"
MENU_SCHEMA = 1
#: AXOL1TL-style seed names from the loosest to the tightest p-value
SEED_NAMES = {1: ("Nominal",), 2: ("Loose", "Tight"), 3: ("Loose", "Nominal", "Tight"),
              4: ("VLoose", "Loose", "Tight", "VTight"),
              5: ("VLoose", "Loose", "Nominal", "Tight", "VTight")}


def seed_labels(p_values: list[float]) -> list[str]:
    """Seed names for p-values sorted from loose (large p) to tight; more than five: by p."""
    ps = sorted(p_values, reverse=True)
    names = SEED_NAMES.get(len(ps))
    return list(names) if names else [f"p{p:.0e}" for p in ps]


def card_hash(card: dict[str, Any]) -> str:
    """sha256 of what a build depends on in a card: ONNX sha256, thresholds, normalisation,
    feature spec (not descriptions or metrics that later studies add)."""
    keyed = {"onnx": (card.get("onnx") or {}).get("sha256"), "thresholds": card.get("thresholds"),
             "normalisation": card.get("normalisation"), "feature_spec": card.get("feature_spec"),
             "name": card.get("name"), "version": str(card.get("version"))}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class L1Seed:
    """One menu threshold: ``label`` (VLoose..VTight), background ``p``, the serving-units
    ``threshold`` of the card and ``fixed``, the firmware threshold in score LSBs."""

    label: str
    p: float
    threshold: float
    fixed: int

    def fw_threshold(self, frac_bits: int) -> float:
        return self.fixed / float(2 ** frac_bits)


@dataclass
class L1Menu:
    """The trigger menu of one firmware build (``l1_menu.json``)."""

    model: str
    version: str
    build: str  #: build id: sha256 (12 hex) of library + card hash + score type
    card_hash: str
    library: str  #: file name relative to the build folder
    library_sha256: str
    project: str  #: hls4ml project name (``<project>_double`` is the entry point)
    score_type: str  #: ap_fixed<W,I,...> of the score output
    frac_bits: int
    n_features: int
    masked: bool  #: the block takes the 0/1 feature mask as a second input
    serving_score: str = "recon"
    seeds: list[L1Seed] = field(default_factory=list)
    precision: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    schema: int = MENU_SCHEMA

    def seed(self, label_or_p: str | float) -> L1Seed:
        for s in self.seeds:
            if s.label == label_or_p or (not isinstance(label_or_p, str)
                                         and math.isclose(s.p, float(label_or_p), rel_tol=1e-9)):
                return s
        raise ModelError(f"L1 menu of {self.model} v{self.version} (build {self.build}) has no "
                         f"seed {label_or_p!r}; seeds: {', '.join(s.label for s in self.seeds)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = [asdict(s) for s in self.seeds]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MENU_FILE) -> L1Menu:
        try:
            data = dict(d)
            data["seeds"] = [L1Seed(str(s["label"]), float(s["p"]), float(s["threshold"]),
                                    int(s["fixed"])) for s in data.get("seeds", [])]
            return cls(**data)
        except (TypeError, KeyError, ValueError) as exc:
            raise ModelError(f"L1 menu {where} is malformed: {exc}") from None

    def write(self, build_dir: str | Path) -> Path:
        path = Path(build_dir) / MENU_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, build_dir: str | Path) -> L1Menu:
        path = Path(build_dir) / MENU_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()), str(path))
        except FileNotFoundError:
            raise ModelError(f"{build_dir} holds no L1 menu ({MENU_FILE}); build it with "
                             "`hotline firmware build MODEL`") from None
        except json.JSONDecodeError as exc:
            raise ModelError(f"L1 menu {path} is not valid JSON: {exc}") from None


def make_seeds(thresholds: dict[float, float], frac_bits: int) -> list[L1Seed]:
    """Seeds of a menu: each card threshold as ``floor(threshold * 2**F)`` score LSBs
    (``score > threshold`` of a score on that grid is ``score_lsb > fixed``)."""
    ps = sorted(thresholds, reverse=True)
    return [L1Seed(label, float(p), float(thresholds[p]),
                   int(math.floor(float(thresholds[p]) * 2 ** frac_bits)))
            for label, p in zip(seed_labels(ps), ps)]


class L1Emulator:
    """A firmware build's compiled emulation, checked against its menu and model card."""

    def __init__(self, menu: L1Menu, library: Path, normaliser: Any) -> None:
        self.menu = menu
        self.library = library
        self.normaliser = normaliser
        try:
            self._lib = ctypes.CDLL(str(library))
            fn = getattr(self._lib, f"{menu.project}_double")
        except (OSError, AttributeError) as exc:
            raise ModelError(f"L1 emulation library {library} cannot be loaded: {exc}") from None
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * (3 if menu.masked else 2)
        self._fn = fn
        self.calls = 0
        self.seconds = 0.0

    @classmethod
    def open(cls, build_dir: str | Path, registry: str | Path | None = None) -> L1Emulator:
        """Open ``build_dir`` (``<builds>/<model>/<version>``): menu, card and library checked."""
        from hotline.models.normalise import Normaliser
        from hotline.models.registry import load_model

        build = Path(build_dir)
        menu = L1Menu.read(build)
        lib = build / menu.library
        if not lib.is_file():
            raise ModelError(f"L1 build {build}: emulation library {menu.library} is missing")
        digest = file_sha256(lib)
        if digest != menu.library_sha256:
            raise ModelError(
                f"L1 build {build}: library {menu.library} has sha256 {digest[:12]}..., the menu "
                f"says {menu.library_sha256[:12]}...; it is not the library of build "
                f"{menu.build}: rebuild with `hotline firmware build {menu.model}:{menu.version}`")
        model = load_model(menu.model, menu.version, registry)
        have = card_hash(model.card)
        if have != menu.card_hash:
            raise ModelError(
                f"L1 build {build} (build {menu.build}) was made for another card of "
                f"{menu.model} v{menu.version} (card hash {menu.card_hash[:12]}..., registered "
                f"{have[:12]}...): rebuild with `hotline firmware build "
                f"{menu.model}:{menu.version}`")
        return cls(menu, lib, Normaliser.from_dict(model.card["normalisation"]))

    @property
    def name(self) -> str:
        return f"{self.menu.model}:{self.menu.version}@{self.menu.build}"

    def inputs(self, x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """The firmware block's inputs (float64, C order) for raw features and object mask."""
        xn = np.ascontiguousarray(self.normaliser.transform(x, mask), dtype=np.float64)
        if not self.menu.masked:
            return [xn]
        per = xn.shape[1] // mask.shape[1]
        fm = np.ascontiguousarray(np.repeat(mask.astype(np.float64), per, axis=1))
        return [xn, fm]

    def scores(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Firmware scores [n] (exact ``ap_fixed`` values as float64) of raw events."""
        ins = self.inputs(x, mask)
        n = len(ins[0])
        out = np.zeros(n, np.float64)
        if n == 0:
            return out
        t0 = time.perf_counter()
        strides = [a.strides[0] for a in ins]
        bases = [a.ctypes.data for a in ins]
        obase = out.ctypes.data
        fn = self._fn
        if len(ins) == 2:
            (b0, b1), (s0, s1) = bases, strides
            for i in range(n):
                fn(b0 + i * s0, b1 + i * s1, obase + 8 * i)
        else:
            b0, s0 = bases[0], strides[0]
            for i in range(n):
                fn(b0 + i * s0, obase + 8 * i)
        self.calls += n
        self.seconds += time.perf_counter() - t0
        return out

    def fixed(self, scores: np.ndarray) -> np.ndarray:
        """Scores in score LSBs (int64)."""
        return np.floor(np.asarray(scores, np.float64) * 2 ** self.menu.frac_bits).astype(np.int64)

    def decisions(self, scores: np.ndarray) -> np.ndarray:
        """[n, seeds] firmware decisions: score LSBs > each seed's fixed threshold."""
        f = self.fixed(scores)
        return np.stack([f > s.fixed for s in self.menu.seeds], axis=1) if self.menu.seeds \
            else np.zeros((len(f), 0), bool)
