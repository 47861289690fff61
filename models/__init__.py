"""Anomaly models: torch definitions, ONNX export, the onnxruntime scorer, thresholds, registry.

- ``models.nets``: the dense AE family (ADC2021 baseline + tanh / LeakyReLU+BN / ELU+BN
  variants) and the VAE (recon / KL / mu^2 scores); ``build_model(card["architecture"])``.
- ``models.export``: the ONNX scoring graph (normalisation + loss decomposition baked in).
- ``models.scorer``: ``Scorer`` -- onnxruntime on batches -> ``ScoreResult`` (total,
  per-feature, per-object, per-type), p-values and thresholds from the card.
- ``models.thresholds``: calibration (empirical, generalised-Pareto tail, refusals).
- ``models.registry``: ``models/registry/<name>/<version>/{model.onnx, card.json, weights.pt}``.

Nothing is imported here (torch and onnxruntime load only when used).
"""

__all__ = ["export", "nets", "registry", "scorer", "thresholds"]
