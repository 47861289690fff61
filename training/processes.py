"""Registry of physics processes for sample production (Pythia8 + fast simulation).

A :class:`Process` names what ``hotline generate PROCESS`` produces: Pythia8
settings (a list of ``readString`` lines), the event filter (the ADC2021
single-lepton stream by default), an optional detector fault (a reco-level
transform from ``detectors.fastsim``) and, for mixtures, its components with
their fractions. Every process has a stable integer ``code`` written to the
``sample`` branch of generated files (the code -> name map is in ``run.json``).

Built-in processes (``register_builtins``):

* Standard Model, ADC2021 single-lepton stream composition:
  ``w_lnu`` (59.2 %), ``qcd`` (33.8 %), ``z_ll`` (6.7 %), ``ttbar`` (0.3 %),
  mixed by those fractions in ``sm_mix``.
* Signals of the ADC2021 benchmark: ``a_4l`` (A -> ZZ* -> 4l, m = 50 GeV),
  ``lq_btau`` (LQ -> b tau, m = 80 GeV), ``h0_tautau`` (h0 -> tau tau,
  m = 60 GeV), ``hplus_taunu`` (h+ -> tau nu, m = 60 GeV).
* Detector-fault variants of ``sm_mix``: ``sm_mix_muon_scale``,
  ``sm_mix_dead_calo``, ``sm_mix_hot_cell``, ``sm_mix_electron_phi``.

Users add a process without code in a TOML definition file (``training.process_files``:
the search path of ``hotline generate``, ``samples``, ``train`` and ``attribution``), or
from Python with ``register_process(Process(...))``; a duplicate name or code is refused.
The processes live in a :class:`hotline.registry.Registry` whose built-ins are loaded on
first use (before any lookup or registration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hotline.errors import ConfigError
from hotline.registry import Registry

#: settings every process gets (beams, quiet output); MPI is set by the generator
COMMON_SETTINGS: tuple[str, ...] = (
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Check:event = off",
)


@dataclass(frozen=True)
class Process:
    """One generated process (see the module docstring).

    ``pythia``: Pythia8 ``readString`` lines (besides ``COMMON_SETTINGS``).
    ``filter``: name of the event filter (``single_lepton`` or ``none``).
    ``fault``: name of a ``detectors.fastsim`` event fault applied after simulation.
    ``components``: for a mixture, ``(process name, fraction)`` pairs; then
    ``pythia`` is empty and each chunk holds a multinomial draw of the components.
    ``weighted``: events carry a non-trivial ``genWeight`` (biased sampling).
    ``unbiased``: for a weighted process, Pythia lines that switch its bias off (appended
    to ``pythia``): the process's data-like form, generated with every weight 1.
    ``max_weight``: for a weighted process, an upper bound of the raw Pythia weight (what
    accept-reject unweighting draws against; a weight above it is an error).
    ``expected_efficiency``: a first guess of the filter efficiency, used only to
    size generator batches.
    ``truth_type``: the object type (``detectors.spec`` type label: MET, electrons, muons,
    jets, photons, ...) in which the process's anomaly lives, what an attribution of its
    alerts should name; None: not one type (or a background). For a fault process the
    fault's ``faulty_type`` is used when none is given (``anomalous_type``).
    ``source``: the definition file of a process defined in TOML ("" for the built-ins).
    """

    name: str
    code: int
    description: str
    pythia: tuple[str, ...] = ()
    filter: str = "single_lepton"
    fault: str | None = None
    components: tuple[tuple[str, float], ...] = ()
    weighted: bool = False
    unbiased: tuple[str, ...] = ()
    max_weight: float | None = None
    expected_efficiency: float = 0.3
    kind: str = "background"  #: background, signal or fault
    tags: tuple[str, ...] = field(default_factory=tuple)
    truth_type: str | None = None
    source: str = ""

    def anomalous_type(self) -> str | None:
        """The truth object type of the anomaly: ``truth_type``, else the fault's type."""
        if self.truth_type:
            return self.truth_type
        if self.fault:
            from hotline.detectors.event_faults import get_event_fault

            return get_event_fault(self.fault).faulty_type
        return None

    @property
    def is_mixture(self) -> bool:
        return bool(self.components)

    def parts(self) -> list[Process]:
        """The processes that make the events: the components of a mixture, else itself."""
        return [get_process(c) for c, _ in self.components] or [self]

    @property
    def has_weights(self) -> bool:
        """Some of its events carry a non-trivial ``genWeight`` (unless made data-like)."""
        return any(p.weighted for p in self.parts())


