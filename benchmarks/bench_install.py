"""Install footprint and start-up: the base install vs ``[all]``, and ``hotline --help``.

Builds the wheel from a copy of the source tree, installs it into two clean virtual
environments with uv (base, and ``[all]``), and prints the installed size of each (every
file under the venv, hard links counted as real files) with the ratio against the limit
(base <= 25 % of ``[all]``), then the wall time of ``hotline --help`` in the base install
(limit 0.5 s; best and median of 7) and which heavy packages it imported (none allowed).

    python -m benchmarks.bench_install
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import header, save

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
SIZE_LIMIT = 0.25
HELP_LIMIT_S = 0.5


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "builds", "results",
        "tests", ".*_cache"))
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True)
    return next((tmp / "dist").glob("hotline-*.whl"))


def _venv(path: Path, requirement: str) -> Path:
    subprocess.run([str(UV), "venv", "-q", "-p", sys.executable, str(path)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(path / "bin" / "python"),
                    requirement], check=True)
    return path


def _size_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 1e6


def main(argv: list[str] | None = None) -> int:
    header("install footprint and CLI start-up")
    with tempfile.TemporaryDirectory(prefix="hotline-bench-install-") as d:
        tmp = Path(d)
        wheel = _build_wheel(tmp)
        base = _venv(tmp / "base", str(wheel))
        full = _venv(tmp / "all", f"{wheel}[all]")
        base_mb, all_mb = _size_mb(base), _size_mb(full)
        ratio = base_mb / all_mb
        print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB")
        print(f"installed size, base install : {base_mb:9,.0f} MB")
        print(f"installed size, [all]        : {all_mb:9,.0f} MB")
        print(f"base / [all]                 : {ratio:9.1%}   (limit {SIZE_LIMIT:.0%}: "
              f"{'met' if ratio <= SIZE_LIMIT else 'NOT met'})")
        hotline = str(base / "bin" / "hotline")
        subprocess.run([hotline, "--help"], check=True, capture_output=True)  # warm the cache
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            subprocess.run([hotline, "--help"], check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        probe = subprocess.run(
            [str(base / "bin" / "python"), "-c",
             "import sys; from hotline.cli import build_parser; build_parser().format_help(); "
             "print(','.join(m for m in ('torch', 'onnxruntime', 'panel', 'faust', 'numpy') "
             "if m in sys.modules) or 'none')"],
            check=True, capture_output=True, text=True).stdout.strip()
        best, median = min(times), statistics.median(times)
        print(f"hotline --help (base install): best {best:.3f} s, median {median:.3f} s "
              f"(limit {HELP_LIMIT_S} s: {'met' if median < HELP_LIMIT_S else 'NOT met'}); "
              f"heavy packages imported: {probe}")
    path = save("install", {"base_mb": base_mb, "all_mb": all_mb, "ratio": ratio,
                            "help_best_s": best, "help_median_s": median,
                            "help_imports": probe})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
