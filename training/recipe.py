"""The sample recipe (``training/samples.toml``): which generated runs exist, how to make them,
and whether the sample cache holds them as the recipe says.

A recipe is data: one :class:`RecipeEntry` per run (process or mixture, events, seed, chunking,
events per lumisection, detector fault and size, data-like or weighted, the configurations
that read it). ``load_recipe`` parses and checks it (unique names and run numbers, known
processes, the declared fault and weighting agree with the process definition);
``recipe_hash`` / ``entries_hash`` fingerprint it for model cards.

``run_status(entry, archive)`` compares a run folder with its entry through the run's own
``run.json`` (the identity ``training.generate`` records: process, events, seed, chunking,
MPI, pileup, fault size, the hash of the process's Pythia settings, the fast-simulation
parameters) and its chunks on disk: ``complete``, ``partial`` (a killed make; resumes),
``missing`` or ``differs`` (made with other parameters: reported, never reused or
overwritten). ``make(entries, archive)`` builds the missing and partial runs with
``training.generate.generate`` (chunk-level resume), reporting progress and the time left.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotline.config import package_path, read_toml
from hotline.errors import ConfigError, SourceError

#: the recipe shipped with the package
DEFAULT_RECIPE = package_path("hotline.training", "samples.toml")

SAMPLE_KINDS = ("weighted", "data-like")
_KEYS = {"name", "run", "process", "events", "seed", "chunk_size", "events_per_lumi", "fault",
         "fault_size", "sample", "used_by", "purpose", "provenance", "mpi", "pileup"}
_REQUIRED = ("name", "run", "process", "events", "seed")


@dataclass(frozen=True)
class RecipeEntry:
    """One run of the recipe (see ``training/samples.toml`` for the meaning of each field)."""

    name: str
    run: int
    process: str
    events: int
    seed: int
    chunk_size: int = 2000
    events_per_lumi: int = 1000
    fault: str = "none"
    fault_size: float | None = None
    sample: str = "data-like"
    mpi: bool = False
    pileup: float = 0.0
    used_by: tuple[str, ...] = ()
    purpose: str = ""
    provenance: str = ""

    @property
    def folder(self) -> str:
        return f"run_{self.run:06d}"

    @property
    def data_like(self) -> str:
        """The ``GenerateRequest.data_like`` method: "auto" when a data-like entry's process
        has weighted components (they are unweighted), else "" (nothing to do)."""
        from hotline.training.processes import get_process

        if self.sample != "data-like" or not get_process(self.process).has_weights:
            return ""
        return "auto"

    def generation(self) -> dict[str, Any]:
        """The parameters that make the events (what must match on disk; no notes)."""
        out = {"run": self.run, "process": self.process, "events": self.events,
               "seed": self.seed, "chunk_size": self.chunk_size,
               "events_per_lumi": self.events_per_lumi, "mpi": self.mpi,
               "pileup": self.pileup, "fault_size": self.fault_size}
        if self.data_like:  # only then: the hashes of the other entries stay as they were
            out["data_like"] = self.data_like
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["used_by"] = list(self.used_by)
        return d

    def request(self, archive: str | Path) -> Any:
        """The ``training.generate.GenerateRequest`` that builds this run under ``archive``."""
        from hotline.training.generate import GenerateRequest

        return GenerateRequest(self.process, self.events, self.seed,
                               Path(archive).expanduser() / self.folder,
                               chunk_size=self.chunk_size, events_per_lumi=self.events_per_lumi,
                               mpi=self.mpi, pileup=self.pileup, fault_size=self.fault_size,
                               data_like=self.data_like)

    def command(self) -> str:
        """The equivalent ``hotline generate`` command (as run cards record it)."""
        from hotline.training.generate import data_like_option

        return (f"hotline generate {self.process} --events {self.events} --seed {self.seed} "
                f"--out ARCHIVE/{self.folder} --chunk-size {self.chunk_size} "
                f"--events-per-lumi {self.events_per_lumi}"
                + (" --mpi" if self.mpi else "")
                + (f" --pileup {self.pileup}" if self.pileup else "")
                + (f" --fault-size {self.fault_size!r}" if self.fault_size is not None else "")
                + data_like_option(self.data_like))


@dataclass(frozen=True)
class Recipe:
    """The parsed recipe: entries by run number, plus where it came from."""

    entries: tuple[RecipeEntry, ...]
    source: str = ""

    def by_run(self) -> dict[int, RecipeEntry]:
        return {e.run: e for e in self.entries}

    def get(self, run: int) -> RecipeEntry | None:
        return self.by_run().get(int(run))

    def select(self, only: Sequence[str | int] = ()) -> list[RecipeEntry]:
        """Entries matching any of ``only`` (entry name, run number, process, or a
        configuration in ``used_by``); all entries when ``only`` is empty."""
        if not only:
            return list(self.entries)
        chosen: dict[int, RecipeEntry] = {}
        for token in only:
            t = str(token).strip()
            hits = [e for e in self.entries
                    if t in (e.name, e.process, str(e.run), e.folder) or t in e.used_by]
            if not hits:
                names = ", ".join(e.name for e in self.entries)
                users = sorted({u for e in self.entries for u in e.used_by})
                raise ConfigError(f"recipe {self.source}: nothing matches '{t}' (give a run "
                                  f"name, number, process or configuration; names: {names}; "
                                  f"configurations: {', '.join(users)})")
            for e in hits:
                chosen[e.run] = e
        return [chosen[r] for r in sorted(chosen)]

    def hash(self) -> str:
        return entries_hash(self.entries)


def entries_hash(entries: Iterable[RecipeEntry]) -> str:
    """12 hex characters of sha256 over the generation parameters of ``entries`` (sorted by
    run; names, purposes and ``used_by`` do not count: they do not change the events)."""
    payload = [e.generation() for e in sorted(entries, key=lambda e: e.run)]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def recipe_hash(recipe: Recipe) -> str:
    return recipe.hash()


def _entry(raw: dict[str, Any], where: str) -> RecipeEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a [[run]] entry must be a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(_KEYS))})")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    try:
        entry = RecipeEntry(
            name=str(raw["name"]), run=int(raw["run"]), process=str(raw["process"]),
            events=int(raw["events"]), seed=int(raw["seed"]),
            chunk_size=int(raw.get("chunk_size", 2000)),
            events_per_lumi=int(raw.get("events_per_lumi", 1000)),
            fault=str(raw.get("fault", "none")),
            fault_size=None if raw.get("fault_size") is None else float(raw["fault_size"]),
            sample=str(raw.get("sample", "data-like")), mpi=bool(raw.get("mpi", False)),
            pileup=float(raw.get("pileup", 0.0)),
            used_by=tuple(str(u) for u in raw.get("used_by", ())),
            purpose=str(raw.get("purpose", "")), provenance=str(raw.get("provenance", "")))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if entry.run < 1 or entry.events < 1 or entry.chunk_size < 1 or entry.events_per_lumi < 1:
        raise ConfigError(f"{where}: run, events, chunk_size and events_per_lumi must be >= 1")
    if entry.sample not in SAMPLE_KINDS:
        raise ConfigError(f"{where}: sample = '{entry.sample}'; one of {', '.join(SAMPLE_KINDS)}")
    return entry


def check_entry(entry: RecipeEntry, where: str = "") -> None:
    """``ConfigError`` when ``entry`` disagrees with its process definition (unknown process,
    another fault, a fault size the fault refuses, "weighted" for a process without weights,
    "data-like" for a weighted process that cannot be unweighted)."""
    from hotline.training.processes import get_process

    where = where or f"recipe entry '{entry.name}'"
    proc = get_process(entry.process)
    if (proc.fault or "none") != entry.fault:
        raise ConfigError(f"{where}: fault = '{entry.fault}' but process '{entry.process}' has "
                          f"fault '{proc.fault or 'none'}'")
    if entry.sample == "weighted" and not proc.has_weights:
        raise ConfigError(f"{where}: sample = 'weighted' but process '{entry.process}' has no "
                          "event weights (every genWeight is 1: use sample = 'data-like')")
    try:
        entry.request(Path("/nonexistent")).check_data_like()
    except ConfigError as exc:
        raise ConfigError(f"{where}: sample = 'data-like': {exc}") from exc
    if entry.fault_size is not None:
        entry.request(Path("/nonexistent")).check_fault_size()


def load_recipe(path: str | Path | None = None, check: bool = True) -> Recipe:
    """Parse the recipe at ``path`` (default: the shipped ``training/samples.toml``)."""
    src = Path(path) if path is not None else DEFAULT_RECIPE
    raw = read_toml(src, "sample recipe")
    extra = set(raw) - {"schema", "run"}
    if extra:
        raise ConfigError(f"sample recipe {src}: unknown keys {', '.join(sorted(extra))} "
                          "(known: schema, run)")
    if int(raw.get("schema", 1)) != 1:
        raise ConfigError(f"sample recipe {src}: schema {raw.get('schema')} (this version "
                          "reads schema 1)")
    runs = raw.get("run", [])
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"sample recipe {src}: no [[run]] entries")
    entries = [_entry(r, f"sample recipe {src}, [[run]] #{i + 1}") for i, r in enumerate(runs)]
    for key in ("name", "run"):
        seen: dict[Any, int] = {}
        for e in entries:
            v = getattr(e, key)
            if v in seen:
                raise ConfigError(f"sample recipe {src}: {key} {v!r} appears twice")
            seen[v] = 1
    if check:
        # the shipped recipe names processes of the package's definition files (the battery)
        from hotline.training.process_files import PACKAGE_DIR, definition_files, load_files

        load_files(definition_files([PACKAGE_DIR]))
        for e in entries:
            check_entry(e, f"sample recipe {src}, run {e.run} ({e.name})")
    return Recipe(tuple(sorted(entries, key=lambda e: e.run)), str(src))


# --------------------------------------------------------------------------- state on disk


@dataclass
class RunStatus:
    """How a run folder compares with its recipe entry."""

    entry: RecipeEntry
    state: str  #: complete | partial | missing | differs
    events_on_disk: int = 0
    chunks_on_disk: int = 0
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        if self.state == "differs":
            return "; ".join(f"{k}: {a!r} on disk, {b!r} in the recipe"
                             for k, (a, b) in self.differences.items())
        if self.state == "partial":
            n = self.entry.request(Path(".")).n_chunks()
            return f"{self.chunks_on_disk}/{n} chunks ({self.events_on_disk:,} events)"
        return ""


def run_status(entry: RecipeEntry, archive: str | Path, params: Any = None) -> RunStatus:
    """Compare ``ARCHIVE/run_<run>`` with ``entry`` (see the module docstring)."""
    from hotline.detectors.fastsim import FastSimParams
    from hotline.training.generate import pending_chunks

    req = entry.request(archive)
    card_path = req.out / "run.json"
    if not card_path.is_file():
        has_files = req.out.is_dir() and any(req.out.glob("*.root"))
        if has_files:  # ROOT files without a card: not something make wrote
            return RunStatus(entry, "differs",
                             differences={"run.json": ("absent (files of unknown origin)",
                                                       "expected")})
        return RunStatus(entry, "missing")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return RunStatus(entry, "differs", differences={"run.json": (f"unreadable ({exc})",
                                                                     "readable")})
    want = req.resume_identity()
    diff = {k: (card.get(k), v) for k, v in want.items() if card.get(k) != v}
    if card.get("run", entry.run) != entry.run:
        diff["run"] = (card.get("run"), entry.run)
    params = params or FastSimParams.from_toml()
    if "fastsim" in card and card["fastsim"] != params.to_dict():
        diff["fast-simulation parameters"] = ("other values", "detectors/fastsim_params.toml")
    pending = pending_chunks(req)
    done = [k for k in range(req.n_chunks()) if k not in pending]
    n_done = sum(req.chunk_events(k) for k in done)
    if diff:
        return RunStatus(entry, "differs", n_done, len(done), diff)
    state = "complete" if not pending and card.get("complete") else "partial"
    return RunStatus(entry, state, n_done, len(done))


def statuses(entries: Iterable[RecipeEntry], archive: str | Path) -> list[RunStatus]:
    from hotline.detectors.fastsim import FastSimParams

    params = FastSimParams.from_toml()
    return [run_status(e, archive, params) for e in entries]


def unlisted_runs(recipe: Recipe, archive: str | Path) -> list[int]:
    """Run folders in ``archive`` that the recipe does not name."""
    from hotline.stream.archive import RUN_DIR

    root = Path(archive).expanduser()
    if not root.is_dir():
        return []
    known = set(recipe.by_run())
    out = []
    for d in sorted(root.iterdir()):
        m = RUN_DIR.match(d.name)
        if m and d.is_dir() and int(m.group(1)) not in known:
            out.append(int(m.group(1)))
    return out


# --------------------------------------------------------------------------- make


#: rough passing events per CPU second (bench_generate, MPI off) of the SM mixture; other
#: processes: ~1,000 generated events per CPU second times their filter efficiency. Only the
#: relative cost of runs matters: the time left scales it by the measured rate
_MIX_RATE = 150.0
_GENERATED_PER_S = 1000.0


def _cost(entry: RecipeEntry, events: int) -> float:
    """Prior CPU seconds of ``events`` events of ``entry`` (to weight the time estimate)."""
    from hotline.training.processes import get_process

    proc = get_process(entry.process)
    rate = (_MIX_RATE if proc.is_mixture
            else _GENERATED_PER_S * max(proc.expected_efficiency, 0.01))
    return events / rate


@dataclass
class MakeReport:
    """What ``make`` did: runs built, skipped (complete) and refused (differs), seconds."""

    built: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    refused: list[RunStatus] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0


class MakeProgress:
    """Progress of ``make``: a rich bar per run and one for everything with the time left
    (measured CPU-weighted rate), and, when the console is not a terminal (a log file), one
    line per finished chunk with the same estimate."""

    def __init__(self, todo: Sequence[tuple[RecipeEntry, int, int]], console: Any,
                 enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.enabled = enabled
        self.live = enabled and console is not None and console.is_terminal
        self.total_cost = sum(_cost(e, e.events - done) for e, done, _ in todo)
        self.done_cost = 0.0
        self.events_total = sum(e.events - done for e, done, _ in todo)
        self.events_done = 0
        self.t0 = time.perf_counter()
        self.entries = {e.run: e for e, _, _ in todo}
        self.chunks_total = sum(n for _, _, n in todo)
        self.chunks_done = 0
        self.p: Any = None
        self.tasks: dict[int, Any] = {}
        if self.live:
            self.p = Progress(TextColumn("{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(),
                              TextColumn("{task.fields[eta]}"), console=console)
            self.p.start()
            self.all = self.p.add_task("all runs", total=self.events_total, eta="")
            for e, done, _ in todo:
                self.tasks[e.run] = self.p.add_task(f"{e.name} ({e.process})", total=e.events,
                                                    completed=done, eta="")

    def eta_seconds(self) -> float | None:
        """Seconds left: remaining prior cost scaled by the measured cost rate."""
        if self.done_cost <= 0:
            return None
        elapsed = time.perf_counter() - self.t0
        return max(self.total_cost - self.done_cost, 0.0) * elapsed / self.done_cost

    def advance(self, run: int, k: int, n: int) -> None:
        entry = self.entries.get(run)
        if entry is None:
            return
        self.done_cost += _cost(entry, n)
        self.events_done += n
        self.chunks_done += 1
        eta = self.eta_seconds()
        text = "time left " + (_fmt(eta) if eta is not None else "?")
        if self.live:
            self.p.advance(self.tasks[run], n)
            self.p.update(self.all, advance=n, eta=text)
        elif self.enabled and self.console is not None:
            elapsed = time.perf_counter() - self.t0
            self.console.print(
                f"[{self.chunks_done}/{self.chunks_total} chunks] {entry.name}: chunk {k} "
                f"({n:,} events) done; {self.events_done:,}/{self.events_total:,} events, "
                f"elapsed {_fmt(elapsed)}, {text}", highlight=False)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def make(entries: Sequence[RecipeEntry], archive: str | Path, jobs: int = 1,
         console: Any = None, progress: bool = True,
         on_chunk: Callable[[Any, int, int], None] | None = None) -> MakeReport:
    """Build the missing and partial runs of ``entries`` into ``archive`` (resumable).

    Complete runs are skipped; runs whose folder holds a different sample are refused
    (listed in the report, left untouched). ``on_chunk(request, k, n)`` is called after
    each chunk is written (tests use it to interrupt a make).
    """
    from hotline.training.generate import generate

    report = MakeReport()
    t0 = time.perf_counter()
    todo: list[tuple[RecipeEntry, int, int]] = []
    for st in statuses(entries, archive):
        if st.state == "complete":
            report.skipped.append(st.entry.run)
        elif st.state == "differs":
            report.refused.append(st)
        else:
            n_chunks = st.entry.request(archive).n_chunks() - st.chunks_on_disk
            todo.append((st.entry, st.events_on_disk, n_chunks))
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    bar = MakeProgress(todo, console, enabled=progress)
    requests = [e.request(archive) for e, _, _ in todo]

    def chunk_done(req: Any, k: int, n: int) -> None:
        bar.advance(req.run, k, n)
        if on_chunk is not None:
            on_chunk(req, k, n)

    try:
        generate(requests, jobs=jobs, progress=False, on_chunk=chunk_done)
    finally:
        bar.close()
    report.built = [e.run for e, _, _ in todo]
    report.events = bar.events_done
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------- configurations


def config_runs(path: str | Path) -> dict[str, list[int]]:
    """Process -> runs a training configuration pins in ``[data.runs]`` (empty when none)."""
    d = read_toml(path, "training configuration")
    data = d.get("data") or {}
    if data.get("source", "synthetic") != "archive":
        return {}
    return {str(p): [int(r) for r in rs] for p, rs in (data.get("runs") or {}).items()}


def card_runs(card: dict[str, Any]) -> dict[str, list[int]]:
    """Process -> runs a model card records under ``training.runs``."""
    runs = (card.get("training") or {}).get("runs") or {}
    return {str(p): [int(r["run"]) for r in rs] for p, rs in runs.items()}


def card_entries(card: dict[str, Any], recipe: Recipe) -> tuple[list[RecipeEntry], list[int]]:
    """The recipe entries of the runs a model card records, and the runs the recipe lacks.

    A card written since the recipe exists holds its entries itself (``training.recipe``);
    older cards are matched by run number."""
    recorded = ((card.get("training") or {}).get("recipe") or {}).get("entries")
    if recorded:
        out = [_entry(dict(r), f"model card {card.get('name')}") for r in recorded]
        return out, []
    by_run = recipe.by_run()
    runs = sorted({r for rs in card_runs(card).values() for r in rs})
    return [by_run[r] for r in runs if r in by_run], [r for r in runs if r not in by_run]


__all__ = [
    "DEFAULT_RECIPE", "MakeReport", "Recipe", "RecipeEntry", "RunStatus", "card_entries",
    "card_runs", "check_entry", "config_runs", "entries_hash", "load_recipe", "make",
    "recipe_hash", "run_status", "statuses", "unlisted_runs",
]


def same_events(run_a: str | Path, run_b: str | Path) -> tuple[bool, str]:
    """Whether two run folders hold the same events, branch by branch, and what differs.

    Compares the ``Events`` trees of the ``nano_*.root`` files of both folders in order
    (every branch, exact values, NaNs equal), not the files' bytes: ROOT files carry
    creation times and UUIDs, so two identical generations never have the same bytes.
    """
    import awkward as ak
    import numpy as np
    import uproot

    def arrays(folder: Path) -> ak.Array:
        files = sorted(Path(folder).glob("nano_*.root"))
        if not files:
            raise SourceError(f"{folder}: no nano_*.root files")
        return ak.concatenate([uproot.open(f)["Events"].arrays() for f in files])

    a, b = arrays(Path(run_a)), arrays(Path(run_b))
    if len(a) != len(b):
        return False, f"{len(a)} events against {len(b)}"
    if set(a.fields) != set(b.fields):
        return False, f"branches differ: {sorted(set(a.fields) ^ set(b.fields))}"
    for f in a.fields:
        if a[f].ndim > 1 and not np.array_equal(ak.to_numpy(ak.num(a[f])),
                                                 ak.to_numpy(ak.num(b[f]))):
            return False, f"branch {f}: different multiplicities"
        fa, fb = ak.to_numpy(ak.flatten(a[f], axis=None)), ak.to_numpy(ak.flatten(b[f], axis=None))
        if fa.shape != fb.shape or not np.array_equal(fa, fb, equal_nan=fa.dtype.kind == "f"):
            return False, f"branch {f}: different values"
    return True, f"{len(a):,} events, {len(a.fields)} branches identical"
