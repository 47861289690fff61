"""Fast detector simulation: generator particles -> reconstructed NanoAOD-style objects.

Owns the parametric detector response used for Hotline's in-house samples (the
Delphes-like step of the ADC2021 recipe), vectorised over whole batches of
events with awkward arrays (no per-event Python loop):

* **electrons, muons, photons**: acceptance (|eta|), pT threshold, efficiency
  (plateau per barrel/endcap with a linear turn-on), relative isolation in a
  cone (sum of visible particle pT around the candidate / its pT), Gaussian
  energy/momentum resolution. Isolated candidates become reconstructed objects
  and are removed from the jet inputs; non-isolated leptons (e.g. from b
  decays inside jets) are reconstructed only above ``nonisolated_min_pt`` and
  stay jet constituents (photons must be isolated). Each lepton carries its
  relative isolation (``*_pfRelIso03_all``).
* **jets**: anti-kT (R = 0.4) with fastjet's awkward interface on all visible
  final-state particles within the calorimeter acceptance, *minus* the
  reconstructed leptons and photons; jet pT is smeared with a noise /
  stochastic / constant resolution.
* **MET**: minus the vector sum of visible particles within |eta| < 4.9, where
  reconstructed objects enter with their smeared momenta, plus a Gaussian
  unclustered term sigma = a (+) b sqrt(sum ET) per component.
* **pileup** (optional, ``pileup.mu > 0``): parametric soft particles
  (Poisson(mu) interactions x ``particles_per_interaction`` particles with an
  exponential pT spectrum, flat in eta/phi) added to jet and MET inputs; no
  Pythia minimum-bias events are generated, which keeps the simulation cheap.

All parameters live in :class:`FastSimParams` (defaults in
``detectors/fastsim_params.toml``), never as magic numbers in code.

Detector faults applied to reconstructed events are ``detectors.event_faults``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.config import package_path, read_toml
from hotline.errors import ConfigError

PARAMS_FILE = package_path("hotline.detectors", "fastsim_params.toml")

#: invisible particle ids: neutrinos, SUSY LSP / gravitino, dark-matter candidates
INVISIBLE_IDS = (12, 14, 16, 1000022, 1000039, 51, 52, 53)

__all__ = [
    "ElectronParams", "MuonParams", "PhotonParams", "JetParams", "MetParams", "PileupParams",
    "TriggerParams", "FastSimParams", "simulate", "single_lepton_mask", "truth_prefilter",
    "wrap_phi",
]


# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ElectronParams:
    """Electron response: acceptance, threshold, efficiency, ECAL resolution, isolation."""

    max_abs_eta: float = 2.5  #: tracker acceptance
    min_pt: float = 3.0  #: reconstruction threshold [GeV]
    eff_barrel: float = 0.95  #: plateau efficiency, |eta| < 1.5
    eff_endcap: float = 0.85  #: plateau efficiency, |eta| >= 1.5
    turn_on_pt: float = 10.0  #: efficiency linear from 0.5*plateau at min_pt to plateau here
    res_stochastic: float = 0.05  #: sigma(E)/E stochastic term [sqrt(GeV)]
    res_constant: float = 0.01  #: sigma(E)/E constant term
    iso_cone: float = 0.3  #: isolation cone Delta R
    iso_max: float = 0.25  #: relative isolation below which the electron is isolated
    #: non-isolated electrons (inside jets) are reconstructed above this pT, like an L1 e/gamma
    #: candidate without isolation; they stay jet constituents
    nonisolated_min_pt: float = 10.0


@dataclass(frozen=True)
class MuonParams:
    """Muon response: acceptance, threshold, efficiency, tracker resolution, isolation."""

    max_abs_eta: float = 2.4
    min_pt: float = 3.0
    eff_barrel: float = 0.97
    eff_endcap: float = 0.94
    turn_on_pt: float = 8.0
    res_linear: float = 1e-4  #: sigma(pT)/pT grows as res_linear * pT [1/GeV]
    res_constant: float = 0.01
    iso_cone: float = 0.3
    iso_max: float = 0.25
    nonisolated_min_pt: float = 10.0  #: as for electrons (L1 muons carry no isolation)


@dataclass(frozen=True)
class PhotonParams:
    """Photon response (isolated photons only; others are jet constituents)."""

    max_abs_eta: float = 2.5
    min_pt: float = 10.0
    eff: float = 0.90
    res_stochastic: float = 0.05
    res_constant: float = 0.01
    iso_cone: float = 0.3
    iso_max: float = 0.15


@dataclass(frozen=True)
class JetParams:
    """Anti-kT jets and their calorimeter response."""

    radius: float = 0.4
    min_pt: float = 15.0  #: reconstructed-jet threshold after smearing [GeV]
    max_abs_eta: float = 4.7  #: calorimeter acceptance (jets and jet inputs)
    cluster_min_pt: float = 10.0  #: particle-level jets kept before smearing [GeV]
    res_noise: float = 3.0  #: noise term [GeV]
    res_stochastic: float = 1.0  #: stochastic term [sqrt(GeV)]
    res_constant: float = 0.05
    res_forward_factor: float = 1.5  #: resolution x this for |eta| > 3


@dataclass(frozen=True)
class MetParams:
    """Missing transverse momentum."""

    max_abs_eta: float = 4.9  #: visible-particle acceptance
    res_a: float = 5.0  #: unclustered resolution per component [GeV]
    res_b: float = 0.5  #: ... (+) res_b * sqrt(sum ET) [sqrt(GeV)]


@dataclass(frozen=True)
class PileupParams:
    """Parametric pileup (soft particles), off by default."""

    mu: float = 0.0  #: mean number of pileup interactions per crossing
    particles_per_interaction: float = 60.0  #: within |eta| < met.max_abs_eta
    mean_pt: float = 0.6  #: exponential pT slope of pileup particles [GeV]


@dataclass(frozen=True)
class TriggerParams:
    """The ADC2021 single-lepton stream (one lepton definition for every process).

    The lepton is any reconstructed e or mu (isolated, or non-isolated above
    ``nonisolated_min_pt``): an L1-like trigger, which carries no isolation.
    """

    lepton_min_pt: float = 23.0  #: >= 1 reconstructed e or mu above this
    #: trigger muons within |eta| < 2.1 (as the L1 single-muon seed and the ADC2021 spec)
    muon_max_abs_eta: float = 2.1
    truth_prefilter_pt: float = 19.0  #: generator e/mu pT needed to run the simulation at all


@dataclass(frozen=True)
class FastSimParams:
    """All fast-simulation parameters, grouped per object (see the module docstring)."""

    electron: ElectronParams = field(default_factory=ElectronParams)
    muon: MuonParams = field(default_factory=MuonParams)
    photon: PhotonParams = field(default_factory=PhotonParams)
    jet: JetParams = field(default_factory=JetParams)
    met: MetParams = field(default_factory=MetParams)
    pileup: PileupParams = field(default_factory=PileupParams)
    trigger: TriggerParams = field(default_factory=TriggerParams)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FastSimParams:
        defaults = cls()  # every section is a frozen dataclass with all defaults
        kinds: dict[str, Any] = {f.name: getattr(defaults, f.name) for f in fields(cls)}
        parts: dict[str, Any] = {}
        for section, values in data.items():
            if section not in kinds:
                raise ConfigError(f"fast-sim parameters: unknown section [{section}] "
                                  f"(known: {', '.join(kinds)})")
            proto = kinds[section]
            known = {f.name for f in fields(proto)}
            bad = set(values) - known
            if bad:
                raise ConfigError(f"fast-sim parameters [{section}]: unknown key(s) "
                                  f"{', '.join(sorted(bad))} (known: {', '.join(sorted(known))})")
            parts[section] = replace(proto, **{k: float(v) for k, v in values.items()})
        return cls(**parts)

    @classmethod
    def from_toml(cls, path: str | Path = PARAMS_FILE) -> FastSimParams:
        return cls.from_dict(read_toml(path, "fast-sim parameter file"))

    def with_pileup(self, mu: float) -> FastSimParams:
        return replace(self, pileup=replace(self.pileup, mu=float(mu)))


# ----------------------------------------------------------------------------- helpers
def wrap_phi(phi: Any) -> Any:
    """Wrap angles into [-pi, pi)."""
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _kinematics(px: Any, py: Any, pz: Any) -> tuple[Any, Any, Any]:
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    return pt, eta, phi


def _jagged_normal(rng: np.random.Generator, like: ak.Array) -> ak.Array:
    counts = ak.num(like, axis=1)
    return ak.unflatten(rng.standard_normal(int(ak.sum(counts))), counts)


def _jagged_uniform(rng: np.random.Generator, like: ak.Array) -> ak.Array:
    counts = ak.num(like, axis=1)
    return ak.unflatten(rng.random(int(ak.sum(counts))), counts)


def _scatter(mask_on_subset: ak.Array, subset_index: ak.Array, full_counts: Any) -> ak.Array:
    """Put a boolean defined on a subset (given by local indices) back onto the full lists."""
    total = int(np.sum(full_counts))
    full_counts = np.asarray(full_counts, dtype=np.int64)
    offsets = np.cumsum(full_counts) - full_counts
    sub_counts = ak.to_numpy(ak.num(subset_index, axis=1))
    pos = np.repeat(offsets, sub_counts) + ak.to_numpy(ak.flatten(subset_index))
    flat = np.zeros(total, dtype=bool)
    flat[pos[ak.to_numpy(ak.flatten(mask_on_subset))]] = True
    return ak.unflatten(flat, full_counts)


def _rel_isolation(cand: ak.Array, parts: ak.Array, cone: float) -> ak.Array:
    """Sum pT of ``parts`` within ``cone`` of each candidate (minus itself) / candidate pT."""
    pairs = ak.cartesian([cand, parts], axis=1, nested=True)
    c, p = ak.unzip(pairs)
    deta = c.eta - p.eta
    dphi = wrap_phi(c.phi - p.phi)
    inside = deta * deta + dphi * dphi < cone * cone
    s = ak.sum(ak.where(inside, p.pt, 0.0), axis=2) - cand.pt  # the candidate is in its cone
    return np.maximum(s, 0.0) / cand.pt


def _turn_on(pt: Any, plateau: Any, min_pt: float, turn_on_pt: float) -> Any:
    frac = np.minimum(np.maximum((pt - min_pt) / max(turn_on_pt - min_pt, 1e-9), 0.0), 1.0)
    return plateau * (0.5 + 0.5 * frac)


def _pileup_particles(rng: np.random.Generator, n: int, pu: PileupParams,
                      max_eta: float) -> ak.Array:
    counts = rng.poisson(pu.mu * pu.particles_per_interaction, n) if pu.mu > 0 else np.zeros(
        n, np.int64)
    tot = int(counts.sum())
    pt = rng.exponential(pu.mean_pt, tot)
    eta = rng.uniform(-max_eta, max_eta, tot)
    phi = rng.uniform(-np.pi, np.pi, tot)
    rec = ak.zip({"pt": pt, "eta": eta, "phi": phi, "px": pt * np.cos(phi),
                  "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)})
    return ak.unflatten(rec, counts)


# ----------------------------------------------------------------------------- simulation
def final_state(prt: ak.Array) -> ak.Array:
    """Final-state particles of a Pythia ``nextBatch`` particle array as flat records.

    Fields: id, px, py, pz, E, pt, eta, phi (float64), with ``status > 0``.
    """
    fs = prt[prt.status > 0]
    px, py, pz, e = fs.p.px, fs.p.py, fs.p.pz, fs.p.e
    pt, eta, phi = _kinematics(px, py, pz)
    return ak.zip({"id": fs.id, "px": px, "py": py, "pz": pz, "E": e,
                   "pt": pt, "eta": eta, "phi": phi})


def truth_prefilter(fs: ak.Array, min_pt: float) -> np.ndarray:
    """Events with a generator-level e or mu above ``min_pt`` in the tracker acceptance.

    A cheap conservative pre-selection before the detector simulation: with
    ~1-2 % lepton resolution nothing below ``truth_prefilter_pt`` can pass the
    23 GeV trigger (checked in the unit tests).
    """
    aid = abs(fs.id)
    lep = ((aid == 11) | (aid == 13)) & (fs.pt > min_pt) & (abs(fs.eta) < 2.5)
    return ak.to_numpy(ak.any(lep, axis=1))


def _leptons(fs: ak.Array, visible: ak.Array, sel: ak.Array, rng: np.random.Generator,
             eff: Any, res: Callable[[Any], Any], cone: float, iso_max: float,
             nonisolated_min_pt: float | None = None) -> tuple[ak.Array, ak.Array]:
    """Candidates ``fs[sel]`` -> (reconstructed records, mask of isolated ones on ``fs``).

    Isolated candidates (relative isolation < ``iso_max``) are reconstructed and
    removed from the jet inputs. Non-isolated ones are reconstructed too when
    above ``nonisolated_min_pt`` (None: never) and stay jet constituents, as a
    muon inside a b jet is both a Muon and part of a Jet in NanoAOD.
    """
    idx = ak.local_index(fs, axis=1)[sel]
    cand = fs[sel]
    iso = _rel_isolation(cand, visible, cone)
    found = _jagged_uniform(rng, cand) < eff(cand)
    isolated = iso < iso_max
    scale = 1.0 + res(cand) * _jagged_normal(rng, cand)
    scale = np.maximum(scale, 0.05)
    pt = cand.pt * scale
    keep = found & isolated
    if nonisolated_min_pt is not None:
        keep = keep | (found & (pt > nonisolated_min_pt))
    # smearing of isolated objects corrects MET; non-isolated ones are inside jets already
    dscale = ak.where(isolated, scale - 1, 0.0)
    reco = ak.zip({"pt": pt, "eta": cand.eta, "phi": cand.phi,
                   "charge": -np.sign(cand.id), "iso": iso,
                   "dpx": cand.px * dscale, "dpy": cand.py * dscale})
    used = _scatter(found & isolated, idx, ak.to_numpy(ak.num(fs, axis=1)))
    return reco[keep], used


def simulate(fs: ak.Array, params: FastSimParams | None = None,
             rng: np.random.Generator | None = None) -> ak.Array:
    """Detector response for a batch of events' final-state particles (see ``final_state``).

    Returns one record per event with jagged ``Electron_{pt,eta,phi,charge}``,
    ``Muon_*``, ``Photon_{pt,eta,phi}``, ``Jet_{pt,eta,phi,mass}`` (pT-ordered)
    and flat ``MET_pt``, ``MET_phi`` (float32).
    """
    import fastjet

    p = params or FastSimParams()
    rng = rng or np.random.default_rng()
    n = len(fs)
    if n == 0:  # keep the output types: simulate one event with a soft pion and drop it
        one = {"id": 211, "px": 0.1, "py": 0.0, "pz": 0.0, "E": 0.2, "pt": 0.1, "eta": 0.0,
               "phi": 0.0}
        dummy = ak.Array([[{f: one.get(f, 0.0) for f in fs.fields}]])
        dummy = ak.zip({f: ak.values_astype(dummy[f], np.int32 if f == "id" else np.float64)
                        for f in fs.fields})
        return simulate(dummy, p, np.random.default_rng(0))[:0]
    aid = abs(fs.id)
    visible = ~(aid == INVISIBLE_IDS[0])
    for i in INVISIBLE_IDS[1:]:
        visible = visible & (aid != i)
    visible = visible & (abs(fs.eta) < p.met.max_abs_eta)
    vis = fs[visible]
    counts = ak.to_numpy(ak.num(fs, axis=1))

    ep, mp, gp = p.electron, p.muon, p.photon
    e_sel = (aid == 11) & (fs.pt > ep.min_pt) & (abs(fs.eta) < ep.max_abs_eta)
    ele, e_used = _leptons(
        fs, vis, e_sel, rng,
        eff=lambda c: _turn_on(c.pt, ak.where(abs(c.eta) < 1.5, ep.eff_barrel, ep.eff_endcap),
                               ep.min_pt, ep.turn_on_pt),
        res=lambda c: np.hypot(ep.res_stochastic / np.sqrt(c.E), ep.res_constant),
        cone=ep.iso_cone, iso_max=ep.iso_max, nonisolated_min_pt=ep.nonisolated_min_pt)
    m_sel = (aid == 13) & (fs.pt > mp.min_pt) & (abs(fs.eta) < mp.max_abs_eta)
    muo, m_used = _leptons(
        fs, vis, m_sel, rng,
        eff=lambda c: _turn_on(c.pt, ak.where(abs(c.eta) < 1.2, mp.eff_barrel, mp.eff_endcap),
                               mp.min_pt, mp.turn_on_pt),
        res=lambda c: np.hypot(mp.res_linear * c.pt, mp.res_constant),
        cone=mp.iso_cone, iso_max=mp.iso_max, nonisolated_min_pt=mp.nonisolated_min_pt)
    g_sel = (aid == 22) & (fs.pt > gp.min_pt) & (abs(fs.eta) < gp.max_abs_eta)
    pho, g_used = _leptons(
        fs, vis, g_sel, rng, eff=lambda c: gp.eff,
        res=lambda c: np.hypot(gp.res_stochastic / np.sqrt(c.E), gp.res_constant),
        cone=gp.iso_cone, iso_max=gp.iso_max)
    # leptons/photons need a second pT threshold after smearing
    ele = ele[ele.pt > ep.min_pt]
    muo = muo[muo.pt > mp.min_pt]
    pho = pho[pho.pt > gp.min_pt]

    # ---- jets: visible calorimeter-acceptance particles minus reconstructed e/mu/gamma
    used = e_used | m_used | g_used
    jp = p.jet
    j_in = fs[visible & ~used & (abs(fs.eta) < jp.max_abs_eta)]
    pu_sum_px = np.zeros(n)
    pu_sum_py = np.zeros(n)
    pu_sumet = np.zeros(n)
    if p.pileup.mu > 0:
        pu = _pileup_particles(rng, n, p.pileup, p.met.max_abs_eta)
        pu_in = pu[abs(pu.eta) < jp.max_abs_eta]
        j_in = ak.concatenate([j_in[["px", "py", "pz", "E"]], pu_in[["px", "py", "pz", "E"]]],
                              axis=1)
        pu_sum_px = ak.to_numpy(ak.sum(pu.px, axis=1))
        pu_sum_py = ak.to_numpy(ak.sum(pu.py, axis=1))
        pu_sumet = ak.to_numpy(ak.sum(pu.pt, axis=1))
    jets = _cluster(j_in[["px", "py", "pz", "E"]], jp, fastjet)
    jres = np.sqrt((jp.res_noise / jets.pt) ** 2 + jp.res_stochastic ** 2 / jets.pt
                   + jp.res_constant ** 2)
    jres = ak.where(abs(jets.eta) > 3.0, jres * jp.res_forward_factor, jres)
    jscale = np.maximum(1.0 + jres * _jagged_normal(rng, jets), 0.0)
    jets = ak.zip({"pt": jets.pt * jscale, "eta": jets.eta, "phi": jets.phi,
                   "mass": jets.mass * jscale, "dpx": jets.px * (jscale - 1),
                   "dpy": jets.py * (jscale - 1)})
    jets = jets[(jets.pt > jp.min_pt) & (abs(jets.eta) < jp.max_abs_eta)]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]

    # ---- MET: visible sum with reconstructed objects at their smeared momenta
    mx = -ak.to_numpy(ak.sum(vis.px, axis=1)) - pu_sum_px
    my = -ak.to_numpy(ak.sum(vis.py, axis=1)) - pu_sum_py
    for obj in (ele, muo, pho, jets):
        mx = mx - ak.to_numpy(ak.sum(obj.dpx, axis=1))
        my = my - ak.to_numpy(ak.sum(obj.dpy, axis=1))
    sumet = ak.to_numpy(ak.sum(vis.pt, axis=1)) + pu_sumet
    sig = np.hypot(p.met.res_a, p.met.res_b * np.sqrt(sumet))
    mx = mx + sig * rng.standard_normal(n)
    my = my + sig * rng.standard_normal(n)

    def f32(a: Any) -> Any:
        return ak.values_astype(a, np.float32)

    out = {
        "Electron_pt": f32(ele.pt), "Electron_eta": f32(ele.eta), "Electron_phi": f32(ele.phi),
        "Electron_charge": ak.values_astype(ele.charge, np.int32),
        "Electron_pfRelIso03_all": f32(ele.iso),
        "Muon_pt": f32(muo.pt), "Muon_eta": f32(muo.eta), "Muon_phi": f32(muo.phi),
        "Muon_charge": ak.values_astype(muo.charge, np.int32),
        "Muon_pfRelIso03_all": f32(muo.iso),
        "Photon_pt": f32(pho.pt), "Photon_eta": f32(pho.eta), "Photon_phi": f32(pho.phi),
        "Jet_pt": f32(jets.pt), "Jet_eta": f32(jets.eta), "Jet_phi": f32(jets.phi),
        "Jet_mass": f32(jets.mass),
        "MET_pt": np.hypot(mx, my).astype(np.float32),
        "MET_phi": np.arctan2(my, mx).astype(np.float32),
    }
    for k in ("Electron", "Muon", "Photon"):  # pT order
        order = ak.argsort(out[f"{k}_pt"], axis=1, ascending=False)
        for name in [b for b in out if b.startswith(k + "_")]:
            out[name] = out[name][order]
    del counts
    return ak.Array(out)


def _cluster(inputs: ak.Array, jp: JetParams, fastjet: Any) -> ak.Array:
    """anti-kT jets of jagged px/py/pz/E records (all events at once) with derived pt/eta/phi."""
    n = len(inputs)
    if n == 0 or int(ak.sum(ak.num(inputs, axis=1))) == 0:
        empty = ak.Array([[]] * n) if n else ak.Array([])
        zero = ak.values_astype(empty, np.float64)
        return ak.zip({"px": zero, "py": zero, "pz": zero, "E": zero, "pt": zero, "eta": zero,
                       "phi": zero, "mass": zero})
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, jp.radius)
    cs = fastjet.ClusterSequence(inputs, jetdef)
    j = cs.inclusive_jets(jp.cluster_min_pt)
    px, py, pz, e = j.px, j.py, j.pz, j.E
    pt, eta, phi = _kinematics(px, py, pz)
    mass = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))
    return ak.zip({"px": px, "py": py, "pz": pz, "E": e, "pt": pt, "eta": eta, "phi": phi,
                   "mass": mass})


def single_lepton_mask(reco: ak.Array, params: FastSimParams | None = None) -> np.ndarray:
    """The ADC2021 single-lepton stream: >= 1 reconstructed e or mu with pT > 23 GeV
    (muons within |eta| < ``trigger.muon_max_abs_eta``)."""
    trig = (params or FastSimParams()).trigger
    cut = trig.lepton_min_pt
    mu = (reco.Muon_pt > cut) & (abs(reco.Muon_eta) < trig.muon_max_abs_eta)
    return ak.to_numpy(ak.any(reco.Electron_pt > cut, axis=1) | ak.any(mu, axis=1))
