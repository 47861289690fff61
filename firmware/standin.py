"""Stand-in models and samples for firmware work when no registered model is available.

Small torch models with the registry's architectures (dense AE 57-32-16-3-16-32-57,
VAE with a 3-d latent, conv AE conv -> pool -> upsample -> conv on an 18x14 map,
and its dense-bottleneck variant ending in ``view(-1, C, H, W)``), trained for a
few seconds on a synthetic, already-normalised 57-feature sample (MET + 4 e +
4 mu + 10 jets; pT as log1p(pT/10 GeV), eta/2.5, phi/pi; zero padding) so the
conversion / emulation / precision pipeline has realistic score tails. Signal
events carry hard leptons (a stand-in for the challenge's A -> 4 leptons).

The stand-ins are a registry (``register_standin`` / ``get_standin`` /
``available_standins``; ``hotline firmware build standin-<name>``): each names the model
kind (``models.kinds``) whose firmware plan turns the trained network into the score
network that is converted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hotline.errors import FirmwareError
from hotline.models.kinds import get_model_kind
from hotline.registry import Registry

N_FEATURES = 57
#: (objects, mean multiplicity, background pT scale GeV, |eta| max)
_LAYOUT = [("met", 1, 40.0, 0.0), ("e", 4, 25.0, 2.5), ("mu", 4, 25.0, 2.4), ("j", 10, 40.0, 4.7)]
_MULT = {"met": 1.0, "e": 0.6, "mu": 0.8, "j": 3.0}


def synthetic_features(n: int, seed: int = 0, signal: bool = False) -> np.ndarray:
    """Normalised feature matrix [n, 57] (float32) of synthetic background or signal events."""
    rng = np.random.default_rng(seed)
    blocks = []
    for name, nobj, scale, eta_max in _LAYOUT:
        mult = _MULT[name]
        sc = scale
        if signal and name in ("e", "mu"):
            mult, sc = 2.0, 150.0
        counts = np.ones(n, int) if name == "met" else rng.poisson(mult, n)
        pt = rng.exponential(sc, (n, nobj)) + (0.0 if name == "met" else 5.0)
        pt = -np.sort(-pt, axis=1)
        real = np.arange(nobj)[None, :] < counts[:, None]
        eta = rng.uniform(-eta_max, eta_max, (n, nobj)) if eta_max else np.zeros((n, nobj))
        phi = rng.uniform(-np.pi, np.pi, (n, nobj))
        vals = np.stack([np.log1p(pt / 10.0), eta / 2.5, phi / np.pi], axis=2)
        blocks.append(np.where(real[:, :, None], vals, 0.0))
    return np.concatenate(blocks, axis=1).reshape(n, N_FEATURES).astype(np.float32)


def synthetic_maps(n: int, seed: int = 0, signal: bool = False,
                   shape: tuple[int, int] = (18, 14)) -> np.ndarray:
    """Occupancy-like maps [n, 1, H, W]: smooth eta profile + noise; signal has a hot tower."""
    rng = np.random.default_rng(seed)
    h, w = shape
    prof = np.exp(-((np.arange(h) - h / 2) / (h / 3)) ** 2)[:, None] * np.ones((1, w))
    maps = prof[None] + 0.1 * rng.standard_normal((n, h, w))
    if signal:
        i, j = rng.integers(0, h, n), rng.integers(0, w, n)
        maps[np.arange(n), i, j] += 3.0
    return maps[:, None].astype(np.float32)


def _mlp(sizes: list[int], last_act: bool = False) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def dense_ae(n: int = N_FEATURES) -> Any:
    """Dense AE n-32-16-3-16-32-n with ReLU (the registry's ``ae`` architecture)."""
    import torch.nn as nn

    class DenseAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = _mlp([n, 32, 16, 3])
            self.decoder = _mlp([3, 16, 32, n])

        def forward(self, x):
            return self.decoder(self.encoder(x))

    return DenseAE()


def vae(n: int = N_FEATURES, latent: int = 3) -> Any:
    """VAE: encoder n-32-16 -> (mu, logvar) heads; decoder latent-16-32-n."""
    import torch
    import torch.nn as nn

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = _mlp([n, 32, 16], last_act=True)
            self.mu = nn.Linear(16, latent)
            self.logvar = nn.Linear(16, latent)
            self.decoder = _mlp([latent, 16, 32, n])

        def forward(self, x):
            h = self.encoder(x)
            mu, logvar = self.mu(h), self.logvar(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.decoder(z), mu, logvar

    return VAE()


def conv_ae(shape: tuple[int, int] = (18, 14), dense_bottleneck: bool = False) -> Any:
    """Conv AE conv -> pool -> upsample -> conv; optionally a Linear bottleneck + view()."""
    import torch.nn as nn

    h, w = shape[0] // 2, shape[1] // 2
    c = 4

    class ConvAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, c, 3, padding=1)
            self.act1 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            if dense_bottleneck:
                self.flat = nn.Flatten()
                self.enc = nn.Linear(c * h * w, 8)
                self.act2 = nn.ReLU()
                self.dec = nn.Linear(8, c * h * w)
                self.act3 = nn.ReLU()
            self.up = nn.Upsample(scale_factor=2)
            self.conv2 = nn.Conv2d(c, 1, 3, padding=1)

        def forward(self, x):
            z = self.pool(self.act1(self.conv1(x)))
            if dense_bottleneck:
                z = self.act3(self.dec(self.act2(self.enc(self.flat(z)))))
                z = z.view(-1, c, h, w)
            return self.conv2(self.up(z))

    return ConvAE()


def train(model: Any, x: np.ndarray, epochs: int = 10, seed: int = 0, lr: float = 3e-3,
          beta: float = 0.5) -> Any:
    """A few epochs of Adam on reconstruction (+ beta * KL for the VAE); returns eval model."""
    import torch

    torch.manual_seed(seed)
    xt = torch.as_tensor(x)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            xb = xt[perm[i:i + 256]]
            out = model(xb)
            if isinstance(out, tuple):
                rec, mu, logvar = out
                kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1))
                loss = torch.mean((rec - xb) ** 2) + beta * kl / xb.shape[1]
            else:
                loss = torch.mean((out - xb) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@dataclass(frozen=True)
class StandIn:
    """A stand-in network: how to make, sample and train it, and its model kind."""

    name: str
    model_kind: str  #: the kind (``models.kinds``) whose firmware plan wraps the network
    make: Callable[[], Any]  #: a fresh torch module
    sample: Callable[..., np.ndarray]  #: (n, seed, signal=False) -> network inputs
    input_shape: tuple[int, ...]
    max_train: int | None = None  #: at most this many training inputs
    epochs: Callable[[int], int] = lambda epochs: epochs  #: requested -> trained epochs


def _builtin_standins() -> list[tuple[str, StandIn]]:
    dense = {"sample": synthetic_features, "input_shape": (N_FEATURES,)}
    maps = {"sample": synthetic_maps, "input_shape": (1, 18, 14), "max_train": 4000,
            "epochs": lambda epochs: max(2, epochs // 4)}
    standins = [
        StandIn("ae", "ae", dense_ae, **dense),
        StandIn("vae", "vae", vae, **dense),
        StandIn("conv-ae", "conv-ae", conv_ae, **maps),
        StandIn("conv-ae-dense", "conv-ae", lambda: conv_ae(dense_bottleneck=True), **maps),
    ]
    return [(s.name, s) for s in standins]


STANDINS: Registry[StandIn] = Registry("stand-in", _builtin_standins, error=FirmwareError,
                                       sort=False)


def register_standin(standin: StandIn) -> None:
    """Make ``standin-<name>`` buildable; a duplicate name is refused."""
    STANDINS.register(standin.name, standin)


def get_standin(name: str) -> StandIn:
    return STANDINS.get(name)


def available_standins() -> list[str]:
    return STANDINS.available()


def standin_score_net(kind: str, n_train: int = 20000, epochs: int = 8, seed: int = 0
                      ) -> tuple[Any, tuple[int, ...]]:
    """A trained stand-in score network for ``kind`` (a stand-in name) and its input shape."""
    import torch

    s = get_standin(kind)
    torch.manual_seed(seed)
    n = n_train if s.max_train is None else min(n_train, s.max_train)
    m = train(s.make(), s.sample(n, seed), s.epochs(epochs), seed)
    plan = get_model_kind(s.model_kind).firmware_plan(None)
    if plan.score_net is None:
        raise FirmwareError(f"stand-in {kind}: model kind '{s.model_kind}' has no firmware "
                            f"score network ({plan.refused})")
    return plan.score_net(m, s.input_shape, False), s.input_shape


def standin_samples(kind: str, n_bkg: int, n_sig: int, seed: int = 1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (background, signal) inputs for a stand-in kind."""
    s = get_standin(kind)
    return s.sample(n_bkg, seed), s.sample(n_sig, seed + 1, signal=True)
