"""Torch side of the event model kinds: dense autoencoders, the VAE, seed ensembles.

This module holds the ``build`` and ``firmware`` handlers of the kinds ``ae``, ``vae`` and
``ensemble`` (``models.kinds``; their ``export`` handlers are in ``models.export``), and
``torch_model(model)``, the torch module of any registered model with its weights. Serving
never imports it.

``build_model(arch)`` rebuilds a module from the ``architecture`` dict stored in
every model card, through the card kind's build handler (the firmware engineer
converts that module with hls4ml)::

    {"kind": "ae" | "vae", "n_inputs": 57, "hidden": [32, 16], "latent": 3,
     "activation": "relu" | "tanh" | "leaky_relu" | "elu", "batchnorm": false,
     "negative_slope": 0.3, "beta": 1.0, "score": "recon" | "kl" | "mu2"}

The default is the ADC2021 baseline dense AE 57-32-16-3-16-32-57 (ReLU). The
seed study's variants are presets of the same class (``VARIANTS``): tanh,
LeakyReLU + BatchNorm, ELU + BatchNorm. The decoder mirrors the encoder.

A seed **ensemble** (``{"kind": "ensemble", "members": [arch, ...]}``) holds
several dense AEs trained from different seeds on the same data; its score is the
mean of the members' masked squared errors, per feature, so the decomposition into
objects and types still sums to the score. Averaging removes most of the
seed-to-seed spread of a single 3-dimensional-bottleneck AE (see README).

The VAE has three anomaly scores: the reconstruction MSE of decode(mu), the KL
divergence of q(z|x) from N(0, 1), and the ``mu^2`` sum of the CMS AXOL1TL
trigger (the KL term without the variance part, cheap in firmware).

Every module computes on *normalised* inputs with padded slots already zeroed and
knows its training loss (``loss``: the masked MSE, padded objects masked out, + beta
* KL for the VAE) and its scores (``torch_scores``), the same definitions the scorer
decomposes per object. What goes to firmware (the ``firmware`` handlers): the dense AE
with its masked MSE (``ae_score_net``), the VAE as its mu-only encoder scoring mu^2
(``vae_mu_score_net``); seed ensembles are refused (N x the resources of one AE).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from hotline.errors import ModelError
from hotline.models.kinds import DEFAULT_KIND, FirmwarePlan, get_model_kind, kind_of

ACTIVATIONS = ("relu", "tanh", "leaky_relu", "elu")

#: the seed study's variants, as architecture overrides
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"activation": "relu", "batchnorm": False},
    "tanh": {"activation": "tanh", "batchnorm": False},
    "leaky_bn": {"activation": "leaky_relu", "batchnorm": True, "negative_slope": 0.3},
    "elu_bn": {"activation": "elu", "batchnorm": True},
}

DEFAULT_ARCH: dict[str, Any] = {
    "kind": DEFAULT_KIND,
    "n_inputs": 57,
    "hidden": [32, 16],
    "latent": 3,
    "activation": "relu",
    "batchnorm": False,
    "negative_slope": 0.3,
    "beta": 1.0,
    "score": "recon",
}


def normalise_arch(arch: Mapping[str, Any]) -> dict[str, Any]:
    """Complete ``arch`` with defaults (and a ``variant`` preset) and validate it.

    The architecture's kind (``models.kinds``) decides: its build class normalises it.
    """
    kind = kind_of(arch)
    normalise = getattr(kind.handler("build"), "normalise_arch", None)
    if normalise is None:
        raise ModelError(f"model kind '{kind.name}' is not a dense network of models.nets")
    return normalise(arch)


def _dense_arch(arch: Mapping[str, Any], kind: str, score_names: tuple[str, ...]
                ) -> dict[str, Any]:
    """A single dense network's architecture, completed and validated (kind ``kind``)."""
    out = dict(DEFAULT_ARCH)
    variant = arch.get("variant")
    if variant is not None:
        if variant not in VARIANTS:
            raise ModelError(f"unknown model variant '{variant}'; known: {', '.join(VARIANTS)}")
        out.update(VARIANTS[variant])
    out.update(arch)
    out["kind"] = str(arch.get("kind", kind))
    if out["kind"] != kind:
        raise ModelError(f"a '{kind}' network cannot be built from a '{out['kind']}' "
                         "architecture")
    out["hidden"] = [int(h) for h in out["hidden"]]
    out["n_inputs"] = int(out["n_inputs"])
    out["latent"] = int(out["latent"])
    if out["activation"] not in ACTIVATIONS:
        raise ModelError(
            f"unknown activation '{out['activation']}'; known: {', '.join(ACTIVATIONS)}"
        )
    if out["score"] not in score_names:
        raise ModelError(f"a '{kind}' model has no score '{out['score']}'; its scores: "
                         f"{', '.join(score_names)}")
    if out["n_inputs"] < 1 or out["latent"] < 1 or any(h < 1 for h in out["hidden"]):
        raise ModelError(f"layer sizes must be positive: {out}")
    return out


