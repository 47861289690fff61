"""Processes and event faults defined as TOML: the search path and the loader.

A process (``hotline generate PROCESS``) or a detector fault is data: a TOML file of
``[[process]]`` and ``[[fault]]`` tables makes it usable by ``hotline generate`` (and
``--validate``, ``--list``), ``hotline samples``, ``hotline train`` (the configurations'
``[data.runs]``, signals and faults) and ``hotline attribution`` without code edits.

**Search path** (``search_path``), loaded in this order into the registries of
``training.processes`` and ``detectors.event_faults`` (built-ins first, never hidden):

1. the package's definitions, ``training/process_defs/*.toml`` (``PACKAGE_DIR``);
2. ``[processes] paths`` of the configuration (``HOTLINE_PROCESSES_PATHS``, ``:``-separated);
3. ``--processes FILE`` of the command.

An entry is a file or a folder (its ``*.toml``, sorted). A name or code that is already
registered (a built-in or another file's) is refused in one line naming both; so is any
unknown key, wrong type or bad value, naming the file, the table and the key. A file is
checked whole before anything in it is registered; loading the same file twice is a no-op.

**Schema** (``schema = 1``; see ``docs/examples/processes/zprime_ee.toml``)::

    [[fault]]                    # optional; the keys of detectors.fault_kinds
    name = "muon_endcap_scale"   # kind: scale_pt | lose | rotate_phi | fake_object
    code = 101                   # the ``fault`` branch value (unique, >= 1)
    ...

    [[process]]
    name = "zprime_ee_1tev"      # lower-case identifier, unique
    code = 101                   # the ``sample`` branch value (unique, >= 1; use >= 100)
    description = "..."
    kind = "signal"              # background | signal | fault (default: fault when
                                 # ``fault`` is set, else background for a mixture, else signal)
    truth_type = "electrons"     # the object type the anomaly lives in (singular accepted)
    pythia = ["NewGaugeBoson:ffbar2gmZZprime = on", ...]   # readString lines
    filter = "single_lepton"     # or "none"
    expected_efficiency = 0.8    # first guess of the filter efficiency (batch sizes only)
    # a mixture instead of ``pythia``: components = [{process = "w_lnu", fraction = 0.6},
    # ...], or components_of = "sm_mix" (the components of a registered mixture)
    fault = "muon_endcap_scale"  # optional: a registered or this file's fault
    weighted = false             # with unbiased = [...] and/or max_weight = 1.0
    tags = ["bsm"]
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hotline.config import TomlTable, package_path, read_toml
from hotline.detectors.event_faults import (
    EventFault,
    available_event_faults,
    get_event_fault,
    register_event_fault,
)
from hotline.detectors.fault_kinds import OBJECT_TYPES, check_fault_code, fault_from_table
from hotline.errors import ConfigError
from hotline.training.processes import (
    FILTERS,
    KINDS,
    Process,
    _check,
    available_processes,
    get_process,
    register_process,
)

__all__ = ["OBJECT_TYPES", "PACKAGE_DIR", "SCHEMA", "definition_files", "load_files",
           "load_search_path", "loaded_files", "parse_file", "search_path"]

#: the package's own definition files
PACKAGE_DIR = package_path("hotline.training", "process_defs")
SCHEMA = 1
#: singular / lower-case spellings accepted for a truth type
_TYPE_ALIASES = {"met": "MET", "electron": "electrons", "muon": "muons", "jet": "jets",
                 "photon": "photons", "tau": "taus"}

#: resolved file -> sha256 of its text, for every file loaded in this process
_LOADED: dict[Path, str] = {}


def search_path(configured: Sequence[str] = (), extra: Sequence[str | Path] = ()) -> list[Path]:
    """The package folder, then the configured paths, then ``extra`` (``--processes``)."""
    return [PACKAGE_DIR, *(Path(p).expanduser() for p in configured),
            *(Path(p).expanduser() for p in extra)]


def definition_files(paths: Iterable[Path]) -> list[Path]:
    """The TOML files of ``paths`` (a folder: its ``*.toml``, sorted); the package folder may
    be absent, any other missing entry is a ``ConfigError`` naming it."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(p.glob("*.toml"))
        elif p.is_file():
            out.append(p)
        elif p != PACKAGE_DIR:
            raise ConfigError(f"process definitions {p}: no such file or folder")
    return list(dict.fromkeys(f.resolve() for f in out))


def loaded_files() -> list[Path]:
    """The definition files loaded in this process (spawned generator workers reload them)."""
    return list(_LOADED)


def load_search_path(configured: Sequence[str] = (), extra: Sequence[str | Path] = ()
                     ) -> list[Path]:
    """Load every definition file of the search path; returns the files."""
    files = definition_files(search_path(configured, extra))
    load_files(files)
    return files


def load_files(files: Iterable[Path]) -> None:
    """Register the processes and faults of ``files`` (each checked whole first)."""
    for f in files:
        path = Path(f).resolve()
        text = _read(path)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if _LOADED.get(path) == digest:
            continue
        if path in _LOADED:
            raise ConfigError(f"{path}: changed since it was loaded in this process")
        faults, procs = parse_file(path)
        for fault in faults:
            register_event_fault(fault)
        for proc in procs:
            register_process(proc)
        _LOADED[path] = digest


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"process definitions {path}: cannot read it ({exc.strerror})"
                          ) from None


