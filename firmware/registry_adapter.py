"""Registered models (``models.registry``) as firmware build sources.

What goes to firmware is decided by the model's kind (``models.kinds``): its
``firmware`` handler returns a ``FirmwarePlan`` -- the score network to convert, the
serving score it reproduces and whether it takes the feature mask -- or refuses with
the reason. For the built-in kinds:

* ``ae``: the dense AE plus its masked MSE score, all in firmware. The block
  has two inputs, the *normalised* features (padded slots 0) and the 0/1
  feature mask, and computes ``sum((x - AE(x))**2 * m) / F`` -- the serving
  graph's ``total``. Normalisation (log10 pT, offset, scale) is the step in
  front of the block: in the L1 system the input links deliver scaled
  hardware units; here ``models.normalise.Normaliser.transform`` applies it.
* ``vae``: the mu-only encoder scoring ``sum(mu**2)`` (the AXOL1TL score),
  compared with the serving graph's ``mu2`` output.
* ``ensemble`` and ``conv-ae`` (DQM maps, not an L1 trigger path) are refused: an
  ensemble costs N x the resources of one AE; the conv-AE's score (Poisson
  deviance, per-unit chi2 p-values) is not a firmware computation.

When the card's score is not the one the firmware block computes, the card's
thresholds are for another score, so thresholds are calibrated on a separate
background reference sample (said in the note).

The held-out sample is the model's validation set (``firmware.validation_set``): the shipped
set its version's ``validation.json`` names, else regenerated (synthetic cards, with a seed the
training never used) or read from archived runs the training did not read -- never the
training runs. The signal sample is the card's first signal process. The source records where
the events come from (``ModelSource.validation``), which the build report names.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hotline.errors import FirmwareError
from hotline.firmware.convert import BuildConfig
from hotline.firmware.emulation import calibrate_thresholds
from hotline.firmware.validation_set import HELDOUT_SEED_OFFSET, heldout_runs, validation_set

log = logging.getLogger(__name__)



def _card_thresholds(card: dict[str, Any], p_values: tuple[float, ...]) -> dict[float, float]:
    out = {}
    for t in card.get("thresholds", []):
        for p in p_values:
            if np.isclose(float(t["p"]), p, rtol=1e-9, atol=0):
                out[float(p)] = float(t["threshold"])
    return out


def heldout_sample(card: dict[str, Any], n: int, seed_offset: int, process: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Raw features and object mask of ``n`` events of the card's background (or ``process``)."""
    from hotline.detectors.spec import FeatureSpec
    from hotline.stream.samples import load_sample

    tr = card.get("training") or {}
    spec = FeatureSpec.from_dict(card["feature_spec"])
    data: dict[str, Any] = {"source": tr.get("source") or "synthetic"}
    proc = process or tr.get("background")
    if not proc:
        raise FirmwareError(f"model card of {card.get('name')} names no background process "
                            "(training.background); cannot draw a held-out sample")
    if data["source"] != "synthetic":  # archived runs the training did not read, never its own
        from hotline.stream.samples import SAMPLES_DIR

        data["archive"] = str(SAMPLES_DIR)
        runs = heldout_runs(card, proc, data["archive"])
        if not runs:
            raise FirmwareError(f"no held-out runs of '{proc}' in sample archive "
                                f"{data['archive']} to draw {n} reference events from")
        data["runs"] = {proc: runs}
    seed = int(tr.get("seed", 1)) + seed_offset
    fm = load_sample(proc, data, n, seed, spec)
    return fm.x[:n], fm.mask[:n]


def registered_source(name: str, version: str, cfg: BuildConfig, registry: str | None = None,
                      sample: tuple[np.ndarray, np.ndarray] | None = None,
                      signal: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """A :class:`firmware.build.ModelSource` for a registered model its kind lets convert."""
    from hotline.firmware.source import ModelSource
    from hotline.models.nets import torch_model
    from hotline.models.normalise import Normaliser
    from hotline.models.registry import load_model
    from hotline.models.scorer import Scorer

    model = load_model(name, version, registry)
    card = model.card
    plan = model.model_kind.firmware_plan(card)
    if plan.refused is not None or plan.score_net is None:
        raise FirmwareError(f"model {name} v{model.version} {plan.refused}")
    net = torch_model(model)
    norm = Normaliser.from_dict(card["normalisation"])
    spec = model.feature_spec()
    f, o = spec.n_features, spec.n_objects
    scorer = Scorer(model)
    v = cfg.validation
    provenance: dict[str, Any] = {"source": "given by the caller"}
    if sample is None:
        vs = validation_set(model, v.n_events, v.n_signal if signal is None else 0)
        sample, provenance = vs.background, vs.provenance
        if signal is None:
            signal = vs.signal
    note = f"registered model {name} v{model.version} ({model.kind})"
    score_net = plan.score_net(net, (f,), plan.masked)
    shape: Any = [(f,), (f,)] if plan.masked else (f,)

    def fw_inputs(x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        xn = norm.transform(x, mask)
        fmask = np.repeat(mask.astype(np.float32), f // o, axis=1)
        return [xn, fmask] if plan.masked else [xn]

    def serve(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        res = scorer.score_arrays(x, mask)
        return res.extra.get(plan.serving_score, res.total)

    card_score = str(card.get("score", "recon")) == plan.serving_score
    thresholds = _card_thresholds(card, v.p_values) if card_score else {}
    menu = ({float(t["p"]): float(t["threshold"]) for t in card.get("thresholds", [])}
            if card_score else {})
    if not thresholds:
        n_ref = max(20000, int(10 / min(v.p_values)))
        ref = heldout_sample(card, n_ref, HELDOUT_SEED_OFFSET + 2)
        thresholds = calibrate_thresholds(serve(*ref), v.p_values)
        note += f"; thresholds calibrated here on {len(ref[0])} background events"
    else:
        missing = [p for p in v.p_values if p not in thresholds]
        if missing:
            note += f"; card has no threshold for p = {', '.join(f'{p:g}' for p in missing)}"
    return ModelSource(name, model.version, model.kind, score_net, shape, thresholds,
                       tuple(sample), tuple(signal) if signal is not None else None,
                       serving_scores=serve, firmware_inputs=fw_inputs,
                       onnx=str(model.onnx_path), note=note, validation=provenance,
                       menu_thresholds=menu or dict(thresholds), card=card,
                       serving_score_name=plan.serving_score)
