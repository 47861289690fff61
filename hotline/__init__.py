"""Hotline: real-time trigger and data-quality monitoring for particle-physics detectors.

This package holds the command line (``hotline.cli``), the typed configuration
(``hotline.config``) and the error hierarchy (``hotline.errors``): thin glue that
wires ``stream``, ``detectors``, ``models``, ``training``, ``alerts``, ``dashboard``
and ``firmware`` together.
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
