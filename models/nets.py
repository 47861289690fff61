"""Torch model definitions: the dense autoencoder family and the VAE.

``build_model(arch)`` rebuilds a module from the ``architecture`` dict stored in
every model card (the firmware engineer converts that module with hls4ml)::

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

Both modules compute on *normalised* inputs with padded slots already zeroed;
``masked_mse`` is the training loss (padded objects masked out), the same
definition the scorer decomposes per object.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hotline.errors import ModelError

ACTIVATIONS = ("relu", "tanh", "leaky_relu", "elu")
KINDS = ("ae", "vae", "ensemble")

#: the seed study's variants, as architecture overrides
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"activation": "relu", "batchnorm": False},
    "tanh": {"activation": "tanh", "batchnorm": False},
    "leaky_bn": {"activation": "leaky_relu", "batchnorm": True, "negative_slope": 0.3},
    "elu_bn": {"activation": "elu", "batchnorm": True},
}

DEFAULT_ARCH: dict[str, Any] = {
    "kind": "ae",
    "n_inputs": 57,
    "hidden": [32, 16],
    "latent": 3,
    "activation": "relu",
    "batchnorm": False,
    "negative_slope": 0.3,
    "beta": 1.0,
    "score": "recon",
}


def normalise_arch(arch: dict[str, Any]) -> dict[str, Any]:
    """Complete ``arch`` with defaults (and a ``variant`` preset) and validate it."""
    if arch.get("kind") == "ensemble":
        members = arch.get("members")
        if not isinstance(members, list) or not members:
            raise ModelError("an ensemble needs a non-empty 'members' list of AE architectures")
        norm = [normalise_arch(m) for m in members]
        if any(m["kind"] != "ae" for m in norm):
            raise ModelError("ensemble members must be plain AEs (kind 'ae')")
        if len({m["n_inputs"] for m in norm}) != 1:
            raise ModelError("ensemble members disagree on the number of inputs")
        return {"kind": "ensemble", "members": norm, "n_inputs": norm[0]["n_inputs"],
                "score": "recon"}
    out = dict(DEFAULT_ARCH)
    variant = arch.get("variant")
    if variant is not None:
        if variant not in VARIANTS:
            raise ModelError(f"unknown model variant '{variant}'; known: {', '.join(VARIANTS)}")
        out.update(VARIANTS[variant])
    out.update(arch)
    out["hidden"] = [int(h) for h in out["hidden"]]
    out["n_inputs"] = int(out["n_inputs"])
    out["latent"] = int(out["latent"])
    if out["kind"] not in KINDS:
        raise ModelError(f"unknown model kind '{out['kind']}'; known: {', '.join(KINDS)}")
    if out["activation"] not in ACTIVATIONS:
        raise ModelError(
            f"unknown activation '{out['activation']}'; known: {', '.join(ACTIVATIONS)}"
        )
    if out["score"] not in ("recon", "kl", "mu2"):
        raise ModelError(f"unknown score '{out['score']}'; known: recon, kl, mu2")
    if out["kind"] == "ae" and out["score"] != "recon":
        raise ModelError("a plain AE has only the 'recon' score")
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
    """Dense autoencoder; ``forward(x) -> reconstruction``."""

    kind = "ae"

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        a = normalise_arch(arch)
        self.arch = a
        hidden = a["hidden"]
        self.encoder = _stack([a["n_inputs"], *hidden], a, last_plain=False)
        self.to_latent = nn.Linear(hidden[-1] if hidden else a["n_inputs"], a["latent"])
        self.decoder = _stack([a["latent"], *reversed(hidden), a["n_inputs"]], a, last_plain=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


class VAE(nn.Module):
    """Variational AE; ``forward(x) -> (reconstruction, mu, logvar)``.

    In training mode the decoder sees a reparameterised sample; in eval mode it
    sees ``mu`` (deterministic scores, as served).
    """

    kind = "vae"

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        a = normalise_arch(arch)
        self.arch = a
        hidden = a["hidden"]
        width = hidden[-1] if hidden else a["n_inputs"]
        self.encoder = _stack([a["n_inputs"], *hidden], a, last_plain=False)
        self.mu = nn.Linear(width, a["latent"])
        self.logvar = nn.Linear(width, a["latent"])
        self.decoder = _stack([a["latent"], *reversed(hidden), a["n_inputs"]], a, last_plain=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


class Ensemble(nn.Module):
    """Seed ensemble of dense AEs: forward returns the members' reconstructions [M, n, F]."""

    kind = "ensemble"

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        self.arch = arch
        self.members = nn.ModuleList([AE(a) for a in arch["members"]])

    @classmethod
    def of(cls, members: list[AE]) -> Ensemble:
        """An ensemble of already trained AEs (their weights are kept)."""
        ens = cls({"kind": "ensemble", "members": [m.arch for m in members],
                   "n_inputs": members[0].arch["n_inputs"], "score": "recon"})
        for dst, src in zip(ens.members, members):
            dst.load_state_dict(src.state_dict())
        return ens.eval()

    def forward(self, x):
        return torch.stack([m(x) for m in self.members])


def build_model(arch: dict[str, Any]) -> AE | VAE | Ensemble:
    """A fresh torch module (``AE``, ``VAE`` or ``Ensemble``) for a card's ``architecture``."""
    a = normalise_arch(arch)
    if a["kind"] == "ensemble":
        return Ensemble(a)
    return AE(a) if a["kind"] == "ae" else VAE(a)


def feature_mask(mask, n_features: int):
    """Object mask [n, objects] (bool/float) -> feature mask [n, features] float (torch)."""
    m = mask.to(torch.float32)
    return m.repeat_interleave(n_features // m.shape[1], dim=1)


def masked_mse(xn, recon, fmask):
    """Per-event masked MSE: sum of squared errors over real-object features / n_features."""
    return (((recon - xn) ** 2) * fmask).sum(dim=1) / xn.shape[1]


def kl_divergence(mu, logvar):
    """Per-event KL(q(z|x) || N(0, 1))."""
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)


def mu2_score(mu):
    """Per-event AXOL1TL score: sum of mu^2 over latent dimensions."""
    return (mu**2).sum(dim=1)


def torch_scores(model: Any, xn, fmask) -> dict[str, Any]:
    """All scores of ``model`` on normalised inputs: per_feature, recon (+ kl, mu2 for a VAE)."""
    out = model(xn)
    if model.kind == "ensemble":  # mean of the members' squared errors; mean reconstruction
        per_feature = ((out - xn) ** 2).mean(dim=0) * fmask / xn.shape[1]
        return {"recon_out": out.mean(dim=0), "per_feature": per_feature,
                "recon": per_feature.sum(dim=1)}
    if model.kind == "vae":
        recon, mu, logvar = out
    else:
        recon, mu, logvar = out, None, None
    per_feature = ((recon - xn) ** 2) * fmask / xn.shape[1]
    res = {"recon_out": recon, "per_feature": per_feature, "recon": per_feature.sum(dim=1)}
    if mu is not None:
        res["kl"] = kl_divergence(mu, logvar)
        res["mu2"] = mu2_score(mu)
        res["mu"] = mu
    return res
