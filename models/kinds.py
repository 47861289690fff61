"""Model kinds: the registry of what each kind of anomaly model is and which code handles it.

A model card's ``kind`` ("ae", "vae", "ensemble", "conv-ae") names a :class:`ModelKind`
registered here, the way hls4ml registers its backends and their layer handlers. Each kind
registers four handlers:

``build``     ``(architecture) -> torch module``: the network of a card's ``architecture``
``export``    ``(module, path, **context) -> Path``: the ONNX scoring graph that serving runs
              (event kinds take ``normaliser``, ``spec`` and ``name``; see ``models.export``)
``score``     ``(RegisteredModel, threads) -> ModelScorer``: the serving scorer (onnxruntime,
              the interface of ``models.interface``)
``firmware``  ``(card or None) -> FirmwarePlan``: the score network hls4ml converts, or the
              reason why a registered model of the kind is not built as firmware

Handlers are references -- ``"module:attr"`` strings (``attr`` may be dotted, as in
``"pkg.mod:Class.method"``) resolved on first use -- or plain callables. Importing this
module, ``models.registry`` or a scorer therefore never imports torch: a kind's torch code
(``models.nets``, ``models.export``, ``models.conv_ae_net``) loads only when a handler that
needs it is called. An unknown kind is a one-line ``ModelError`` listing the registered ones.

Adding a kind is one module holding its handlers plus one registration::

    register_model_kind(ModelKind(
        "my-ae", "my autoencoder", "event", build="mypkg.my_ae:build",
        export="mypkg.my_ae:export", score="hotline.models.scorer:Scorer",
        firmware="mypkg.my_ae:firmware"))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.errors import ModelError
from hotline.models.interface import ModelScorer
from hotline.registry import Registry

#: a handler: a callable, or a ``"module:attr"`` reference to one (resolved on first use)
Handler = str | Callable[..., Any]

DEFAULT_KIND = "ae"  #: the kind of an architecture that names none
FAMILIES = ("event", "occupancy")  #: what a kind's models score: events or occupancy maps

_RESOLVED: dict[str, Any] = {}


def resolve(ref: Handler) -> Any:
    """The object a handler reference names (``"package.module:attr.sub"``), imported on use."""
    if not isinstance(ref, str):
        return ref
    if ref in _RESOLVED:
        return _RESOLVED[ref]
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ModelError(f"handler reference {ref!r} is not of the form 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        hint = (" (the torch side needs the 'train' or 'firmware' extra: "
                "pip install 'hotline[train]')" if exc.name in ("torch", "onnx") else "")
        raise ModelError(f"handler {ref!r} cannot be imported: {exc}{hint}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModelError(f"handler {ref!r}: module {module} has no '{attr}'") from None
    _RESOLVED[ref] = obj
    return obj


@dataclass(frozen=True)
class FirmwarePlan:
    """What firmware does with a model of one kind (what a kind's ``firmware`` handler returns).

    ``score_net(net, input_shape, masked)`` wraps the kind's torch module into the score
    network hls4ml converts (firmware inputs -> [n, 1] score; ``masked``: the feature mask
    is a second input). ``refused`` says why a *registered* model of the kind is not built
    (its serving score is not what firmware would compute, or it is too big); the score
    network may still exist for conversion studies (the conv-AE stand-ins).
    """

    score_net: Callable[..., Any] | None = None
    serving_score: str = "recon"  #: the serving score the firmware block reproduces
    masked: bool = False  #: registered models: the block also takes the 0/1 feature mask
    retrain: bool = False  #: pruning may fine-tune on the block's own score (its training loss)
    refused: str | None = None  #: why a registered model of this kind is not built

    def __post_init__(self) -> None:
        if self.score_net is None and self.refused is None:
            raise ModelError("a firmware plan needs a score network or a reason to refuse")


@dataclass(frozen=True)
class ModelKind:
    """One kind of model and its handlers (see module docstring)."""

    name: str
    description: str
    family: str  #: "event" (scores events' feature vectors) | "occupancy" (lumisection maps)
    build: Handler
    export: Handler
    score: Handler
    firmware: Handler
    #: seed ensembles: the kind of their members, trained one by one ...
    members: str | None = None
    #: ... and joined by this handler: (trained member modules) -> module
    assemble: Handler | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ModelError(f"a model kind needs a name, got {self.name!r}")
        if self.family not in FAMILIES:
            raise ModelError(f"model kind '{self.name}': family '{self.family}' is not one of "
                             f"{', '.join(FAMILIES)}")
        if (self.members is None) != (self.assemble is None):
            raise ModelError(f"model kind '{self.name}': 'members' and 'assemble' go together")

    def handler(self, role: str) -> Callable[..., Any]:
        """The resolved handler for ``role`` (build, export, score, firmware, assemble)."""
        ref = getattr(self, role, None) if role in _ROLES else None
        if ref is None:
            raise ModelError(f"model kind '{self.name}' has no {role} handler")
        return resolve(ref)

    def build_model(self, arch: Mapping[str, Any]) -> Any:
        """A fresh torch module for the card ``architecture`` ``arch`` (needs torch)."""
        return self.handler("build")(dict(arch))

    def export_onnx(self, model: Any, path: str | Path, **context: Any) -> Path:
        """Write the ONNX scoring graph of the torch module ``model`` to ``path``."""
        return Path(self.handler("export")(model, path, **context))

    def open_scorer(self, model: Any, threads: int = 1) -> ModelScorer:
        """The serving scorer of ``model`` (a ``models.registry.RegisteredModel``); no torch."""
        return self.handler("score")(model, threads)

    def firmware_plan(self, card: Mapping[str, Any] | None = None) -> FirmwarePlan:
        """What firmware does with a model of this kind (``card``: the registered model's)."""
        plan = self.handler("firmware")(card)
        if not isinstance(plan, FirmwarePlan):
            raise ModelError(f"model kind '{self.name}': the firmware handler returned "
                             f"{type(plan).__name__}, not a FirmwarePlan")
        return plan

    def assemble_members(self, members: Sequence[Any]) -> Any:
        """One module of this (ensemble) kind from trained member modules."""
        return self.handler("assemble")(list(members))


_ROLES = ("build", "export", "score", "firmware", "assemble")

_EVENT_SCORER = "hotline.models.scorer:Scorer"


def _builtin_kinds() -> list[tuple[str, ModelKind]]:
    kinds = [
        ModelKind("ae", "dense autoencoder", "event", "hotline.models.nets:AE",
                  "hotline.models.export:export_ae", _EVENT_SCORER,
                  "hotline.models.nets:ae_firmware"),
        ModelKind("vae", "variational autoencoder", "event", "hotline.models.nets:VAE",
                  "hotline.models.export:export_vae", _EVENT_SCORER,
                  "hotline.models.nets:vae_firmware"),
        ModelKind("ensemble", "seed ensemble of dense autoencoders", "event",
                  "hotline.models.nets:Ensemble", "hotline.models.export:export_ensemble",
                  _EVENT_SCORER, "hotline.models.nets:ensemble_firmware",
                  members="ae", assemble="hotline.models.nets:Ensemble.of"),
        ModelKind("conv-ae", "DQM convolutional autoencoder of occupancy maps", "occupancy",
                  "hotline.models.conv_ae_net:build_conv_ae",
                  "hotline.models.conv_ae_net:export_onnx",
                  "hotline.models.conv_ae:ConvAEScorer.from_model",
                  "hotline.models.conv_ae_net:conv_ae_firmware"),
    ]
    return [(k.name, k) for k in kinds]


MODEL_KINDS: Registry[ModelKind] = Registry("model kind", _builtin_kinds, error=ModelError,
                                            sort=False)


def register_model_kind(kind: ModelKind) -> ModelKind:
    """Make ``kind`` usable in model cards; a duplicate name is refused."""
    return MODEL_KINDS.register(kind.name, kind)


def get_model_kind(name: str) -> ModelKind:
    """The kind called ``name``; a ``ModelError`` listing the available kinds if there is none."""
    return MODEL_KINDS.get(name)


def kind_of(arch: Mapping[str, Any]) -> ModelKind:
    """The kind an architecture or card names (``DEFAULT_KIND`` when it names none)."""
    return get_model_kind(str(arch.get("kind", DEFAULT_KIND)))


def available_model_kinds(family: str | None = None) -> list[str]:
    """Registered kinds (in registration order), optionally only those of one family."""
    names = MODEL_KINDS.available()
    if family is None:
        return names
    return [n for n in names if MODEL_KINDS.get(n).family == family]
