"""Anomaly models: torch definitions, ONNX export, the onnxruntime scorer, thresholds, registry."""

__all__: list[str] = []
