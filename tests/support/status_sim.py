"""Simulated lumisection summaries for the run-status tests: realistic counts, known truth.

Events per lumisection (default 500) get an AE score drawn from Exp(1) (survival
``exp(-s)``, so the threshold of background p-value ``p`` is ``-ln p``), pass classic rules
with fixed fractions, and are quarantined rarely. Faults scale a rule's rate, add events
above an AE threshold, or drift a rule's rate slowly. Everything is drawn from a numpy
``Generator``, so each test is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hotline.alerts.records import LumiSummary
from hotline.alerts.reference import AEModel, AEThreshold
from hotline.stream.pipeline import score_histogram

AE_RULE = "sim_p1e-03"
AE_PS = (1e-2, 1e-3, 1e-4, 1e-5)
RULES = {"ht300": 0.2, "2mu_pt15": 0.03, "met250": 0.004, "1e_pt100": 0.01, "1mu_pt100": 0.015}
QUARANTINE = 2e-4


def sim_model() -> AEModel:
    """The simulated AE model: thresholds at -ln p, survival exp(-s)."""
    return AEModel("sim", "1", tuple(AEThreshold(p, -math.log(p)) for p in AE_PS),
                   lambda s: np.exp(-np.asarray(s, dtype=float)), 100_000)


def sim_run(rng: np.random.Generator, run: int = 1, n_lumis: int = 50, n: int = 500,
            rules: dict[str, float] | None = None, ae_boost: dict[int, float] | None = None,
            rule_scale: dict[int, dict[str, float]] | None = None,
            source: str = "hotline") -> list[LumiSummary]:
    """Summaries of one simulated run.

    ``ae_boost[lumi] = f``: a fraction ``f`` of that lumisection's events is anomalous, with
    scores ``-ln(1e-3) + Exp(2)`` (above the p = 1e-3 threshold: that rate becomes
    ``1e-3 + f``); ``rule_scale[lumi][rule]``: that rule's rate times the factor.
    """
    rules = dict(RULES if rules is None else rules)
    out = []
    thr = -math.log(1e-3)
    for ls in range(1, n_lumis + 1):
        scores = rng.exponential(1.0, n)
        f = (ae_boost or {}).get(ls, 0.0)
        if f:
            hit = rng.random(n) < f
            scores[hit] = -math.log(1e-3) + rng.exponential(2.0, int(hit.sum()))
        bad = int(rng.binomial(n, QUARANTINE))
        good = n - bad
        counts = {}
        for rule, frac in rules.items():
            scale = (rule_scale or {}).get(ls, {}).get(rule, 1.0)
            counts[rule] = int(rng.binomial(good, min(frac * scale, 1.0)))
        counts[AE_RULE] = int((scores[:good] > thr).sum())
        s = LumiSummary(source, run, ls, n_events=n, n_bad=bad, rule_counts=counts,
                        score_hist={AE_RULE: score_histogram(scores[:good])})
        out.append(s)
    return out


def non_green(lumis: Sequence[object]) -> list[int]:
    """Lumisection numbers of a RunStatus's lumis that are amber or red."""
    return [ls.lumi for ls in lumis if ls.level in ("amber", "red")]  # type: ignore[attr-defined]
