"""Hotline: real-time trigger and data-quality monitoring for particle-physics detectors.

The one import package. Its core layer, which every other layer may use:

- ``hotline.config``: the typed, frozen configuration and where bundled data and user state live.
- ``hotline.errors``: the error hierarchy rooted at ``HotlineError``.
- ``hotline.registry``: ``Registry``, behind every ``register_x`` / ``get_x`` / ``available_x``.
- ``hotline.backoff``: the exponential backoff schedule of every retry loop.
- ``hotline.extras``: which optional extra brings which package, and the one-line error.
- ``hotline.wire``: numpy arrays in JSON records as base64, checked when read back.

The layers above it, bottom to top (imports only go downwards; see docs/architecture.md):
``hotline.data`` (the bundled demo archive), ``hotline.detectors``, ``hotline.models``,
``hotline.alerts``, ``hotline.stream``, ``hotline.training`` and ``hotline.firmware``,
``hotline.dashboard``, and ``hotline.cli`` (the ``hotline`` command).
"""

from hotline.errors import (
    ConfigError,
    FirmwareError,
    HotlineError,
    ModelError,
    SourceError,
    StoreError,
    StreamError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "FirmwareError",
    "HotlineError",
    "ModelError",
    "SourceError",
    "StoreError",
    "StreamError",
    "__version__",
]
