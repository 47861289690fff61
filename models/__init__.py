"""Anomaly models: the model-kind registry, torch definitions, ONNX export, the onnxruntime
scorers, thresholds, the model registry.

- ``models.kinds``: the registry of model kinds (``ae``, ``vae``, ``ensemble``, ``conv-ae``);
  each registers its build, export, score and firmware handlers by lazy reference.
- ``models.interface``: the scorer interface every kind's serving scorer implements
  (total score, contributions, p-values, thresholds).
- ``models.nets`` (torch): the dense AE family (ADC2021 baseline + tanh / LeakyReLU+BN /
  ELU+BN variants), the VAE (recon / KL / mu^2 scores) and seed ensembles;
  ``build_model(card["architecture"])``, ``torch_model(registered_model)``.
- ``models.export`` (torch): the ONNX scoring graph of the event kinds (normalisation +
  loss decomposition baked in).
- ``models.scorer``: ``Scorer`` -- onnxruntime on batches of events -> ``ScoreResult``
  (total, per-feature, per-object, per-type), p-values and thresholds from the card.
- ``models.conv_ae`` / ``models.conv_ae_net`` (torch): the DQM conv-AE's scorer of
  occupancy maps and its network.
- ``models.occupancy_statistics``: the calibration of an occupancy model per
  events-per-lumisection (thresholds and p-values per level, interpolated in log n; the
  calibrated range).
- ``models.normalise``: feature normalisation schemes (fitted on training data, stored in
  the card, the same arithmetic as the ONNX graph).
- ``models.weights``: physical event weights (genWeight per sample component, Kish size).
- ``models.thresholds``: calibration (empirical, generalised-Pareto tail, refusals).
- ``models.type_evidence``: per-type calibrated evidence -- background p-values of each
  object type's loss (and pT sum), their Sidak / Fisher combination (the ``types_*``
  scores) and the attribution ``explained_by`` they give.
- ``models.registry``: ``models/registry/<name>/<version>/{model.onnx, card.json, weights.pt}``.
- ``models.l1_emulator``: a firmware build's L1 menu (seeds in fixed-point score units, tied
  to the card by hash) and its compiled emulation loaded with ctypes (no hls4ml, no torch).

Nothing is imported here; serving modules (kinds, interface, registry, scorer, conv_ae,
occupancy_statistics, normalise, thresholds, type_evidence, l1_emulator) never import torch
(the import-linter contract in pyproject.toml).
"""

__all__ = ["conv_ae", "conv_ae_net", "export", "interface", "kinds", "l1_emulator", "nets",
           "normalise", "occupancy_statistics", "registry", "scorer", "thresholds",
           "type_evidence", "weights"]
