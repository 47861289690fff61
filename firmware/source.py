"""What a firmware build is made from: ``ModelSource`` (one model, its samples and thresholds)
and ``parse_model_ref`` (``MODEL[:VERSION]``).

Stand-ins (``firmware.build.standin_source``) and registered models
(``firmware.registry_adapter.registered_source``) both end up as a ``ModelSource``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hotline.errors import FirmwareError
from hotline.firmware.emulation import onnx_scores

Sample = tuple[np.ndarray, ...]  #: a batch of model inputs as serving takes them (+ mask)


@dataclass
class ModelSource:
    """Everything a firmware build needs about one model.

    Samples are tuples of arrays in *serving* form (stand-ins: normalised
    features; registered models: raw features and the object mask);
    ``firmware_inputs`` turns them into the firmware block's inputs and
    ``serving_scores`` scores them as serving does (onnxruntime).
    """

    name: str
    version: str
    kind: str  #: ae | vae | conv-ae
    score_net: Any  #: torch module (firmware inputs) -> [n, 1] score
    input_shape: tuple[int, ...] | list[tuple[int, ...]]  #: one shape per firmware input
    thresholds: dict[float, float]  #: p-value -> score threshold (calibrated on background)
    background: Sample  #: held-out background events
    signal: Sample | None = None  #: held-out anomalous events (for the TPR), optional
    serving_scores: Any = None  #: callable(*sample) -> [n] serving scores
    firmware_inputs: Any = None  #: callable(*sample) -> list of firmware input arrays
    onnx: bytes | str | None = None  #: the serving ONNX model (stand-ins: the score net)
    note: str = ""
    #: where the held-out events come from (runs, seeds; ``firmware.validation_set``)
    validation: dict[str, Any] = field(default_factory=dict)
    #: p-value -> threshold of every calibrated p-value (the L1 menu); default: ``thresholds``
    menu_thresholds: dict[float, float] = field(default_factory=dict)
    card: dict[str, Any] | None = None  #: the registered model's card (None: a stand-in)
    serving_score_name: str = "recon"  #: the serving score output the firmware reproduces

    def serve(self, sample: Sample) -> np.ndarray:
        if self.serving_scores is not None:
            return np.asarray(self.serving_scores(*sample), dtype=np.float64).ravel()
        return onnx_scores(self.onnx, sample[0])

    def fw_inputs(self, sample: Sample) -> list[np.ndarray]:
        if self.firmware_inputs is not None:
            return list(self.firmware_inputs(*sample))
        return list(sample)

    def sample(self) -> tuple[Sample, np.ndarray]:
        """Held-out events (background then signal) and the signal flags."""
        parts = [self.background] + ([self.signal] if self.signal is not None else [])
        joined = tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))
        flags = np.zeros(len(joined[0]), bool)
        if self.signal is not None:
            flags[len(self.background[0]):] = True
        return joined, flags


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``name[:version]`` -> (name, version or 'latest')."""
    name, _, version = ref.partition(":")
    if not name:
        raise FirmwareError(f"model reference '{ref}' has no name; use MODEL[:VERSION]")
    return name, version or "latest"
