"""The run-status vocabulary: findings, per-lumisection status, merged ranges, run status.

Owns the value types every consumer of a run's status shares (``Finding``, ``LumiStatus``,
``LumiRange``, ``RunStatus``, ``LumiFlag``) and ``merge_ranges`` (lumisections as golden-JSON
ranges): the status engine (``alerts.run_status``) produces them, the certification
(``alerts.certification``) stores them as lumisection flags, and the dashboard, the run
report and ``hotline demo`` print them. Pure data, no statistics here.

Levels: ``green`` (as expected), ``amber`` (worth a look: a significant deviation after the
multiple-testing correction, rules unavailable, quarantined events above the reference),
``red`` (a deviation so significant that the lumisection is bad), ``idle`` (no data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["LEVELS", "Finding", "Level", "LumiFlag", "LumiRange", "LumiStatus", "RunStatus",
           "merge_ranges", "worst_level"]

Level = Literal["green", "amber", "red", "idle"]

#: levels from best to worst
LEVELS: tuple[Level, ...] = ("idle", "green", "amber", "red")


def worst_level(levels: Any) -> Level:
    """The worst of ``levels`` (``idle`` for none)."""
    worst: Level = "idle"
    for lv in levels:
        if LEVELS.index(lv) > LEVELS.index(worst):
            worst = lv
    return worst


def merge_ranges(lumis: Any) -> list[list[int]]:
    """Lumisection numbers as sorted ``[[first, last], ...]`` of consecutive runs (the
    golden-JSON form)."""
    out: list[list[int]] = []
    for ls in sorted(set(lumis)):
        if out and ls == out[-1][1] + 1:
            out[-1][1] = ls
        else:
            out.append([ls, ls])
    return out


@dataclass(frozen=True)
class Finding:
    """One monitored quantity tested in one lumisection (or a window / trend over several).

    ``quantity``: what was tested (``"ae_default_p1e-03"``, ``"rule:1mu_pt50"``,
    ``"input_rate"``, ``"quarantine"``, ``"dqm:conv_calo_regions"``, ``"trend:<quantity>"``);
    ``kind``: ``ae`` | ``rule`` | ``input`` | ``quarantine`` | ``dqm`` | ``trend``;
    ``observed`` / ``expected``: counts (events) in the ``n`` events tested;
    ``p_value``: the exact tail probability of a deviation at least as large, in the
    direction observed, before any multiple-testing correction; ``p_corrected`` after it;
    ``text``: the finding in plain words, e.g. ``"AE rate at p=1e-3 is 14x expected
    (p = 3e-9)"``; ``where``: localisation in plain words (``"jets near eta 1.8, phi 2.6"``,
    ``"calo region phi16 eta11 hot"``) or ``""``.
    """

    quantity: str
    kind: str
    observed: float
    expected: float
    n: int
    p_value: float
    p_corrected: float
    level: Level
    text: str
    where: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LumiStatus:
    """The status of one lumisection: its level, the findings behind it, worst first."""

    lumi: int
    level: Level
    n_events: int
    findings: tuple[Finding, ...] = ()
    reason: str = ""  #: plain words; "" when green
    #: every finding tested in this lumisection, green ones too (worst first); for views
    #: of all significances such as the dashboard's timeline; empty from older producers
    tested: tuple[Finding, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"lumi": self.lumi, "level": self.level, "n_events": self.n_events,
                "reason": self.reason, "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class LumiRange:
    """Consecutive lumisections ``first``..``last`` (inclusive) with one level and reason."""

    first: int
    last: int
    level: Level
    reason: str

    def label(self) -> str:
        return f"LS {self.first}" if self.first == self.last else f"LS {self.first}-{self.last}"


@dataclass(frozen=True)
class RunStatus:
    """The status of one run: per lumisection, merged non-green ranges and the run verdict.

    ``reference``: provenance of the expectations used (reference run or model card);
    ``method``: the statistical method and multiple-testing rule, in plain words.
    """

    source: str
    run: int
    level: Level
    reason: str
    lumis: tuple[LumiStatus, ...] = ()
    ranges: tuple[LumiRange, ...] = ()
    reference: dict[str, Any] = field(default_factory=dict)
    method: str = ""

    def lumi(self, lumi: int) -> LumiStatus | None:
        for s in self.lumis:
            if s.lumi == lumi:
                return s
        return None

    def verdict(self) -> str:
        """The run's verdict in plain words, one line per non-green range."""
        head = f"run {self.run}: {self.level.upper()} - {self.reason}"
        return "\n".join([head] + [f"  {r.label()}: {r.level} - {r.reason}" for r in self.ranges])

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "run": self.run, "level": self.level,
                "reason": self.reason, "method": self.method, "reference": self.reference,
                "ranges": [r.__dict__ for r in self.ranges],
                "lumis": [s.to_dict() for s in self.lumis]}


@dataclass(frozen=True)
class LumiFlag:
    """The stored certification flag of one lumisection.

    ``good``: certified good (in the golden JSON); ``level`` and ``reason`` as assessed;
    ``decided_by``: ``"auto"`` for the status engine, else the user name of the expert
    who overrode it; ``comment`` the expert's comment; ``at`` unix time of the decision.
    """

    source: str
    run: int
    lumi: int
    good: bool
    level: Level
    reason: str
    decided_by: str = "auto"
    comment: str = ""
    at: float = 0.0
