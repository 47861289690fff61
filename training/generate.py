"""Sample production: Pythia8 + fast detector simulation -> archived runs.

Owns ``hotline generate``'s engine. A run is produced in **chunks** (default
2,000 passing events); chunk ``k`` depends only on (process, seed, k), so

* chunks are written atomically (``nano_<k>.root``, via a temporary name) and a
  killed job resumes by skipping the chunks already on disk: the result is
  identical to one uninterrupted job;
* chunks of one or many runs are generated in parallel (``jobs`` worker
  processes); each chunk re-initialises Pythia with its own seed (~0.1-0.4 s).

Per chunk: Pythia8 (``pythia8mc``) ``Pythia.nextBatch(n)`` returns an awkward
array of whole events (``prt`` particle records, ``info``); no Python loop over
particles or events. Final-state particles go through a cheap generator-level
pre-filter (an e or mu above ``trigger.truth_prefilter_pt``), then
``detectors.fastsim.simulate``, the optional detector fault, and the event filter
(ADC2021 single lepton: >= 1 reconstructed e or mu with pT > 23 GeV). Batches are
drawn until the chunk holds its number of passing events (the excess is cut, so
the result does not depend on batch sizes). Mixtures (``sm_mix``) draw the
component counts of each chunk from a multinomial and shuffle the events.

Multi-parton interactions are OFF by default (``PartonLevel:MPI = off``: ~5x
faster, the underlying event is missing, which mostly affects soft jets, MET
resolution and isolation); ``mpi=True`` switches them on.

Written branches: NanoAOD-style ``Electron_*``, ``Muon_*``, ``Photon_*``,
``Jet_*``, ``MET_pt/phi``, ids ``run``, ``luminosityBlock``, ``event``, plus
``sample`` (int32 process code; the code -> name map is in ``run.json``),
``fault`` (int32 detector-fault code, 0 = none; the fault's strength, when not
its default, is ``fault_size`` in ``run.json``) and ``genWeight`` (float32,
1 unless the process is biased). ``run.json`` records the process, events,
seed, chunking, versions, the MPI setting, fast-sim parameters, the filter
efficiency and generation speed, and the effective statistics.

**Data-like runs** (``data_like``, ``hotline generate --data-like``): real data has no
event weights, so a run replayed as data must hold its events with the frequencies of
their physical weights (``models.weights``: per component, ``genWeight`` normalised to
mean 1; the components keep their fractions). Each weighted component is unweighted by

* ``unbiased`` generation (the default where the process declares how,
  ``Process.unbiased``: QCD without its pTHat bias): every event weighs 1. This is the
  cheapest exact way: accept-reject on the biased stream keeps a passing event with
  probability ``w / w_max``, i.e. ``mean(w) / max(w)`` (QCD: 0.24) as many events per
  generated one; or
* ``accept-reject`` against the process's weight bound ``Process.max_weight`` (for
  weighted processes without an unbiased form): every passing event of the weighted stream
  is kept with probability ``w / max_weight``; a weight above the bound is an error.
  Nothing is resampled, so no event appears twice.

Either way ``genWeight`` is written and is 1 for every event (readers need no special case;
a replay applies no weight), and ``run.json`` says ``sample = "data-like"`` and gives per
component the method, events generated per event kept, the acceptance and, for
accept-reject, the Kish size of the weighted input stream (``effective_statistics``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.event_faults import apply_fault, get_event_fault
from hotline.detectors.fastsim import (
    FastSimParams,
    final_state,
    simulate,
    single_lepton_mask,
    truth_prefilter,
)
from hotline.errors import ConfigError, HotlineError, SourceError
from hotline.stream.archive import RUN_DIR
from hotline.training.processes import COMMON_SETTINGS, Process, get_process, sample_codes

log = logging.getLogger(__name__)

#: how a weighted component is made data-like (``auto``: unbiased where the process says how)
DATA_LIKE_METHODS = ("auto", "unbiased", "accept-reject")

FILE_PREFIX = "nano"
STATE_DIR = ".generate"  #: per-chunk statistics, beside the ROOT files
MAX_BATCH = 4000


def _pythia() -> Any:
    try:
        import pythia8mc
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise HotlineError("sample generation needs Pythia8: pip install pythia8mc==8.317.2"
                           ) from exc
    return pythia8mc


def versions() -> dict[str, str]:
    """Versions of the generator chain (recorded in every run card)."""
    from importlib.metadata import version

    out = {}
    for pkg in ("pythia8mc", "fastjet", "awkward", "numpy", "uproot"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = "unknown"
    return out


@dataclass(frozen=True)
class GenerateRequest:
    """One run to generate: ``events`` passing events of ``process`` into ``out``."""

    process: str
    events: int
    seed: int
    out: Path
    chunk_size: int = 2000
    events_per_lumi: int = 1000
    mpi: bool = False
    pileup: float = 0.0
    #: strength of the process's detector fault (None: the fault's default size)
    fault_size: float | None = None
    #: "" (weighted components keep their genWeight) or a DATA_LIKE_METHODS entry:
    #: unweight them (see the module docstring)
    data_like: str = ""

    @property
    def unweighting(self) -> str:
        """The data-like method in force: "" when off or when no component is weighted."""
        return self.data_like if self.data_like and get_process(self.process).has_weights else ""

    def component_method(self, proc: Process) -> str:
        """How component ``proc`` is made: "" (as it is) or "unbiased" / "accept-reject"."""
        if not self.unweighting or not proc.weighted:
            return ""
        return unweighting_method(proc, self.unweighting)

    @property
    def run(self) -> int:
        m = RUN_DIR.match(self.out.name)
        if not m:
            raise ConfigError(f"output folder {self.out} must be named run_<number> "
                              "(e.g. ARCHIVE/run_000200)")
        return int(m.group(1))

    def n_chunks(self) -> int:
        return max(1, math.ceil(self.events / self.chunk_size))

    def chunk_events(self, k: int) -> int:
        return min(self.chunk_size, self.events - k * self.chunk_size)

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed run to continue the same sample."""
        out = {"process": self.process, "events": self.events, "seed": self.seed,
               "chunk_size": self.chunk_size, "events_per_lumi": self.events_per_lumi,
               "mpi": self.mpi, "pileup": self.pileup, "fault_size": self.fault_size,
               "settings_hash": settings_hash(self)}
        if self.unweighting:  # only then: weighted and unweighted runs keep their identity
            out["data_like"] = self.unweighting
        return out

    def resume_identity(self) -> dict[str, Any]:
        """``identity`` plus ``data_like`` (None when off): what a card on disk must match
        (cards of weighted runs have no ``data_like`` key)."""
        return {**self.identity(), "data_like": self.unweighting or None}

    def check_data_like(self) -> None:
        """``ConfigError`` for an unknown method or a weighted component it cannot unweight."""
        if not self.data_like:
            return
        if self.data_like not in DATA_LIKE_METHODS:
            raise ConfigError(f"--data-like {self.data_like}: one of "
                              f"{', '.join(DATA_LIKE_METHODS)}")
        for part in get_process(self.process).parts():
            self.component_method(part)

    def check_fault_size(self) -> None:
        """``ConfigError`` when ``fault_size`` is given for a process without a fault, or is
        not valid for the process's fault."""
        if self.fault_size is None:
            return
        proc = get_process(self.process)
        if not proc.fault:
            raise ConfigError(f"--fault-size {self.fault_size:g}: process '{self.process}' has "
                              "no detector fault (use a fault process such as sm_mix_hot_cell)")
        get_event_fault(proc.fault).check_size(self.fault_size)


