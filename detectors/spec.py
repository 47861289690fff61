"""The event feature spec: which physics objects become the fixed-length vector.

The default is the layout of the 2021 LHC anomaly-detection challenge (ADC2021):
MET + 4 electrons + 4 muons + 10 jets, each (pT, eta, phi), pT-ordered and
zero-padded -> 19 objects x 3 = 57 features. The spec is data: a list of
``ObjectSpec`` (collection name in the NanoAOD file, multiplicity, kinematic
cuts), serialisable to/from a dict (stored in every model card) and TOML.
Other layouts (photons, taus, more jets) are configuration, not code;
``PHOTON_SPEC`` (``adc2021_photons``: + 4 photons, 69 features) is the software model's
(``named_spec``).
``FeatureSpec.label_for(collection)`` gives the short object label (``pho`` for
``Photon``) used in alert payloads for collections inside or outside the spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotline.config import read_toml
from hotline.errors import ConfigError

FIELDS = ("pt", "eta", "phi")

#: short object labels of NanoAOD collections (alert payloads, event displays); a spec's own
#: object names win for the collections it holds, unknown collections use their name in lower case
COLLECTION_LABELS = {"MET": "met", "PuppiMET": "met", "PFMET": "met", "Electron": "e",
                     "Muon": "mu", "Jet": "j", "Photon": "pho", "Tau": "tau", "FatJet": "fj"}


@dataclass(frozen=True)
class ObjectSpec:
    """One object type of the feature vector.

    ``collection`` is the NanoAOD branch prefix (``Electron`` -> ``Electron_pt``...).
    ``scalar`` objects (MET) have one value per event (``MET_pt``, ``MET_phi``; eta is 0).
    ``fallbacks`` are alternative prefixes tried in order when ``collection`` is
    absent from a file (e.g. ``PuppiMET`` for files without ``MET_pt``).
    """

    name: str  #: short label used in feature names: met, e, mu, j, ...
    type: str  #: object type for per-type grouping: MET, electrons, muons, jets, ...
    collection: str
    count: int = 1
    scalar: bool = False
    min_pt: float = 0.0
    max_abs_eta: float | None = None
    fallbacks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"feature spec object '{self.name}': count must be >= 1")
        if self.scalar and self.count != 1:
            raise ConfigError(f"feature spec object '{self.name}': a scalar object has count 1")

    def branches(self, prefix: str | None = None) -> list[str]:
        """Branch names this object reads for a given collection prefix."""
        p = prefix or self.collection
        if self.scalar:
            return [f"{p}_pt", f"{p}_phi"]
        return [f"{p}_pt", f"{p}_eta", f"{p}_phi"]

    def labels(self) -> list[str]:
        """Per-slot labels: met, or e1..e4."""
        if self.count == 1 and self.scalar:
            return [self.name]
        return [f"{self.name}{i + 1}" for i in range(self.count)]


@dataclass(frozen=True)
class FeatureSpec:
    """An ordered list of objects -> feature vector of length sum(count) * 3."""

    name: str
    objects: tuple[ObjectSpec, ...] = field(default_factory=tuple)

    @property
    def n_objects(self) -> int:
        return sum(o.count for o in self.objects)

    @property
    def n_features(self) -> int:
        return self.n_objects * len(FIELDS)

    @property
    def object_labels(self) -> list[str]:
        """met, e1..e4, mu1..mu4, j1..j10 for the default spec."""
        return [lab for o in self.objects for lab in o.labels()]

    @property
    def feature_names(self) -> list[str]:
        return [f"{lab}_{f}" for lab in self.object_labels for f in FIELDS]

    @property
    def object_types(self) -> list[str]:
        """Distinct object types in order: MET, electrons, muons, jets."""
        seen: list[str] = []
        for o in self.objects:
            if o.type not in seen:
                seen.append(o.type)
        return seen

    def object_type_index(self) -> list[int]:
        """For each object slot, the index of its type in ``object_types``."""
        types = self.object_types
        return [types.index(o.type) for o in self.objects for _ in range(o.count)]

    def object_for(self, collection: str) -> ObjectSpec | None:
        """The spec object reading ``collection`` (as its collection or a fallback), if any."""
        for o in self.objects:
            if collection == o.collection or collection in o.fallbacks:
                return o
        return None

    def label_for(self, collection: str) -> str:
        """Short object label of ``collection``: the spec object's name, else a known label."""
        obj = self.object_for(collection)
        if obj is not None:
            return obj.name
        return COLLECTION_LABELS.get(collection, collection.lower())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "objects": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(o).items()}
                for o in self.objects
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        try:
            objs = tuple(
                ObjectSpec(**{**o, "fallbacks": tuple(o.get("fallbacks", ()))})
                for o in data["objects"]
            )
            return cls(name=str(data["name"]), objects=objs)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"invalid feature spec: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> FeatureSpec:
        return cls.from_dict(read_toml(path, "feature spec file"))


#: ADC2021 layout. Cuts follow the challenge's object definitions
#: (electrons pT > 3 GeV |eta| < 3, muons pT > 3 GeV |eta| < 2.1, jets pT > 15 GeV |eta| < 4).
DEFAULT_SPEC = FeatureSpec(
    name="adc2021",
    objects=(
        ObjectSpec("met", "MET", "MET", 1, scalar=True, fallbacks=("PuppiMET", "PFMET")),
        ObjectSpec("e", "electrons", "Electron", 4, min_pt=3.0, max_abs_eta=3.0),
        ObjectSpec("mu", "muons", "Muon", 4, min_pt=3.0, max_abs_eta=2.1),
        ObjectSpec("j", "jets", "Jet", 10, min_pt=15.0, max_abs_eta=4.0),
    ),
)

#: The software model's layout: ADC2021 plus up to 4 isolated photons (pT > 10 GeV,
#: |eta| < 2.5): diphoton and photon + MET anomalies have an object type of their own
#: (in the 57-feature layout a photon is only missing energy). The L1 model and every
#: comparison with ADC2021 keep ``DEFAULT_SPEC``.
PHOTON_SPEC = FeatureSpec(
    name="adc2021_photons",
    objects=(
        *DEFAULT_SPEC.objects[:3],
        ObjectSpec("pho", "photons", "Photon", 4, min_pt=10.0, max_abs_eta=2.5),
        DEFAULT_SPEC.objects[3],
    ),
)

#: the named layouts a training configuration may give as ``[data] spec``
NAMED_SPECS = {s.name: s for s in (DEFAULT_SPEC, PHOTON_SPEC)}


def named_spec(name: str | None) -> FeatureSpec:
    """The layout called ``name`` (None: ``DEFAULT_SPEC``); ``ConfigError`` listing the
    named layouts otherwise."""
    if name is None:
        return DEFAULT_SPEC
    if name not in NAMED_SPECS:
        raise ConfigError(f"unknown feature spec '{name}'; named specs: "
                          f"{', '.join(NAMED_SPECS)}")
    return NAMED_SPECS[name]
