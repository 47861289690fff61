"""The Hotline error hierarchy.

Every error a user can cause (bad file, bad configuration, unreachable broker,
wrong model) is a ``HotlineError`` subclass whose message says what failed,
because of what, and where. The CLI prints these as one line and exits 2;
anything else is a bug and propagates with its traceback.
"""

from __future__ import annotations


class HotlineError(Exception):
    """Base class of all user-facing Hotline errors."""


class ConfigError(HotlineError, ValueError):
    """Invalid or inconsistent configuration (file, environment or CLI option)."""


class SourceError(HotlineError, OSError):
    """An input (ROOT/HDF5 file, archive, run) cannot be read or is malformed."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:  # OSError.__str__ would prefix errno
        return self.args[0] if self.args else ""


class MissingBranchError(SourceError, KeyError):
    """A branch the feature spec or a rule needs is absent from a file."""

    def __str__(self) -> str:  # KeyError.__str__ would quote the message
        return self.args[0] if self.args else ""


class ModelError(HotlineError, ValueError):
    """A model, model card or scorer input is invalid."""


class StreamError(HotlineError, RuntimeError):
    """A streaming component (Kafka, faust, codecs) failed."""


class StoreError(HotlineError, RuntimeError):
    """The alert store cannot be opened, written or queried."""


class FirmwareError(HotlineError, RuntimeError):
    """hls4ml conversion, emulation or synthesis failed or disagrees with serving."""
