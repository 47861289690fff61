"""The L1 menu of a firmware build: seeds in fixed-point score units plus the emulation library.

:func:`write_l1_menu` runs at the end of ``firmware.build.build``: it copies the g++ build of
the hls4ml C++ (``hls/firmware/<project>-*.so``) to ``<build>/l1/emulation-<sha12>.so`` and
writes ``<build>/l1_menu.json`` (``models.l1_emulator.L1Menu``): each calibrated p-value of
the card (AXOL1TL-style VLoose..VTight) with its threshold in score LSBs of the firmware's
score type, the library's sha256 and the hash of the card it was built for. The stream opens
it with ``models.l1_emulator.L1Emulator`` (no hls4ml, no torch).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from hotline.errors import FirmwareError
from hotline.firmware.convert import parse_fixed
from hotline.models.l1_emulator import (
    LIBRARY_DIR,
    L1Menu,
    card_hash,
    file_sha256,
    make_seeds,
)


def _score_type(conv: Any) -> tuple[str, int, int]:
    """(type string, width, integer bits) of the compiled model's score output."""
    try:
        prec = conv.hls_model.get_output_variables()[0].type.precision
        width, integer = int(prec.width), int(prec.integer)
        return str(prec.definition_cpp()), width, integer
    except Exception:  # noqa: BLE001 - fall back to the configured score precision
        t = conv.config.precision.score
        width, integer = parse_fixed(t)
        return t, width, integer


def compiled_library(hls_dir: str | Path) -> Path:
    """The newest g++ emulation library of an hls4ml project folder."""
    libs = sorted(Path(hls_dir, "firmware").glob("*.so"), key=lambda p: p.stat().st_mtime)
    if not libs:
        raise FirmwareError(f"{hls_dir}/firmware holds no compiled emulation library (*.so)")
    return libs[-1]


def write_l1_menu(source: Any, conv: Any, out: str | Path) -> L1Menu:
    """Copy the emulation library beside the project and write the build's L1 menu."""
    if source.card is None:
        raise FirmwareError(f"{source.name}: an L1 menu needs a registered model card")
    out = Path(out)
    lib = compiled_library(conv.output_dir)
    digest = file_sha256(lib)
    libdir = out / LIBRARY_DIR
    if libdir.exists():
        shutil.rmtree(libdir)
    libdir.mkdir(parents=True)
    target = libdir / f"emulation-{digest[:12]}.so"
    shutil.copyfile(lib, target)
    stype, width, integer = _score_type(conv)
    frac = width - integer
    chash = card_hash(source.card)
    plan_masked = isinstance(source.input_shape, list) and len(source.input_shape) == 2
    import hashlib

    build_id = hashlib.sha256(f"{digest}\x1f{chash}\x1f{stype}".encode()).hexdigest()[:12]
    cfg = conv.config
    menu = L1Menu(
        model=source.name, version=str(source.version), build=build_id, card_hash=chash,
        library=str(target.relative_to(out)), library_sha256=digest,
        project=str(conv.hls_model.config.get_project_name()), score_type=stype,
        frac_bits=frac, n_features=int(source.card["architecture"].get("n_inputs", 57))
        if source.card.get("architecture") else 57,
        masked=plan_masked, serving_score=source.serving_score_name,
        seeds=make_seeds(source.menu_thresholds or source.thresholds, frac),
        precision={"input": cfg.precision.input, "default": cfg.precision.default,
                   "accum": cfg.precision.accum, "score": cfg.precision.score},
        created=time.time())
    menu.write(out)
    return menu
