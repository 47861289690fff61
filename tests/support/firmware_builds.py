"""Real firmware builds of ``ae_default`` for the integration tests (hls4ml + g++, ~30 s each),
made once per session by the fixtures of ``tests/integration/conftest.py`` and shared by the
firmware-in-the-loop tests and the dashboard's browser test of the L1 agreement view.

* ``shipped_build`` - ``hotline firmware build ae_default`` with an empty sample cache and
  state folder (a fresh clone), as the README runs it; (build folder, its stdout).
* ``narrow_build`` - ae_default deployed with ``ap_fixed<16,2>``: two integer bits saturate
  its inputs (the deliberately mis-quantised build the divergence alarm must catch).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path


def shipped_build(root: Path) -> tuple[Path, str]:
    """``hotline firmware build ae_default --events 4000`` into ``root``, with an empty sample
    cache and state folder; (the build folder, the command's stdout)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "empty-cache"),
           "XDG_STATE_HOME": str(root / "state")}
    (root / "empty-cache").mkdir(parents=True, exist_ok=True)
    hotline = Path(sys.executable).with_name("hotline")
    proc = subprocess.run([str(hotline), "firmware", "build", "ae_default", "--out",
                           str(root / "builds"), "--events", "4000"], env=env, text=True,
                          capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # no sample was generated or read from the (empty) sample cache
    assert not (root / "empty-cache" / "hotline" / "samples").exists()
    from hotline.models.registry import load_model

    version = load_model("ae_default").version
    return root / "builds" / "ae_default" / version, proc.stdout


def narrow_build(out: Path) -> Path:
    """ae_default built into ``out`` with ``ap_fixed<16,2,RND,SAT>`` inputs and weights."""
    from hotline.firmware.build import build, resolve_model
    from hotline.firmware.convert import load_build_config

    cfg = load_build_config(model="ae_default")
    cfg = replace(cfg, precision=replace(cfg.precision, input="ap_fixed<16,2,RND,SAT>",
                                         default="ap_fixed<16,2,RND,SAT>"),
                  validation=replace(cfg.validation, n_events=2000, n_signal=0))
    build(resolve_model("ae_default", cfg), cfg, out, check=False)
    return out