_PROCESSES: Registry[Process] = Registry("process", lambda: _builtin_processes(), sort=False)

#: event filters a process can name (``single_lepton``: >= 1 reco e or mu, pT > 23 GeV)
FILTERS = ("single_lepton", "none")
#: process kinds
KINDS = ("background", "signal", "fault")

#: ADC2021 single-lepton stream composition (fractions of passing events)
SM_FRACTIONS: tuple[tuple[str, float], ...] = (
    ("w_lnu", 0.592), ("qcd", 0.338), ("z_ll", 0.067), ("ttbar", 0.003),
)


def _check(proc: Process, known: Mapping[str, Process]) -> None:
    """Refuse a sample code already used in ``known`` or a mixture of unknown components."""
    clash = [p.name for p in known.values() if p.code == proc.code]
    if clash:
        raise ConfigError(f"process '{proc.name}': sample code {proc.code} is used by {clash[0]}")
    if proc.filter not in FILTERS:
        raise ConfigError(f"process '{proc.name}': unknown filter '{proc.filter}'; "
                          f"available: {', '.join(FILTERS)}")
    for comp, frac in proc.components:
        if comp not in known:
            raise ConfigError(f"mixture '{proc.name}': component '{comp}' is not registered")
        if frac < 0:
            raise ConfigError(f"mixture '{proc.name}': negative fraction for '{comp}'")
    if proc.max_weight is not None and not proc.max_weight > 0:
        raise ConfigError(f"process '{proc.name}': max_weight must be > 0, got {proc.max_weight}")


def _registered() -> dict[str, Process]:
    return {name: _PROCESSES.get(name) for name in _PROCESSES.available()}


def register_process(proc: Process) -> Process:
    """Add ``proc`` to the registry; duplicate names or codes are refused."""
    if proc.name not in _PROCESSES:  # a duplicate name is refused by the registry itself
        _check(proc, _registered())
    return _PROCESSES.register(proc.name, proc)


def get_process(name: str) -> Process:
    """The registered process ``name`` (``ConfigError`` listing the known ones otherwise)."""
    if name not in _PROCESSES:
        raise ConfigError(f"unknown process '{name}' (known: "
                          f"{', '.join(available_processes())}; see 'hotline generate --list')")
    return _PROCESSES.get(name)


def available_processes() -> list[str]:
    return _PROCESSES.available()


def sample_codes() -> dict[int, str]:
    """Code -> process name for every registered process (the ``sample`` branch)."""
    return {p.code: p.name for p in _registered().values()}


def register_builtins() -> None:
    """Register the built-in processes (idempotent; lookups do it by themselves)."""
    _PROCESSES.available()


