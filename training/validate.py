"""Validation of generated samples: key distributions per process as PNG plots.

Owns ``hotline generate --validate``: for each process, generate a small sample
in memory (same code path as production, one chunk), then plot with mplhep's
CMS style, one PNG per observable with all processes overlaid (unit area):
leading lepton pT, dilepton mass of the leading opposite-charge same-flavour pair
(Z peak), W transverse mass (leading lepton + MET), MET, jet multiplicity, HT
(scalar sum of jet pT). Biased samples (QCD) are drawn with their ``genWeight``.
Returns a rich table of filter efficiencies and speeds (passing events per CPU
second, fast-simulation events per CPU second), also written as ``summary.json``.

Plot functions take reconstructed arrays, so they also work on archived runs
(``plot_arrays``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.fastsim import FastSimParams

log = logging.getLogger(__name__)


def observables(arrays: ak.Array) -> dict[str, np.ndarray]:
    """Per-event observables (NaN where undefined) of NanoAOD-style arrays."""
    lep_pt = ak.concatenate([arrays.Electron_pt, arrays.Muon_pt], axis=1)
    lep_phi = ak.concatenate([arrays.Electron_phi, arrays.Muon_phi], axis=1)
    order = ak.argsort(lep_pt, axis=1, ascending=False)
    lpt = ak.to_numpy(ak.fill_none(ak.firsts(lep_pt[order]), np.nan))
    lphi = ak.to_numpy(ak.fill_none(ak.firsts(lep_phi[order]), np.nan))
    met = ak.to_numpy(arrays.MET_pt).astype(np.float64)
    mphi = ak.to_numpy(arrays.MET_phi).astype(np.float64)
    mt = np.sqrt(np.maximum(2 * lpt * met * (1 - np.cos(lphi - mphi)), 0.0))
    mll = np.full(len(arrays), np.nan)
    for coll, mass in (("Electron", 0.000511), ("Muon", 0.1057)):
        pt, eta, phi = arrays[f"{coll}_pt"], arrays[f"{coll}_eta"], arrays[f"{coll}_phi"]
        q = arrays[f"{coll}_charge"] if f"{coll}_charge" in arrays.fields else None
        two = ak.num(pt, axis=1) >= 2
        pad = [ak.to_numpy(ak.fill_none(ak.pad_none(a, 2, axis=1, clip=True), 0.0))
               for a in (pt, eta, phi)]
        (pt1, pt2), (e1, e2), (p1, p2) = [(a[:, 0], a[:, 1]) for a in pad]
        m2 = 2 * pt1 * pt2 * (np.cosh(e1 - e2) - np.cos(p1 - p2)) + 2 * mass**2
        ok = ak.to_numpy(two)
        if q is not None:
            qq = ak.to_numpy(ak.fill_none(ak.pad_none(q, 2, axis=1, clip=True), 0))
            ok = ok & (qq[:, 0] * qq[:, 1] < 0)
        m = np.sqrt(np.maximum(m2, 0))
        better = ok & (np.isnan(mll) | (np.abs(m - 91.19) < np.abs(mll - 91.19)))
        mll = np.where(better, m, mll)
    return {
        "lepton_pt": lpt,
        "mll": mll,
        "mt_w": np.where(np.isfinite(lpt), mt, np.nan),
        "met": met,
        "n_jets": ak.to_numpy(ak.num(arrays.Jet_pt, axis=1)).astype(np.float64),
        "ht": ak.to_numpy(ak.sum(arrays.Jet_pt, axis=1)).astype(np.float64),
    }


PLOTS: dict[str, tuple[str, np.ndarray, bool]] = {
    "lepton_pt": ("leading lepton $p_T$ [GeV]", np.linspace(0, 200, 41), True),
    "mll": ("dilepton mass (OS, SF) [GeV]", np.linspace(0, 200, 51), False),
    "mt_w": ("W transverse mass $m_T$ [GeV]", np.linspace(0, 200, 41), False),
    "met": ("MET [GeV]", np.linspace(0, 300, 41), True),
    "n_jets": ("jet multiplicity", np.arange(-0.5, 12.5, 1.0), True),
    "ht": ("$H_T$ [GeV]", np.linspace(0, 800, 41), True),
}


def plot_arrays(samples: Mapping[str, ak.Array], out: str | Path) -> list[Path]:
    """One PNG per observable in ``out``, every sample overlaid (unit area, genWeight)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    hep.style.use("CMS")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    obs = {name: observables(a) for name, a in samples.items()}
    wts = {name: (ak.to_numpy(a.genWeight) if "genWeight" in a.fields else np.ones(len(a)))
           for name, a in samples.items()}
    files = []
    for key, (label, bins, logy) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(10, 8))
        for name in samples:
            v = obs[name][key]
            ok = np.isfinite(v)
            if not ok.any():
                continue
            h, edges = np.histogram(np.clip(v[ok], bins[0], bins[-1] - 1e-9), bins=bins,
                                    weights=wts[name][ok])
            tot = h.sum()
            if tot > 0:
                hep.histplot(h / tot, edges, ax=ax, label=f"{name} ({ok.sum()})")
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of events")
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize=13, ncol=2)
        hep.label.exp_label(exp="Hotline", llabel="Simulation", rlabel="13 TeV, fast sim",
                            ax=ax)
        path = out / f"{key}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        files.append(path)
    return files


def validate(processes: Sequence[str], events: int = 1000, seed: int = 1,
             out: str | Path = "validation", params: FastSimParams | None = None,
             mpi: bool = False, progress: bool = True) -> Any:
    """Generate ``events`` per process in memory, plot, and return a rich table."""
    from rich.progress import track
    from rich.table import Table

    from hotline.training.generate import GenerateRequest, generate_chunk
    from hotline.training.processes import get_process

    samples: dict[str, ak.Array] = {}
    rows: dict[str, Any] = {}
    it = track(processes, description="validating") if progress else processes
    for name in it:
        get_process(name)
        req = GenerateRequest(name, events, seed, Path("run_000000"), chunk_size=events, mpi=mpi)
        arrays, stats = generate_chunk(req, 0, params)
        samples[name] = arrays
        rows[name] = {"summary": stats.summary(), "cpu_total": stats.cpu_total,
                      "events": len(arrays)}
    files = plot_arrays(samples, out)
    (Path(out) / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    t = Table(title=f"sample validation ({events} passing events per process, "
                    f"MPI {'on' if mpi else 'off'})")
    for c in ("process", "component", "generated", "passed", "filter eff.", "pass ev/s/core",
              "fastsim ev/s"):
        t.add_column(c, justify="left" if c in ("process", "component") else "right")
    for name, row in rows.items():
        for comp, s in row["summary"].items():
            t.add_row(name, comp, str(s["generated"]), str(s["passed"]),
                      f"{s['filter_efficiency']:.4f}", str(s["passing_events_per_cpu_s"]),
                      str(s["fastsim_events_per_cpu_s"]))
    log.info("validation plots: %s", ", ".join(str(f) for f in files))
    return t