@dataclass
class ChunkStats:
    """Bookkeeping of one chunk (or a sum of chunks): counts, weights, CPU seconds."""

    generated: dict[str, int] = field(default_factory=dict)
    passed: dict[str, int] = field(default_factory=dict)
    sumw_generated: dict[str, float] = field(default_factory=dict)
    sumw_passed: dict[str, float] = field(default_factory=dict)
    cpu_gen: dict[str, float] = field(default_factory=dict)
    cpu_sim: dict[str, float] = field(default_factory=dict)
    simulated: dict[str, int] = field(default_factory=dict)
    #: sum of the squared raw weights of the written events (Kish size of weighted runs)
    sumw2_passed: dict[str, float] = field(default_factory=dict)
    #: accept-reject unweighting: the weighted stream passing the filter it drew from
    #: (events, sum of raw weights, sum of their squares)
    input_passed: dict[str, int] = field(default_factory=dict)
    input_sumw: dict[str, float] = field(default_factory=dict)
    input_sumw2: dict[str, float] = field(default_factory=dict)
    cpu_total: float = 0.0
    wall: float = 0.0

    def add(self, other: ChunkStats) -> ChunkStats:
        for name in ("generated", "passed", "sumw_generated", "sumw_passed", "cpu_gen",
                     "cpu_sim", "simulated", "sumw2_passed", "input_passed", "input_sumw",
                     "input_sumw2"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.cpu_total += other.cpu_total
        self.wall += other.wall
        return self

    def summary(self) -> dict[str, Any]:
        """Per component: filter efficiency (weighted for biased samples), events/s/core."""
        out: dict[str, Any] = {}
        for comp, gen in self.generated.items():
            passed = self.passed.get(comp, 0)
            cpu = self.cpu_gen.get(comp, 0.0) + self.cpu_sim.get(comp, 0.0)
            swg = self.sumw_generated.get(comp, 0.0)
            out[comp] = {
                "generated": gen, "passed": passed,
                "filter_efficiency": passed / gen if gen else 0.0,
                "filter_efficiency_weighted": (self.sumw_passed.get(comp, 0.0) / swg
                                               if swg else 0.0),
                "cpu_seconds": round(cpu, 3),
                "passing_events_per_cpu_s": round(passed / cpu, 2) if cpu else None,
                "simulated": self.simulated.get(comp, 0),
                "fastsim_events_per_cpu_s": (round(self.simulated.get(comp, 0)
                                                   / self.cpu_sim[comp], 1)
                                             if self.cpu_sim.get(comp) else None),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkStats:
        return cls(**d)


def unweighting_method(proc: Process, method: str = "auto") -> str:
    """The method that makes the weighted process ``proc`` data-like (``ConfigError`` when
    ``proc`` declares neither an unbiased form nor a weight bound, or not the one asked)."""
    if method == "auto":
        if proc.unbiased:
            return "unbiased"
        if proc.max_weight is not None:
            return "accept-reject"
        raise ConfigError(f"process '{proc.name}' is weighted and declares neither an unbiased "
                          "form (Process.unbiased) nor a weight bound (Process.max_weight): "
                          "it cannot be made data-like")
    if method == "unbiased" and not proc.unbiased:
        raise ConfigError(f"--data-like unbiased: process '{proc.name}' declares no unbiased "
                          "form (Process.unbiased); use --data-like accept-reject")
    if method == "accept-reject" and proc.max_weight is None:
        raise ConfigError(f"--data-like accept-reject: process '{proc.name}' declares no weight "
                          "bound (Process.max_weight); use --data-like unbiased")
    return method


def settings_hash(req: GenerateRequest) -> str:
    """Short hash of the process definition (Pythia lines of it and its components, filter,
    fault): a resumed run must not mix chunks made with different settings."""
    import hashlib

    proc = get_process(req.process)
    parts = [proc.name, proc.filter, str(proc.fault), *proc.pythia]
    if proc.fault and get_event_fault(proc.fault).definition:  # only faults defined as data
        parts += get_event_fault(proc.fault).definition
    if req.fault_size is not None:  # only then: the hashes of default-size runs stay as they were
        parts.append(f"fault_size={req.fault_size!r}")
    for comp, frac in proc.components:
        parts += [comp, repr(frac), *get_process(comp).pythia]
    if req.unweighting:  # only then: the hashes of weighted runs stay as they were
        for part in proc.parts():
            method = req.component_method(part)
            if method:
                parts += [f"data_like[{part.name}]={method}", *part.unbiased,
                          repr(part.max_weight)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _seed(*parts: int) -> int:
    """A Pythia seed (1..900,000,000) derived from integers."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] % 900_000_000) + 1


def make_pythia(proc: Process, seed: int, mpi: bool = False, unbiased: bool = False) -> Any:
    """An initialised ``pythia8mc.Pythia`` for ``proc`` (quiet, seeded; ``unbiased``: with
    the process's bias switched off, ``Process.unbiased``)."""
    pythia8mc = _pythia()
    py = pythia8mc.Pythia("", False)
    lines = [*COMMON_SETTINGS, f"PartonLevel:MPI = {'on' if mpi else 'off'}",
             "Random:setSeed = on", f"Random:seed = {seed}", *proc.pythia,
             *(proc.unbiased if unbiased else ())]
    for line in lines:
        if not py.readString(line):
            raise ConfigError(f"process '{proc.name}': Pythia rejects setting '{line}'")
    if not py.init():
        raise HotlineError(f"process '{proc.name}': Pythia initialisation failed "
                           f"(settings: {'; '.join(proc.pythia)})")
    return py


def _weights(batch: ak.Array) -> np.ndarray:
    w = batch.info.weights
    if ak.max(ak.num(w, axis=1), initial=0) == 0:
        return np.ones(len(batch))
    # a plain array (ak.firsts gives an option type; no event lacks its weight here)
    return np.asarray(np.ma.filled(ak.to_numpy(ak.firsts(w)), 1.0), np.float64)


def simulate_batch(batch: ak.Array, params: FastSimParams, rng: np.random.Generator,
                   proc: Process, fault: str | None = None, fault_size: float | None = None,
                   ) -> tuple[ak.Array, np.ndarray, np.ndarray, int, float]:
    """Pythia batch -> (passing reco events, their weights, pass mask over the batch,
    number simulated, CPU seconds of the simulation). ``fault_size``: the fault's strength
    (None: its default)."""
    t0 = time.process_time()
    fs = final_state(batch.prt)
    w = _weights(batch)
    if fault:
        ef = get_event_fault(fault)
        scale = ef.prefilter_scale(ef.check_size(fault_size))
    else:
        scale = 1.0
    if proc.filter == "single_lepton":
        pre = truth_prefilter(fs, params.trigger.truth_prefilter_pt / scale)
    else:
        pre = np.ones(len(fs), dtype=bool)
    idx = np.flatnonzero(pre)
    reco = simulate(fs[idx], params, rng)
    reco = apply_fault(reco, fault, rng, fault_size)
    keep = (single_lepton_mask(reco, params) if proc.filter == "single_lepton"
            else np.ones(len(reco), dtype=bool))
    mask = np.zeros(len(fs), dtype=bool)
    mask[idx[keep]] = True
    return reco[keep], w[idx[keep]], mask, len(idx), time.process_time() - t0


def generate_component(proc: Process, n: int, seed: int, params: FastSimParams,
                       fault: str | None = None, mpi: bool = False,
                       stats: ChunkStats | None = None,
                       fault_size: float | None = None, unweight: str = "") -> ak.Array:
    """Exactly ``n`` passing events of a (non-mixture) process, deterministic in ``seed``.

    ``unweight``: "" (events as generated), "unbiased" (the process's bias switched off)
    or "accept-reject" (each passing event kept with probability ``w / max_weight``);
    with either, every written ``genWeight`` is 1."""
    stats = stats if stats is not None else ChunkStats()
    name = proc.name
    counts: tuple[dict[str, int], ...] = (stats.generated, stats.passed, stats.simulated,
                                           stats.input_passed)
    for c in counts:
        c.setdefault(name, 0)
    sums: tuple[dict[str, float], ...] = (stats.sumw_generated, stats.sumw_passed,
                                          stats.cpu_gen, stats.cpu_sim, stats.sumw2_passed,
                                          stats.input_sumw, stats.input_sumw2)
    for d in sums:
        d.setdefault(name, 0.0)
    if n <= 0:
        return ak.Array([])
    if unweight == "accept-reject" and proc.max_weight is None:
        raise ConfigError(f"process '{name}': accept-reject needs Process.max_weight")
    t0 = time.process_time()
    py = make_pythia(proc, _seed(seed, 1), mpi, unbiased=unweight == "unbiased")
    rng = np.random.default_rng(_seed(seed, 2))
    rng_accept = np.random.default_rng(_seed(seed, 3))
    stats.cpu_gen[name] += time.process_time() - t0
    parts: list[ak.Array] = []
    weights: list[np.ndarray] = []
    have = 0
    eff = proc.expected_efficiency
    while have < n:
        want = min(MAX_BATCH, max(50, int(math.ceil((n - have) / max(eff, 1e-3) * 1.15))))
        t0 = time.process_time()
        batch = py.nextBatch(want)
        stats.cpu_gen[name] += time.process_time() - t0
        if len(batch) == 0:
            raise HotlineError(f"process '{name}': Pythia produced no events (seed {seed})")
        reco, w, mask, nsim, dt = simulate_batch(batch, params, rng, proc, fault, fault_size)
        stats.cpu_sim[name] += dt
        stats.simulated[name] += nsim
        wall = _weights(batch)
        pass_in, w_in = mask.copy(), w
        if unweight == "accept-reject":
            assert proc.max_weight is not None
            if len(w) and float(w.max()) > proc.max_weight * (1 + 1e-6):
                raise HotlineError(f"process '{name}': a raw event weight {float(w.max()):.6g} "
                                   f"exceeds the declared bound max_weight = "
                                   f"{proc.max_weight:g}; accept-reject would be biased")
            accept = rng_accept.random(len(w)) < w / proc.max_weight
            mask[np.flatnonzero(mask)[~accept]] = False
            reco, w = reco[accept], w[accept]
        # count generated events up to the n-th passing one, so efficiencies are exact
        take = min(len(reco), n - have)
        if have + len(reco) >= n and take > 0:
            used = slice(0, int(np.flatnonzero(mask)[take - 1]) + 1)
        else:
            used = slice(0, len(batch))
        stats.generated[name] += used.stop
        stats.sumw_generated[name] += float(np.sum(wall[used]))
        stats.passed[name] += take
        stats.sumw_passed[name] += float(np.sum(w[:take]))
        stats.sumw2_passed[name] += float(np.sum(np.square(w[:take])))
        if unweight == "accept-reject":
            n_in = int(pass_in[used].sum())
            stats.input_passed[name] += n_in
            stats.input_sumw[name] += float(np.sum(w_in[:n_in]))
            stats.input_sumw2[name] += float(np.sum(np.square(w_in[:n_in])))
        parts.append(reco[:take])
        weights.append(w[:take])
        have += take
        eff = max(stats.passed[name] / max(stats.generated[name], 1), 1e-3)
    out = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    wt = np.concatenate(weights)
    if proc.weighted and not unweight:
        wt = wt / (stats.sumw_generated[name] / stats.generated[name])  # mean generated w = 1
    else:
        wt = np.ones_like(wt)
    out = ak.with_field(out, wt.astype(np.float32), "genWeight")
    out = ak.with_field(out, np.full(len(out), proc.code, np.int32), "sample")
    return out


def generate_chunk(req: GenerateRequest, k: int, params: FastSimParams | None = None,
                   ) -> tuple[ak.Array, ChunkStats]:
    """Chunk ``k`` of ``req``: its passing events (ids not yet set) and statistics."""
    params = (params or FastSimParams.from_toml()).with_pileup(req.pileup)
    proc = get_process(req.process)
    n = req.chunk_events(k)
    stats = ChunkStats()
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    fault_code = get_event_fault(proc.fault).code if proc.fault else 0
    if proc.is_mixture:
        rng = np.random.default_rng(_seed(req.seed, k, proc.code, 99))
        fracs = np.array([f for _, f in proc.components], dtype=float)
        counts = rng.multinomial(n, fracs / fracs.sum())
        pieces = []
        for (comp, _), c in zip(proc.components, counts, strict=True):
            cp = get_process(comp)
            pieces.append(generate_component(cp, int(c), _seed(req.seed, k, cp.code), params,
                                             fault=proc.fault, mpi=req.mpi, stats=stats,
                                             fault_size=req.fault_size,
                                             unweight=req.component_method(cp)))
        arrays = ak.concatenate([p for p in pieces if len(p)])
        arrays = arrays[rng.permutation(len(arrays))]
    else:
        arrays = generate_component(proc, n, _seed(req.seed, k, proc.code), params,
                                    fault=proc.fault, mpi=req.mpi, stats=stats,
                                    fault_size=req.fault_size,
                                    unweight=req.component_method(proc))
    arrays = ak.with_field(arrays, np.full(len(arrays), fault_code, np.int32), "fault")
    stats.cpu_total = time.process_time() - t_cpu
    stats.wall = time.perf_counter() - t_wall
    return arrays, stats


def with_ids(arrays: ak.Array, run: int, first_index: int, events_per_lumi: int) -> ak.Array:
    """Set run / luminosityBlock / event for events numbered from ``first_index`` (0-based)."""
    n = len(arrays)
    idx = np.arange(first_index, first_index + n, dtype=np.int64)
    arrays = ak.with_field(arrays, np.full(n, run, np.uint32), "run")
    arrays = ak.with_field(arrays, (idx // events_per_lumi + 1).astype(np.uint32),
                           "luminosityBlock")
    return ak.with_field(arrays, (idx + 1).astype(np.uint64), "event")


#: branch order in written files (ids first)
BRANCH_ORDER = ("run", "luminosityBlock", "event", "sample", "fault", "genWeight")


def _ordered(arrays: ak.Array) -> ak.Array:
    names = [b for b in BRANCH_ORDER if b in arrays.fields]
    names += [b for b in arrays.fields if b not in names]
    return arrays[names]


def write_chunk(folder: Path, k: int, arrays: ak.Array) -> Path:
    """Write chunk ``k`` atomically as ``nano_<k>.root`` (temporary name, then rename)."""
    import uproot

    from hotline.stream.archive_writer import to_tree_dict, write_tree

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{FILE_PREFIX}_{k:04d}.root"
    tmp = folder / f".{final.name}.part"
    with uproot.recreate(tmp) as f:
        write_tree(f, "Events", to_tree_dict(_ordered(arrays)))
    os.replace(tmp, final)
    return final


def chunk_path(req: GenerateRequest, k: int) -> Path:
    return req.out / f"{FILE_PREFIX}_{k:04d}.root"


def _stats_path(req: GenerateRequest, k: int) -> Path:
    return req.out / STATE_DIR / f"chunk_{k:04d}.json"


def run_chunk(req: GenerateRequest, k: int, params_dict: dict[str, Any] | None = None,
              ) -> tuple[str, int, int, dict[str, Any]]:
    """Generate and write chunk ``k`` (the unit of work of the worker pool)."""
    params = FastSimParams.from_dict(params_dict) if params_dict else None
    arrays, stats = generate_chunk(req, k, params)
    arrays = with_ids(arrays, req.run, k * req.chunk_size, req.events_per_lumi)
    write_chunk(req.out, k, arrays)
    sp = _stats_path(req, k)
    sp.parent.mkdir(parents=True, exist_ok=True)
    tmp = sp.with_name(f".{sp.name}.part")  # atomic: a kill never leaves half a file
    tmp.write_text(json.dumps(stats.to_dict()))
    os.replace(tmp, sp)
    return str(req.out), k, len(arrays), stats.to_dict()


def definition_files_of(proc: Process) -> list[str]:
    """The TOML files defining ``proc``, its components and its fault (none for built-ins)."""
    files = [p.source for p in (proc, *proc.parts()) if p.source]
    if proc.fault:
        files.append(get_event_fault(proc.fault).source)
    return list(dict.fromkeys(f for f in files if f))


def _card(req: GenerateRequest, params: FastSimParams, stats: ChunkStats | None,
          complete: bool, command: str | None, command_suffix: str = "") -> dict[str, Any]:
    proc = get_process(req.process)
    codes = sample_codes()
    used = {proc.code} | {get_process(c).code for c, _ in proc.components}
    card: dict[str, Any] = {
        "description": f"generated {req.process}: {proc.description}",
        "generator": "Pythia8 (pythia8mc nextBatch) + detectors.fastsim",
        **req.identity(),
        "run": req.run,
        "complete": complete,
        "versions": versions(),
        "pythia_settings": [*COMMON_SETTINGS,
                            f"PartonLevel:MPI = {'on' if req.mpi else 'off'}",
                            *proc.pythia],
        "components": {c: f for c, f in proc.components} or {req.process: 1.0},
        "component_settings": {c: list(get_process(c).pythia) for c, _ in proc.components},
        "filter": proc.filter,
        "fault": proc.fault,
        "fault_size_effective": (get_event_fault(proc.fault).check_size(req.fault_size)
                                 if proc.fault else None),
        "sample_codes": {str(c): codes[c] for c in sorted(used)},
        "fault_codes": {"0": "none", **({str(get_event_fault(proc.fault).code): proc.fault}
                                         if proc.fault else {})},
        "fastsim": params.to_dict(),
        "seeding": "chunk k of component c uses Pythia seed f(seed, k, code(c)) "
                   "(numpy SeedSequence); chunks are independent, so resumed = one go",
        "regenerate": command or (f"hotline generate {req.process} --events {req.events} "
                                  f"--seed {req.seed} --out ARCHIVE/{req.out.name}"
                                  f" --chunk-size {req.chunk_size} "
                                  f"--events-per-lumi {req.events_per_lumi}"
                                  + (" --mpi" if req.mpi else "")
                                  + (f" --pileup {req.pileup}" if req.pileup else "")
                                  + (f" --fault-size {req.fault_size!r}"
                                     if req.fault_size is not None else "")
                                  + data_like_option(req.unweighting)
                                  + command_suffix),
        "sample": "weighted" if proc.has_weights and not req.unweighting else "data-like",
        "unweighting": {p.name: req.component_method(p) for p in proc.parts()
                        if req.component_method(p)},
    }
    files = definition_files_of(proc)
    if files:  # a process defined in TOML: where, so the run can be remade (built-ins: none)
        from hotline.training.process_files import PACKAGE_DIR

        card["process_definitions"] = files
        # the package's own files are on every search path: no --processes for them
        extra = [f for f in files if Path(f).resolve().parent != Path(PACKAGE_DIR).resolve()]
        if command is None:
            card["regenerate"] += "".join(f" --processes {shlex.quote(f)}" for f in extra)
    if proc.anomalous_type():
        card["truth_type"] = proc.anomalous_type()
    if stats is not None:
        summ = stats.summary()
        card["filter_efficiency"] = {c: s["filter_efficiency"] for c, s in summ.items()}
        card["speed"] = summ
        card["cpu_seconds"] = round(stats.cpu_total, 2)
        card["passing_events_per_cpu_s"] = (round(req.events / stats.cpu_total, 2)
                                            if stats.cpu_total else None)
        card["effective_statistics"] = effective_statistics(req, stats)
    return card


def data_like_option(method: str) -> str:
    """The ``hotline generate`` option for ``method`` ("" when off)."""
    if not method:
        return ""
    return " --data-like" + ("" if method == "auto" else f" {method}")


def _kish(sumw: float, sumw2: float) -> float | None:
    return sumw * sumw / sumw2 if sumw2 > 0 else None


def effective_statistics(req: GenerateRequest, stats: ChunkStats) -> dict[str, Any]:
    """What the run is worth: per component the method, events generated per event kept,
    the acceptance, the Kish size; for the run, the Kish size of its physical weights
    (weights normalised to mean 1 per component, ``models.weights``).

    ``kish`` of a component: its events themselves when every weight is 1, else
    ``(sum w)^2 / sum w^2`` of its weights. Accept-reject also gives the weighted stream
    passing the filter it drew from (``input_events``, ``input_kish``) and ``acceptance``
    = kept / input events; unbiased generation gives ``acceptance`` = kept / generated
    (the filter efficiency). A weighted run's card made before this was recorded lacks
    ``sum w^2``: its Kish sizes are null."""
    proc = get_process(req.process)
    comps: dict[str, Any] = {}
    inv = 0.0  # sum over components of n_c^2 / kish_c
    known = True
    for part in proc.parts():
        name = part.name
        gen, kept = stats.generated.get(name, 0), stats.passed.get(name, 0)
        method = req.component_method(part) or ("weighted" if part.weighted else "unweighted")
        row: dict[str, Any] = {"method": method, "generated": gen, "kept": kept,
                               "generated_per_kept": round(gen / kept, 2) if kept else None}
        if method == "weighted":
            kish = _kish(stats.sumw_passed.get(name, 0.0), stats.sumw2_passed.get(name, 0.0))
            row["acceptance"] = round(kept / gen, 6) if gen else None
        else:
            kish = float(kept)
            if method == "accept-reject":
                n_in = stats.input_passed.get(name, 0)
                row["input_events"] = n_in
                k_in = _kish(stats.input_sumw.get(name, 0.0), stats.input_sumw2.get(name, 0.0))
                row["input_kish"] = round(k_in, 1) if k_in is not None else None
                row["acceptance"] = round(kept / n_in, 6) if n_in else None
            else:
                row["acceptance"] = round(kept / gen, 6) if gen else None
        row["kish"] = round(kish, 1) if kish is not None else None
        comps[name] = row
        if kept:
            if kish:
                inv += kept * kept / kish
            else:
                known = False
    n = sum(stats.passed.get(p.name, 0) for p in proc.parts())
    run_kish = (n * n / inv if inv else 0.0) if known else None
    return {"events": n, "sample": "weighted" if proc.has_weights and not req.unweighting
            else "data-like",
            "kish": round(run_kish, 1) if run_kish is not None else None,
            "components": comps}


def _check_resume(req: GenerateRequest, params: FastSimParams) -> None:
    card_path = req.out / "run.json"
    if not card_path.exists():
        return
    try:
        old = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise SourceError(f"cannot resume {req.out}: run.json is not valid JSON ({exc})") from exc
    diff = {k: (old.get(k), v) for k, v in req.resume_identity().items() if old.get(k) != v}
    if "fastsim" in old and old["fastsim"] != params.to_dict():
        diff["fast-sim parameters"] = ("other", "these")
    if diff:
        what = ", ".join(f"{k}: {a!r} on disk vs {b!r} asked" for k, (a, b) in diff.items())
        raise ConfigError(f"{req.out} already holds a different sample ({what}); "
                          "choose another --out or remove that folder")


def pending_chunks(req: GenerateRequest) -> list[int]:
    """Chunks of ``req`` not yet on disk (with their statistics)."""
    return [k for k in range(req.n_chunks())
            if not (chunk_path(req, k).exists() and _stats_path(req, k).exists())]


def _pool_task(task: tuple[GenerateRequest, int, dict[str, Any], list[str]],
               ) -> tuple[str, int, int, dict[str, Any]]:
    req, k, params, definitions = task
    if definitions:  # a spawned worker: the TOML processes and faults the parent loaded
        from hotline.training.process_files import load_files

        load_files([Path(f) for f in definitions])
    return run_chunk(req, k, params)


def generate(requests: Sequence[GenerateRequest], jobs: int = 1,
             params: FastSimParams | None = None, progress: bool = False,
             command: str | None = None, command_suffix: str = "",
             on_chunk: Callable[[GenerateRequest, int, int], None] | None = None,
             ) -> dict[Path, dict[str, Any]]:
    """Generate (or resume) every run of ``requests``; returns run folder -> card.

    Chunks of all runs are spread over ``jobs`` worker processes. Chunks already
    on disk are kept. ``on_chunk(req, k, n)`` is called after each chunk is written.
    """
    params = params or FastSimParams.from_toml()
    for req in requests:
        get_process(req.process)
        if req.events < 1:
            raise ConfigError(f"--events must be >= 1, got {req.events}")
        if req.chunk_size < 1 or req.events_per_lumi < 1:
            raise ConfigError("--chunk-size and --events-per-lumi must be >= 1")
        req.check_fault_size()
        req.check_data_like()
        _ = req.run
        _check_resume(req, params)
        req.out.mkdir(parents=True, exist_ok=True)
        first = _card(req, params, None, False, command, command_suffix)
        (req.out / "run.json").write_text(json.dumps(first, indent=2, sort_keys=True) + "\n")
    from hotline.training.process_files import loaded_files

    definitions = [str(f) for f in loaded_files()]
    tasks = [(req, k, params.to_dict(), definitions) for req in requests
             for k in pending_chunks(req)]
    by_out = {str(r.out): r for r in requests}
    left = {str(r.out): len(pending_chunks(r)) for r in requests}
    cards: dict[Path, dict[str, Any]] = {}

    def finish(req: GenerateRequest) -> None:
        """All chunks on disk: the final card (a run is usable as soon as it is complete)."""
        total = ChunkStats()
        for k in range(req.n_chunks()):
            total.add(ChunkStats.from_dict(json.loads(_stats_path(req, k).read_text())))
        card = _card(req, params, total, True, command, command_suffix)
        (req.out / "run.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        cards[req.out] = card

    def done(req: GenerateRequest, k: int, n: int) -> None:
        left[str(req.out)] -= 1
        if left[str(req.out)] == 0:
            finish(req)
        if on_chunk is not None:
            on_chunk(req, k, n)

    for req in requests:
        if left[str(req.out)] == 0:
            finish(req)
    bar = _Progress(requests, enabled=progress)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            results = (_pool_task(t) for t in tasks)
            _consume(results, by_out, bar, done)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(min(jobs, len(tasks))) as pool:
                _consume(pool.imap_unordered(_pool_task, tasks), by_out, bar, done)
    finally:
        bar.close()
    return {r.out: cards[r.out] for r in requests}


def _consume(results: Any, by_out: dict[str, GenerateRequest], bar: _Progress,
             on_chunk: Callable[[GenerateRequest, int, int], None] | None) -> None:
    for out, k, n, _stats in results:
        req = by_out[out]
        bar.advance(req, n)
        if on_chunk is not None:
            on_chunk(req, k, n)


class _Progress:
    """A rich progress bar per run with passing events/s (wall clock)."""

    def __init__(self, requests: Sequence[GenerateRequest], enabled: bool) -> None:
        self.enabled = enabled
        self.tasks: dict[str, Any] = {}
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]} ev/s"), TimeElapsedColumn())
        self.p.start()
        self.t0 = time.perf_counter()
        for req in requests:
            done = sum(req.chunk_events(k) for k in range(req.n_chunks())
                       if k not in pending_chunks(req))
            self.tasks[str(req.out)] = self.p.add_task(
                f"{req.process} -> {req.out.name}", total=req.events, completed=done,
                rate="-")
        self.fresh = 0

    def advance(self, req: GenerateRequest, n: int) -> None:
        if not self.enabled:
            return
        self.fresh += n
        rate = self.fresh / max(time.perf_counter() - self.t0, 1e-9)
        for tid in self.tasks.values():
            self.p.update(tid, rate=f"{rate:,.0f}")
        self.p.advance(self.tasks[str(req.out)], n)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