def _builtin_processes() -> list[tuple[str, Process]]:
    """The built-in processes, checked like user ones (codes unique, components known)."""
    from hotline.detectors.event_faults import available_event_faults, get_event_fault

    procs: dict[str, Process] = {}

    def add(proc: Process) -> None:
        if proc.name in procs:
            raise ConfigError(f"process '{proc.name}' is already registered")
        _check(proc, procs)
        procs[proc.name] = proc

    lep_w = ("24:onMode = off", "24:onIfAny = 11 13 15")
    add(Process(
        "w_lnu", 1,
        "W -> l nu (l = e, mu, tau) via f fbar' -> W (WeakSingleBoson:ffbar2W); "
        "59.2 % of the single-lepton stream.",
        pythia=("WeakSingleBoson:ffbar2W = on", *lep_w), expected_efficiency=0.35,
        tags=("sm",)))
    add(Process(
        "qcd", 2,
        "QCD multijet, made affordable. BIAS: only heavy-flavour pair production "
        "(HardQCD:hardbbbar, HardQCD:hardccbar; no flavour excitation, gluon splitting or "
        "light-flavour jets, hence no leptons from pi/K decays in flight and no jets faking "
        "leptons), with a pTHat floor of 20 GeV and pTHat sampling biased by "
        "(pTHat/20 GeV)^3 (PhaseSpace:bias2Selection): events carry genWeight = the inverse "
        "bias, so weighted distributions are unbiased above the floor but the unweighted "
        "sample is harder than real QCD. Leptons are from semileptonic b/c decays, mostly "
        "non-isolated. 33.8 % of the single-lepton stream. DATA-LIKE (--data-like): generated "
        "without the bias (PhaseSpace:bias2Selection = off), every genWeight 1; ~0.25 % of "
        "generated events pass the filter (~0.4 CPU s per passing event).",
        pythia=("HardQCD:hardbbbar = on", "HardQCD:hardccbar = on",
                "PhaseSpace:pTHatMin = 20.", "PhaseSpace:bias2Selection = on",
                "PhaseSpace:bias2SelectionPow = 3.", "PhaseSpace:bias2SelectionRef = 20."),
        weighted=True, unbiased=("PhaseSpace:bias2Selection = off",),
        # raw weight (pTHatRef / pTHat)^3 with pTHatRef = pTHatMin: at most 1
        max_weight=1.0, expected_efficiency=0.04, tags=("sm",)))
    add(Process(
        "z_ll", 3,
        "Z/gamma* -> l l (l = e, mu, tau), m(ll) > 50 GeV (WeakSingleBoson:ffbar2gmZ); "
        "6.7 % of the single-lepton stream. SPEED/FIDELITY: tau decays are isotropic "
        "(TauDecays:mode = 0), i.e. tau polarisation and tau-tau spin correlations are "
        "neglected: Pythia's Z/gamma* -> tau tau helicity treatment costs ~30x the rest of "
        "the event (Z 380 -> 2,000+ generated events/s); it only reshapes the momentum "
        "sharing in tau decays, ~10 % of passing Z events.",
        pythia=("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11 13 15",
                "PhaseSpace:mHatMin = 50.", "TauDecays:mode = 0"), expected_efficiency=0.5,
        tags=("sm",)))
    add(Process(
        "ttbar", 4,
        "t tbar pair production (Top:gg2ttbar, Top:qqbar2ttbar), all decays; "
        "0.3 % of the single-lepton stream.",
        pythia=("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"), expected_efficiency=0.4,
        tags=("sm",)))
    add(Process(
        "sm_mix", 5,
        "Standard Model mixture of the ADC2021 single-lepton stream: w_lnu 59.2 %, qcd 33.8 %, "
        "z_ll 6.7 %, ttbar 0.3 % of passing events (multinomial per chunk, shuffled).",
        components=SM_FRACTIONS, tags=("sm",)))
    add(Process(
        "a_4l", 10,
        "Signal: neutral scalar A (m = 50 GeV) from g g -> A, A -> Z Z* -> 4 l (l = e, mu).",
        pythia=("Higgs:useBSM = on", "HiggsBSM:gg2A3 = on", "HiggsA3:coup2Z = 1.0",
                "36:m0 = 50.", "36:onMode = off", "36:onIfMatch = 23 23", "23:onMode = off",
                "23:onIfAny = 11 13"), expected_efficiency=0.5, kind="signal"))
    # truth types of the ADC2021 four (issue 16): a_4l's anomaly spans electrons and muons
    # (no single type); the other three live in taus, a type the ADC2021 layout does not
    # have (a tau is a jet or a lepton there), so attribution cannot name it
    add(Process(
        "lq_btau", 11,
        "Signal: scalar leptoquark (m = 80 GeV), pair and single production "
        "(LeptoQuark:all), LQ -> b tau.",
        pythia=("LeptoQuark:all = on", "42:m0 = 80.", "42:0:products = 5 -15"),
        expected_efficiency=0.15, kind="signal", truth_type="taus"))
    add(Process(
        "h0_tautau", 12,
        "Signal: neutral scalar h0 (m = 60 GeV) from g g -> h0 (HiggsSM:gg2H, mass moved to "
        "60 GeV), h0 -> tau tau.",
        pythia=("HiggsSM:gg2H = on", "25:m0 = 60.", "25:onMode = off",
                "25:onIfMatch = 15 -15"), expected_efficiency=0.1, kind="signal",
        truth_type="taus"))
    add(Process(
        "hplus_taunu", 13,
        "Signal: charged scalar h+- (m = 60 GeV) from f fbar' -> h+- (HiggsBSM:ffbar2H+-), "
        "h+- -> tau nu.",
        pythia=("Higgs:useBSM = on", "HiggsBSM:ffbar2H+- = on", "37:m0 = 60.",
                "37:onMode = off", "37:onIfAny = 15"), expected_efficiency=0.1, kind="signal",
        truth_type="taus"))
    for fault in available_event_faults():
        f = get_event_fault(fault)
        add(Process(
            f"sm_mix_{fault}", 20 + f.code,
            f"Standard Model mixture (as sm_mix) seen by a faulty detector: {f.description}.",
            components=SM_FRACTIONS, fault=fault, kind="fault", tags=("sm", "fault")))
    return list(procs.items())
