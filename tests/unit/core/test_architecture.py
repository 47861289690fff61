"""The package's shape as a checked contract: layers (import-linter), no import cycles,
serving without torch, a fast ``hotline --help``, truthful package docstrings."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[3]


def test_import_contracts_hold():
    """Layers (cli > dashboard > training | firmware > stream > alerts > models > detectors >
    core) and 'serving needs no torch', as declared in pyproject.toml."""
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycles():
    """No circle of modules, not even through function-local imports."""
    graph = grimp.build_graph("hotline")
    assert len(graph.modules) > 80  # the whole package tree was seen (hotline/<part> links)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        g.add_module(m)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.a")
    g.add_import(importer="p.c", imported="p.a")
    assert _cycles(g) == [["p.a", "p.b"]]


def test_cli_help_and_serving_import_no_heavy_packages():
    code = (
        "import sys\n"
        "from hotline.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'panel', 'faust', 'hls4ml', 'awkward')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import hotline.stream.pipeline, hotline.stream.dqm_pipeline, hotline.alerts.ae_rule\n"
        "import hotline.stream.sink, hotline.models.scorer\n"
        "assert 'torch' not in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr


def _packages() -> list[Path]:
    """Every package folder of ``hotline`` (following the hotline/<part> links)."""
    return sorted(Path(d) for d, _, files in os.walk(REPO / "hotline", followlinks=True)
                  if "__init__.py" in files)


def _modules_of(package_dir: Path) -> set[str]:
    return {p.stem for p in package_dir.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in package_dir.iterdir() if (p / "__init__.py").is_file()}


def test_package_docstrings_list_their_modules():
    """Each package's ``__init__`` docstring names every module it holds, and no other."""
    problems = []
    for pkg in _packages():
        doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text())) or ""
        mods = _modules_of(pkg)
        missing = sorted(m for m in mods if not re.search(rf"``(?:[\w.]+\.)?{m}(?:``|\.)", doc))
        if missing:
            problems.append(f"{pkg.name}/__init__.py docstring does not name {missing}")
        short = pkg.name if pkg.name != "hotline" else "hotline"
        named = set(re.findall(rf"``(?:hotline\.)?{short}\.(\w+)", doc))
        if named - mods:
            problems.append(f"{pkg.name}/__init__.py names missing modules {named - mods}")
    assert not problems, "\n".join(problems)


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {".".join(("hotline", *p.relative_to(REPO / "hotline").parts)) for p in _packages()}
    assert listed == found
    for part in ("stream", "detectors", "models", "training", "alerts", "dashboard",
                 "firmware", "data"):
        link = REPO / "hotline" / part
        assert link.is_symlink() and link.resolve() == (REPO / part).resolve()
