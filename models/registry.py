"""The model registry: ``models/registry/<name>/<version>/{model.onnx, card.json, weights.pt}``.

``register_model`` writes a new version (1, 2, ... unless given) with its card;
``load_model(name, version="latest")`` reads the card, checks it, and verifies
the sha256 of ``model.onnx`` against the card (a mismatch is a ``ModelError``:
the file was changed or corrupted after registration; thresholds that are not finite,
negative or not monotone in p are one too: ``models.thresholds.validate_thresholds``).
``available_models``
lists what is registered. The default registry is the folder shipped in the
repository (``models/registry``); any other folder works the same way.

Card fields: name, version, kind (a kind of ``models.kinds``: ae | vae | ensemble |
conv-ae), feature_spec (``FeatureSpec.to_dict()``), normalisation (``Normaliser.to_dict()``),
architecture (the kind's build handler rebuilds the torch module from it;
``weights.pt`` is its state_dict -- ``models.nets.torch_model(model)`` loads both, on the
torch side), score (recon | kl | mu2),
thresholds (list of {p, threshold, n_ref, method, uncertainty}), refused
p-values, reference (survival table for p-values), training, metrics, onnx
(file name, sha256, inputs/outputs), created, regenerate (how to rebuild it).

``RegisteredModel.scorer()`` opens the kind's serving scorer (``models.interface``).
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.config import package_path
from hotline.errors import ModelError
from hotline.models.interface import ModelScorer
from hotline.models.kinds import ModelKind, get_model_kind
from hotline.models.thresholds import validate_thresholds

DEFAULT_REGISTRY = package_path("hotline.models", "registry")
DEFAULT_MODEL = "ae_default"  #: the small shipped model ``hotline demo`` uses
CARD_SCHEMA = 1
REQUIRED = ("name", "version", "kind", "feature_spec", "onnx")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class RegisteredModel:
    """A model found in the registry (its card is already validated and hash-checked)."""

    name: str
    version: str
    path: Path
    card: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.path / self.card["onnx"].get("file", "model.onnx")

    @property
    def weights_path(self) -> Path:
        return self.path / "weights.pt"

    @property
    def kind(self) -> str:
        return str(self.card["kind"])

    @property
    def model_kind(self) -> ModelKind:
        """The registered kind of this model (its handlers)."""
        return get_model_kind(self.kind)

    def feature_spec(self) -> Any:
        from hotline.detectors.spec import FeatureSpec

        return FeatureSpec.from_dict(self.card["feature_spec"])

    def scorer(self, threads: int = 1) -> ModelScorer:
        """The serving scorer of this model (its kind's score handler; onnxruntime)."""
        return self.model_kind.open_scorer(self, threads)


def _root(registry: str | Path | None) -> Path:
    return Path(registry) if registry else DEFAULT_REGISTRY


def _versions(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    vs = [p.name for p in folder.iterdir() if (p / "card.json").is_file()]
    return sorted(vs, key=lambda v: (0, int(v), v) if v.isdigit() else (1, 0, v))


def available_models(registry: str | Path | None = None) -> list[dict[str, Any]]:
    """One entry per registered (name, version): name, version, kind, path, thresholds."""
    root = _root(registry)
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for v in _versions(folder):
            try:
                card = json.loads((folder / v / "card.json").read_text())
            except (OSError, json.JSONDecodeError):
                card = {}
            out.append({"name": folder.name, "version": v, "kind": card.get("kind", "?"),
                        "path": str(folder / v), "score": card.get("score", "recon"),
                        "thresholds": [t["p"] for t in card.get("thresholds") or []
                                       if isinstance(t, dict) and "p" in t],
                        "n_ref": (card.get("reference") or {}).get("n_ref"),
                        "description": card.get("description", "")})
    return out


def load_model(
    name: str, version: str | int = "latest", registry: str | Path | None = None
) -> RegisteredModel:
    """Load a registered model's card and verify its ONNX hash (``ModelError`` on any problem)."""
    root = _root(registry)
    folder = root / name
    versions = _versions(folder)
    if not versions:
        known = sorted({m["name"] for m in available_models(root)})
        raise ModelError(
            f"no model '{name}' in registry {root}; available: {', '.join(known) or 'none'}"
        )
    v = versions[-1] if str(version) == "latest" else str(version)
    if v not in versions:
        raise ModelError(f"model '{name}' has no version {v} in {root}; "
                         f"versions: {', '.join(versions)}")
    path = folder / v
    try:
        card = json.loads((path / "card.json").read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {path / 'card.json'} is not valid JSON: {exc}") from None
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ModelError(f"model card {path / 'card.json'} lacks {', '.join(missing)}")
    try:
        get_model_kind(card["kind"])
    except ModelError as exc:
        raise ModelError(f"model card {path / 'card.json'}: {exc}") from None
    validate_thresholds(card.get("thresholds"), str(path / "card.json"))
    model = RegisteredModel(name=name, version=v, path=path, card=card)
    onnx = model.onnx_path
    if not onnx.is_file():
        raise ModelError(f"model {name} v{v}: {onnx} is missing")
    digest = sha256(onnx)
    if digest != card["onnx"].get("sha256"):
        raise ModelError(
            f"model {name} v{v}: {onnx} has sha256 {digest[:12]}..., but the card says "
            f"{str(card['onnx'].get('sha256'))[:12]}...; the file was modified after registration "
            "-- re-register the model (hotline train) or restore the file"
        )
    return model


def register_model(
    name: str,
    onnx_file: str | Path,
    card: dict[str, Any],
    weights_file: str | Path | None = None,
    registry: str | Path | None = None,
    version: str | int | None = None,
    overwrite: bool = False,
) -> RegisteredModel:
    """Copy ``onnx_file`` (+ ``weights_file``) into the registry and write the card.

    ``card`` must hold at least kind and feature_spec; name, version, onnx hash,
    schema and created time are filled in here. Returns the loaded model.
    """
    root = _root(registry)
    if not name or "/" in name or name.startswith("."):
        raise ModelError(f"invalid model name '{name}'")
    folder = root / name
    if version is None:
        nums = [int(v) for v in _versions(folder) if v.isdigit()]
        version = (max(nums) + 1) if nums else 1
    v = str(version)
    path = folder / v
    if path.exists():
        if not overwrite:
            raise ModelError(f"model {name} v{v} already exists in {root}")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    shutil.copyfile(onnx_file, path / "model.onnx")
    if weights_file is not None:
        shutil.copyfile(weights_file, path / "weights.pt")
    full = {"schema": CARD_SCHEMA, **card, "name": name, "version": v,
            "created": card.get("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))}
    full["onnx"] = {**card.get("onnx", {}), "file": "model.onnx",
                    "sha256": sha256(path / "model.onnx")}
    (path / "card.json").write_text(json.dumps(full, indent=1) + "\n")
    return load_model(name, v, root)


def update_card(model: RegisteredModel, **fields: Any) -> RegisteredModel:
    """Rewrite fields of a registered card (thresholds, metrics); the ONNX hash is kept."""
    card = {**model.card, **fields}
    (model.path / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    return load_model(model.name, model.version, model.path.parent.parent)