def _truth_type(t: TomlTable) -> str | None:
    v = t.text("truth_type", None)
    if v is None:
        return None
    v = _TYPE_ALIASES.get(v, _TYPE_ALIASES.get(v.lower(), v))
    if v not in OBJECT_TYPES:
        raise t.error("truth_type", f"must be an object type ({', '.join(OBJECT_TYPES)}), "
                                    f"got {t.data['truth_type']!r}")
    return v


def _defined_where(name: str, what: str) -> str:
    src = (get_process(name).source if what == "process" else get_event_fault(name).source)
    return f"in {src}" if src else "built in"


def parse_file(path: Path) -> tuple[list[EventFault], list[Process]]:
    """The faults and processes ``path`` defines, checked against each other and against
    what is registered (nothing is registered here)."""
    where = str(path)
    top = TomlTable(read_toml(path, "process definitions"), where)
    schema = top.integer("schema", SCHEMA)
    if schema != SCHEMA:
        raise top.error("schema", f"must be {SCHEMA} (this Hotline's format), got {schema}")
    fault_tables = top.tables("fault", [])
    proc_tables = top.tables("process", [])
    top.done()
    if not fault_tables and not proc_tables:
        raise ConfigError(f"{where}: defines nothing (no [[process]] or [[fault]] table)")

    known_faults = {n: get_event_fault(n) for n in available_event_faults()}
    faults: list[EventFault] = []
    for table in fault_tables:
        fault = dataclasses.replace(fault_from_table(table, where), source=where)
        if fault.name in known_faults:
            prev = ("in this file" if any(f.name == fault.name for f in faults)
                    else _defined_where(fault.name, "fault"))
            raise ConfigError(f"{where}: fault '{fault.name}': key 'name': already defined "
                              f"{prev}")
        check_fault_code(fault, known_faults, where)
        known_faults[fault.name] = fault
        faults.append(fault)

    known = {n: get_process(n) for n in available_processes()}
    procs: list[Process] = []
    for table in proc_tables:
        proc = _process(table, where, known, known_faults)
        if proc.name in known:
            prev = ("in this file" if proc.name in (p.name for p in procs)
                    else _defined_where(proc.name, "process"))
            raise ConfigError(f"{where}: process '{proc.name}': key 'name': already defined "
                              f"{prev}")
        try:
            _check(proc, known)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        known[proc.name] = proc
        procs.append(proc)
    return faults, procs


def _process(data: Any, where: str, known: Mapping[str, Process],
             faults: Mapping[str, EventFault]) -> Process:
    name = data.get("name") if isinstance(data, Mapping) else None
    t = TomlTable(data, f"{where}: process '{name}'" if isinstance(name, str)
                  else f"{where}: [[process]]")
    name = t.text("name")
    if not name.isidentifier() or name != name.lower():
        raise t.error("name", f"must be a lower-case identifier (a-z, 0-9, _), got {name!r}")
    code = t.integer("code", least=1)
    if code > 2**31 - 1:
        raise t.error("code", f"must fit the int32 'sample' branch, got {code}")
    description = t.text("description")
    fault = t.text("fault", None)
    if fault is not None and fault not in faults:
        raise t.error("fault", f"names an unknown fault '{fault}'; available: "
                               f"{', '.join(sorted(faults))}")
    pythia = t.texts("pythia", ())
    bad = [line for line in pythia if "=" not in line]
    if bad:
        raise t.error("pythia", f"holds '{bad[0]}', not a 'Key = value' setting")
    components = _components(t, known)
    kind = t.choice("kind", KINDS,
                    "fault" if fault else "background" if components else "signal")
    truth = _truth_type(t)
    if bool(pythia) == bool(components):
        raise ConfigError(f"{t.where}: give either 'pythia' settings or mixture 'components' "
                          "(or 'components_of'), not both and not neither")
    weighted = t.flag("weighted", False)
    unbiased = t.texts("unbiased", ())
    max_weight = t.number("max_weight", None)
    if (unbiased or max_weight is not None) and not weighted:
        raise t.error("unbiased" if unbiased else "max_weight", "needs weighted = true")
    eff = t.number("expected_efficiency", 0.3)
    if not 0 < eff <= 1:
        raise t.error("expected_efficiency", f"must be in (0, 1], got {eff:g}")
    proc = Process(
        name, code, description, pythia=pythia, filter=t.choice("filter", FILTERS,
                                                                  "single_lepton"),
        fault=fault, components=components, weighted=weighted, unbiased=unbiased,
        max_weight=max_weight, expected_efficiency=eff, kind=kind,
        tags=t.texts("tags", ()), truth_type=truth, source=where)
    t.done()
    return proc


def _components(t: TomlTable, known: Mapping[str, Process]) -> tuple[tuple[str, float], ...]:
    of = t.text("components_of", None)
    tables = t.tables("components", None)
    if of is not None and tables is not None:
        raise t.error("components_of", "and 'components' exclude each other")
    if of is not None:
        if of not in known or not known[of].components:
            mixes = sorted(n for n, p in known.items() if p.components)
            raise t.error("components_of", f"names '{of}', not a registered mixture; "
                                           f"available: {', '.join(mixes)}")
        return known[of].components
    out: list[tuple[str, float]] = []
    for i, c in enumerate(tables or []):
        ct = TomlTable(c, f"{t.where}: components[{i}]")
        proc, frac = ct.text("process"), ct.number("fraction")
        ct.done()
        if proc not in known:
            raise ct.error("process", f"names an unknown process '{proc}'")
        if known[proc].components:
            raise ct.error("process", f"'{proc}' is a mixture; components must be single "
                                      "processes")
        if not frac > 0:
            raise ct.error("fraction", f"must be > 0, got {frac:g}")
        out.append((proc, frac))
    return tuple(out)
