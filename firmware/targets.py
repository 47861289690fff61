"""Registry of firmware targets: the FPGA parts Hotline builds L1 firmware for.

A target names a part, the hls4ml backend that writes its project, the LHC-era
system it sits in, and the part's resource totals (used to express the
resource estimates of :mod:`firmware.resources` as a fraction of the device).
``register_target`` / ``get_target`` / ``available_targets`` (a
:class:`hotline.registry.Registry`; a duplicate name is refused); the built-in
parts are loaded on first use, or explicitly by :func:`register_builtins`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.errors import FirmwareError
from hotline.registry import Registry


@dataclass(frozen=True)
class FirmwareTarget:
    """One FPGA part a firmware build can be made for."""

    name: str
    part: str
    backend: str = "Vitis"
    description: str = ""
    dsp: int = 0  #: DSP slices on the part
    lut: int = 0  #: 6-input LUTs
    ff: int = 0  #: flip-flops
    bram_36k: int = 0  #: 36 kb block RAMs


def _builtin_targets() -> list[tuple[str, FirmwareTarget]]:
    targets = [
        FirmwareTarget("vu13p", "xcvu13p-flga2577-2-e", "Vitis",
                       "CMS Phase-2 L1 Global Trigger / Correlator (Serenity, APx)",
                       dsp=12288, lut=1728000, ff=3456000, bram_36k=2688),
        FirmwareTarget("vu9p", "xcvu9p-flgb2104-2-e", "Vitis",
                       "CMS Phase-2 L1 (Virtex UltraScale+ VU9P boards)",
                       dsp=6840, lut=1182240, ff=2364480, bram_36k=2160),
        FirmwareTarget("ku15p", "xcku15p-ffva1760-2-e", "Vitis",
                       "Kintex UltraScale+ (CMS Phase-2 calorimeter trigger boards)",
                       dsp=1968, lut=522720, ff=1045440, bram_36k=984),
    ]
    return [(t.name, t) for t in targets]


_TARGETS: Registry[FirmwareTarget] = Registry(
    "firmware target", _builtin_targets, error=FirmwareError)


def register_target(target: FirmwareTarget) -> FirmwareTarget:
    """Add a target; refuses a name that is already registered."""
    return _TARGETS.register(target.name, target)


def get_target(name: str) -> FirmwareTarget:
    """The target called ``name`` (built-ins are registered on first use)."""
    return _TARGETS.get(name)


def available_targets() -> list[str]:
    """Names of the registered targets, sorted."""
    return _TARGETS.available()


def register_builtins() -> None:
    """Register the parts used by the CMS Phase-2 L1 trigger (idempotent)."""
    _TARGETS.available()