def _act(name: str, slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    return nn.ELU()


def _stack(sizes: list[int], arch: dict[str, Any], last_plain: bool) -> nn.Sequential:
    """Linear (+BatchNorm) + activation blocks; the last layer bare when ``last_plain``."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_plain and i == len(sizes) - 2:
            break
        if arch["batchnorm"]:
            layers.append(nn.BatchNorm1d(b))
        layers.append(_act(arch["activation"], arch["negative_slope"]))
    return nn.Sequential(*layers)


class AE(nn.Module):
    """Dense autoencoder; ``forward(x) -> reconstruction``. Build handler of kind ``ae``."""

    kind = "ae"
    score_names: tuple[str, ...] = ("recon",)  #: the scores its serving graph computes

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        a = self.normalise_arch(arch)
        self.arch = a
        hidden = a["hidden"]
        self.encoder = _stack([a["n_inputs"], *hidden], a, last_plain=False)
        self.to_latent = nn.Linear(hidden[-1] if hidden else a["n_inputs"], a["latent"])
        self.decoder = _stack([a["latent"], *reversed(hidden), a["n_inputs"]], a, last_plain=True)

    @classmethod
    def normalise_arch(cls, arch: Mapping[str, Any]) -> dict[str, Any]:
        return _dense_arch(arch, cls.kind, cls.score_names)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))

    def loss(self, xn: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
        """Per-event training loss: the masked MSE."""
        return masked_mse(xn, self(xn), fmask)

    def torch_scores(self, xn: torch.Tensor, fmask: torch.Tensor) -> dict[str, Any]:
        """recon_out, per_feature and recon (see ``torch_scores``)."""
        recon = self(xn)
        per_feature = ((recon - xn) ** 2) * fmask / xn.shape[1]
        return {"recon_out": recon, "per_feature": per_feature, "recon": per_feature.sum(dim=1)}


class VAE(nn.Module):
    """Variational AE; ``forward(x) -> (reconstruction, mu, logvar)``. Kind ``vae``.

    In training mode the decoder sees a reparameterised sample; in eval mode it
    sees ``mu`` (deterministic scores, as served).
    """

    kind = "vae"
    score_names: tuple[str, ...] = ("recon", "kl", "mu2")

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        a = self.normalise_arch(arch)
        self.arch = a
        hidden = a["hidden"]
        width = hidden[-1] if hidden else a["n_inputs"]
        self.encoder = _stack([a["n_inputs"], *hidden], a, last_plain=False)
        self.mu = nn.Linear(width, a["latent"])
        self.logvar = nn.Linear(width, a["latent"])
        self.decoder = _stack([a["latent"], *reversed(hidden), a["n_inputs"]], a, last_plain=True)

    @classmethod
    def normalise_arch(cls, arch: Mapping[str, Any]) -> dict[str, Any]:
        return _dense_arch(arch, cls.kind, cls.score_names)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar

    def loss(self, xn: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
        """Per-event training loss: masked MSE + beta * KL / n_features."""
        recon, mu, lv = self(xn)
        beta = float(self.arch.get("beta", 1.0))
        return masked_mse(xn, recon, fmask) + beta * kl_divergence(mu, lv) / xn.shape[1]

    def torch_scores(self, xn: torch.Tensor, fmask: torch.Tensor) -> dict[str, Any]:
        """recon_out, per_feature, recon, kl, mu2 and mu (see ``torch_scores``)."""
        recon, mu, logvar = self(xn)
        per_feature = ((recon - xn) ** 2) * fmask / xn.shape[1]
        return {"recon_out": recon, "per_feature": per_feature, "recon": per_feature.sum(dim=1),
                "kl": kl_divergence(mu, logvar), "mu2": mu2_score(mu), "mu": mu}


class Ensemble(nn.Module):
    """Seed ensemble of dense AEs: forward returns the members' reconstructions [M, n, F].

    Build handler of kind ``ensemble``; ``Ensemble.of`` is its ``assemble`` handler.
    """

    kind = "ensemble"
    score_names: tuple[str, ...] = ("recon",)

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        self.arch = self.normalise_arch(arch)
        self.members = nn.ModuleList([AE(a) for a in self.arch["members"]])

    @classmethod
    def normalise_arch(cls, arch: Mapping[str, Any]) -> dict[str, Any]:
        members = arch.get("members")
        if not isinstance(members, list) or not members:
            raise ModelError("an ensemble needs a non-empty 'members' list of AE architectures")
        if any(m.get("kind", AE.kind) != AE.kind for m in members):
            raise ModelError(f"ensemble members must be plain AEs (kind '{AE.kind}')")
        norm = [AE.normalise_arch(m) for m in members]
        if len({m["n_inputs"] for m in norm}) != 1:
            raise ModelError("ensemble members disagree on the number of inputs")
        return {"kind": cls.kind, "members": norm, "n_inputs": norm[0]["n_inputs"],
                "score": "recon"}

    @classmethod
    def of(cls, members: Sequence[AE]) -> Ensemble:
        """An ensemble of already trained AEs (their weights are kept)."""
        ens = cls({"kind": cls.kind, "members": [m.arch for m in members]})
        for dst, src in zip(ens.members, members):
            dst.load_state_dict(src.state_dict())
        return ens.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def loss(self, xn: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
        """Per-event loss: the mean over the members of their masked MSE."""
        # nn.ModuleList types its items as plain modules; __init__ made every member an AE
        return torch.stack([cast(AE, m).loss(xn, fmask) for m in self.members]).mean(dim=0)

    def torch_scores(self, xn: torch.Tensor, fmask: torch.Tensor) -> dict[str, Any]:
        """Mean of the members' squared errors; mean reconstruction (see ``torch_scores``)."""
        out = self(xn)
        per_feature = ((out - xn) ** 2).mean(dim=0) * fmask / xn.shape[1]
        return {"recon_out": out.mean(dim=0), "per_feature": per_feature,
                "recon": per_feature.sum(dim=1)}


def build_model(arch: Mapping[str, Any]) -> Any:
    """A fresh torch module for a card's ``architecture`` (its kind's build handler)."""
    return kind_of(arch).build_model(arch)


def torch_model(model: Any) -> Any:
    """The torch module of a registered model (``models.registry.RegisteredModel``) with its
    trained weights, rebuilt by its kind's build handler (for firmware and studies)."""
    if not model.weights_path.exists():
        raise ModelError(f"model {model.name} v{model.version}: {model.weights_path} is missing")
    net = get_model_kind(model.kind).build_model(model.card["architecture"])
    net.load_state_dict(torch.load(model.weights_path, map_location="cpu", weights_only=True))
    net.eval()
    return net


def feature_mask(mask: torch.Tensor, n_features: int) -> torch.Tensor:
    """Object mask [n, objects] (bool/float) -> feature mask [n, features] float (torch)."""
    m = mask.to(torch.float32)
    return m.repeat_interleave(n_features // m.shape[1], dim=1)


def masked_mse(xn: torch.Tensor, recon: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
    """Per-event masked MSE: sum of squared errors over real-object features / n_features."""
    return (((recon - xn) ** 2) * fmask).sum(dim=1) / xn.shape[1]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-event KL(q(z|x) || N(0, 1))."""
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)


def mu2_score(mu: torch.Tensor) -> torch.Tensor:
    """Per-event AXOL1TL score: sum of mu^2 over latent dimensions."""
    return (mu**2).sum(dim=1)


def torch_scores(model: Any, xn: torch.Tensor, fmask: torch.Tensor) -> dict[str, Any]:
    """All scores of ``model`` on normalised inputs: per_feature, recon (+ kl, mu2 for a VAE)."""
    return model.torch_scores(xn, fmask)


# --------------------------------------------------------------------------- firmware


def ae_score_net(ae: Any, n_features: int, masked: bool = False) -> Any:
    """Dense AE + its MSE score, all in firmware: ``sum((x - AE(x))**2 [* m]) / n`` -> [n, 1].

    With ``masked`` the network takes a second input, the 0/1 feature mask
    (padded object slots 0), exactly as the serving graph masks its loss. The two
    networks share their modules (``_AEScoreParts``), not ``forward``: each has its own
    inputs, which hls4ml traces.
    """

    class _AEScoreParts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ae = ae
            self.score_sum = nn.Linear(n_features, 1, bias=False)
            with torch.no_grad():
                self.score_sum.weight.fill_(1.0 / n_features)
            self.score_sum.weight.requires_grad_(False)

    class AEScore(_AEScoreParts):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.ae(x)
            # two identical residuals: hls4ml 1.3.0 drops the duplicate input of d * d
            return self.score_sum((x - y) * (x - y))

    class MaskedAEScore(_AEScoreParts):
        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            y = self.ae(x)
            return self.score_sum((x - y) * (x - y) * mask)

    return (MaskedAEScore() if masked else AEScore()).eval()


def vae_mu_score_net(encoder: Any, mu: Any) -> Any:
    """VAE mu-only encoder scoring ``sum(mu**2)`` -> [n, 1] (the AXOL1TL score)."""

    class VAEMuScore(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.mu = mu
            # a second copy of the mu head so hls4ml's Merge multiply sees two inputs
            self.mu_copy = copy.deepcopy(mu)
            self.score_sum = nn.Linear(mu.out_features, 1, bias=False)
            with torch.no_grad():
                self.score_sum.weight.fill_(1.0)
            self.score_sum.weight.requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.encoder(x)
            return self.score_sum(self.mu(h) * self.mu_copy(h))

    return VAEMuScore().eval()


def _ae_firmware_net(net: Any, input_shape: Sequence[int], masked: bool = False) -> Any:
    return ae_score_net(net, int(input_shape[-1]), masked)


def _vae_firmware_net(net: Any, input_shape: Sequence[int], masked: bool = False) -> Any:
    return vae_mu_score_net(net.encoder, net.mu)


def ae_firmware(card: Mapping[str, Any] | None = None) -> FirmwarePlan:
    """Kind ``ae``: the AE and its masked MSE (the serving ``total``), all in firmware.
    A card scored by per-type calibrated p-values (``types_sidak``, ``types_fisher``) is
    refused: firmware computes the MSE, not the per-type tables (the L1 model stays a
    57-feature MSE AE such as ``ae_default``)."""
    score = str((card or {}).get("score", "recon"))
    if score.startswith("types_"):
        return FirmwarePlan(score_net=_ae_firmware_net, serving_score="recon", masked=True,
                            retrain=True, refused=(
                                f"is scored by per-type calibrated p-values ('{score}'), "
                                "which firmware does not compute; for L1 build the 57-feature "
                                "MSE AE ae_default"))
    return FirmwarePlan(score_net=_ae_firmware_net, serving_score="recon", masked=True,
                        retrain=True)


def vae_firmware(card: Mapping[str, Any] | None = None) -> FirmwarePlan:
    """Kind ``vae``: the mu-only encoder scoring mu^2 (the serving ``mu2`` output)."""
    return FirmwarePlan(score_net=_vae_firmware_net, serving_score="mu2")


def ensemble_firmware(card: Mapping[str, Any] | None = None) -> FirmwarePlan:
    """Kind ``ensemble``: refused, N members cost N x the resources of one AE."""
    n = len(((card or {}).get("architecture") or {}).get("members", [])) or "N"
    return FirmwarePlan(refused=(
        f"is a seed ensemble of {n} AEs ({n}x the resources of one); it serves the software "
        "trigger / stream. For L1, build a single AE (e.g. ae_default) -- ensembles are not "
        "built as firmware"))
