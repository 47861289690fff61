"""Sample access: features of one process from the generated-sample archive or the toy generator.

``load_sample(process, data, n, seed, spec)`` is what training, calibration, evaluation and the
firmware agreement check read their events with: archived runs of ``hotline generate`` (replayed
with ``stream.replay.ReplaySource`` and turned into features by ``detectors.features``, with
physical event weights when the runs carry ``genWeight``), or the built-in ``synthetic`` toy
generator that lets tests run anywhere in seconds. The archive defaults to the user cache
(``SAMPLES_DIR``, platformdirs), never to the source tree.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_cache_path

from hotline.detectors.features import FeatureMatrix, extract_features
from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec
from hotline.errors import ConfigError, ModelError, SourceError

log = logging.getLogger(__name__)

#: the generated-sample archive of ``hotline generate`` (README.txt one level up)
SAMPLES_DIR = user_cache_path("hotline") / "samples" / "archive"

SYNTHETIC_PROCESSES = ("sm", "A4l", "LQ_btau", "h0_tautau", "hplus_taunu",
                       "fault_muon_scale", "fault_hot_jet", "fault_dead_jets")
#: object type each synthetic toy fault corrupts (generated fault samples: EventFault.faulty_type)
SYNTHETIC_FAULT_TYPES = {"fault_muon_scale": "muons", "fault_hot_jet": "jets",
                         "fault_dead_jets": "jets"}


def synthetic_events(process: str, n: int, seed: int = 0) -> Any:
    """A toy NanoAOD-like chunk (awkward) for ``process``: an L1-like single-lepton SM
    stream, four toy signals named after the seed study's, and three detector faults.

    These are *not* physics samples (no matrix elements, no showers): they exist so
    that training, scoring and the tests run anywhere in seconds. The real samples
    come from ``hotline generate`` (Pythia8 + fast simulation).
    """
    import awkward as ak

    if process not in SYNTHETIC_PROCESSES:
        raise ConfigError(f"unknown synthetic process '{process}'; "
                          f"known: {', '.join(SYNTHETIC_PROCESSES)}")
    rng = np.random.default_rng([seed, SYNTHETIC_PROCESSES.index(process)])

    def objs(counts: np.ndarray, pt0: float, scale: float, eta_max: float):
        tot = int(counts.sum())
        return (pt0 + rng.exponential(scale, tot), rng.uniform(-eta_max, eta_max, tot),
                rng.uniform(-np.pi, np.pi, tot), counts)

    def merge(*parts):
        pts, etas, phis, cnts = zip(*[p for p in parts if p is not None])
        out = []
        for vals in (pts, etas, phis):
            lists = [ak.unflatten(v.astype(np.float32), c) for v, c in zip(vals, cnts)]
            out.append(ak.concatenate(lists, axis=1) if len(lists) > 1 else lists[0])
        return out

    is_e = rng.random(n) < 0.5
    lead = rng.exponential(15.0, n) + 24.0
    e_lead = objs(is_e.astype(np.int64), 0, 1, 2.4)
    e_lead = (lead[is_e], e_lead[1], e_lead[2], e_lead[3])
    m_lead = objs((~is_e).astype(np.int64), 0, 1, 2.0)
    m_lead = (lead[~is_e], m_lead[1], m_lead[2], m_lead[3])
    e_extra = objs(rng.poisson(0.15, n), 5, 15, 2.4)
    m_extra = objs(rng.poisson(0.15, n), 5, 15, 2.0)
    jets = objs(rng.poisson(2.0, n), 16, 30, 3.9)
    met = rng.exponential(25.0, n) + 5.0
    extra_e = extra_m = extra_j = None
    if process == "A4l":
        extra_e = objs(np.full(n, 2), 8, 15, 2.4)
        extra_m = objs(np.full(n, 1), 8, 15, 2.0)
    elif process == "LQ_btau":
        extra_j = objs(np.full(n, 2), 60, 80, 2.5)
        met = met + rng.exponential(40.0, n)
    elif process == "h0_tautau":
        extra_j = objs(np.full(n, 1), 30, 25, 2.5)
        met = met + rng.exponential(50.0, n)
    elif process == "hplus_taunu":
        extra_j = objs(np.full(n, 1), 50, 60, 2.5)
        met = met + 40.0 + rng.exponential(60.0, n)
    e_pt, e_eta, e_phi = merge(e_lead, e_extra, extra_e)
    m_pt, m_eta, m_phi = merge(m_lead, m_extra, extra_m)
    j_pt, j_eta, j_phi = merge(jets, extra_j)
    if process == "fault_muon_scale":  # muon pT scale x3 in eta > 0, 0 < phi < pi/2 (toy)
        region = (m_eta > 0) & (m_phi > 0) & (m_phi < np.pi / 2)
        m_pt = ak.where(region, m_pt * 3.0, m_pt)
    elif process == "fault_hot_jet":  # a hot cell: fake 150-400 GeV jet at eta 1.5, phi 2
        hot = objs(np.ones(n, np.int64), 150, 0, 0.01)
        hot = (hot[0] + rng.uniform(0, 250, n), hot[1] + 1.5, np.full(n, 2.0), hot[3])
        j_pt, j_eta, j_phi = merge((ak.to_numpy(ak.flatten(j_pt)), ak.to_numpy(ak.flatten(
            j_eta)), ak.to_numpy(ak.flatten(j_phi)), ak.to_numpy(ak.num(j_pt))), hot)
    elif process == "fault_dead_jets":  # dead calorimeter: no jets with |eta| < 1.5 + MET
        keep = abs(j_eta) > 1.5
        lost = ak.to_numpy(ak.sum(ak.where(keep, 0.0, j_pt), axis=1))
        j_pt, j_eta, j_phi = j_pt[keep], j_eta[keep], j_phi[keep]
        met = met + 2.0 * lost
    idx = np.arange(n)
    return ak.Array({
        "run": np.full(n, 1, np.uint32), "luminosityBlock": (idx // 1000 + 1).astype(np.uint32),
        "event": (idx + 1).astype(np.uint64),
        "MET_pt": met.astype(np.float32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "Electron_pt": e_pt, "Electron_eta": e_eta, "Electron_phi": e_phi,
        "Muon_pt": m_pt, "Muon_eta": m_eta, "Muon_phi": m_phi,
        "Jet_pt": j_pt, "Jet_eta": j_eta, "Jet_phi": j_phi,
    })


# --------------------------------------------------------------------------- archived samples


def sample_runs(archive: str | Path = SAMPLES_DIR) -> dict[str, list[int]]:
    """Process name -> run numbers of an archive of generated samples.

    Read from each run's ``run.json`` card (``process`` key) and, failing that, from
    ``README.txt`` lines of the form ``<run> <process>`` / ``run_000123: process``.
    """
    from hotline.stream.archive import list_runs

    out: dict[str, list[int]] = {}
    root = Path(archive).expanduser()
    if not root.is_dir():
        return out
    for info in list_runs(root, scan=False):
        proc = info.card.get("process") or info.card.get("sample")
        if proc:
            out.setdefault(str(proc), []).append(info.run)
    readme = next((p for p in (root / "README.txt", root.parent / "README.txt") if p.is_file()),
                  None)
    if readme is not None:
        known = {r for rs in out.values() for r in rs}
        for line in readme.read_text().splitlines():
            m = re.match(r"\s*(?:run_)?0*(\d+)\s*[:=\->|\s]\s*[>]?\s*([A-Za-z0-9_+\-.]+)", line)
            if m and int(m.group(1)) not in known:
                out.setdefault(m.group(2), []).append(int(m.group(1)))
    return out


def features_from_runs(
    runs: list[int], archive: str | Path, spec: FeatureSpec = DEFAULT_SPEC,
    max_events: int | None = None,
) -> FeatureMatrix:
    """Features of archived runs (replay + extract); bad events dropped; at most ``max_events``.

    When the runs carry ``genWeight`` (and ``sample``), the result holds physical event
    weights (``models.weights.component_weights``: genWeight normalised to mean 1
    within each sample component); else ``weights`` is None.
    """
    from hotline.detectors.features import required_branches
    from hotline.models.weights import component_weights
    from hotline.stream.archive import find_run
    from hotline.stream.replay import ReplaySource

    files = []
    for r in runs:  # a run still being generated may hold no file yet: use the others
        try:
            files.extend(find_run(Path(archive).expanduser(), r).files)
        except SourceError as exc:
            log.warning("skipping run %s: %s", r, exc)
    if not files:
        raise ModelError(f"runs {runs} in {archive} hold no readable ROOT files yet")
    branches = required_branches(spec, set())
    for obj in spec.objects:
        for prefix in obj.fallbacks:
            branches.extend(obj.branches(prefix))
    xs, ms, gws, codes = [], [], [], []
    total = 0
    src = ReplaySource(files=files, branches=[*branches, "genWeight", "sample"],
                       step_size=50_000)
    for batch in src:
        fm = extract_features(batch.arrays, spec, where=batch.origin)
        good = ~fm.bad
        xs.append(fm.x[good])
        ms.append(fm.mask[good])
        fields = set(batch.arrays.fields)
        if "genWeight" in fields:
            gws.append(np.asarray(batch.arrays["genWeight"], np.float64)[good])
            codes.append(np.asarray(batch.arrays["sample"], np.int64)[good]
                         if "sample" in fields else np.zeros(int(good.sum()), np.int64))
        total += int(good.sum())
        if max_events and total >= max_events:
            break
    if not xs:
        raise ModelError(f"runs {runs} in {archive} gave no events"
                         + (f": {src.errors}" if src.errors else ""))
    x, m = np.concatenate(xs), np.concatenate(ms)
    n = min(len(x), max_events or len(x))
    x, m = x[:n], m[:n]
    weights = None
    if gws and len(gws) == len(xs):  # every file carried genWeight
        weights = component_weights(np.concatenate(codes)[:n], np.concatenate(gws)[:n])
    if weights is not None and np.allclose(weights, 1.0):
        weights = None
    return FeatureMatrix(x=x, mask=m, bad=np.zeros(len(x), bool), spec=spec, collections={},
                         weights=weights)


def load_sample(
    process: str, data: dict[str, Any], n: int, seed: int, spec: FeatureSpec = DEFAULT_SPEC
) -> FeatureMatrix:
    """Features of one process: from the archive (``data.source = "archive"``) or synthetic."""
    if data.get("source", "synthetic") == "synthetic":
        fm = extract_features(synthetic_events(process, n, seed), spec, where=process)
        keep = ~fm.bad
        return FeatureMatrix(fm.x[keep], fm.mask[keep], fm.bad[keep], spec, fm.collections)
    archive = data.get("archive", str(SAMPLES_DIR))
    runs = data.get("runs", {}).get(process) or sample_runs(archive).get(process)
    if not runs:
        raise ModelError(f"no runs of process '{process}' in sample archive {archive}; "
                         f"known: {', '.join(sorted(sample_runs(archive))) or 'none'}")
    return features_from_runs([int(r) for r in runs], archive, spec, max_events=n)
