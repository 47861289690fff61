"""Lumisection certification: quality flags with reasons, expert overrides, golden JSON.

Owns the ``lumi_flags`` table of the alert store (both backends): every decision about a
lumisection is a row (``LumiFlag``: good or bad, the assessed level and reason, who decided,
the comment, when), never updated or deleted, so the history is kept.

- ``record_assessment(store, status)``: the engine's decision per lumisection
  (``decided_by = "auto"``), from a ``RunStatus``: *green* -> good; *red* -> bad; *amber*
  -> good and listed for expert review (CMS golden JSON lists the lumisections certified
  good; an amber lumisection shows a notable deviation that does not by itself make its
  data bad), unless ``amber_good=False``. A row is only added when the decision changed.
- ``override(store, ...)``: an expert's decision with a comment, user and time. The
  effective flag of a lumisection (``flags``) is its latest override if it has one, else
  its latest automatic decision: re-running the assessment never loses an override.
- Given the ``Actor`` doing it (``alerts.access``), both check the role first and write
  one ``alerts.audit`` row in the same transaction as the flags.
- ``golden_json(flags)`` -> ``{"RUN": [[first, last], ...]}`` of the good lumisections
  (merged ranges, the run number as a string key, as CMS writes it); ``bad_json(flags)``:
  the bad ones with reasons, who and when, plus the amber ones for review.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from hotline.alerts.access import Actor, require
from hotline.alerts.lumi_status import LumiFlag, RunStatus, merge_ranges
from hotline.errors import ConfigError

__all__ = ["bad_json", "flag_history", "flags", "golden_json", "merge_ranges", "override",
           "record_assessment"]

_COLS = "source, run, lumi, good, level, reason, decided_by, comment, at"


def _flag_state(f: LumiFlag | None) -> dict[str, Any] | None:
    """A flag as the audit log's before/after value."""
    if f is None:
        return None
    return {"good": f.good, "level": f.level, "decided_by": f.decided_by,
            "comment": f.comment}


def _insert(store: Any, rows: Sequence[LumiFlag], audit: tuple[Any, ...] | None = None) -> None:
    """Insert ``rows``; ``audit`` = (actor, action, target, before, after) is appended to the
    audit log in the same transaction (even when there are no rows)."""
    if not rows and audit is None:
        return
    ph = store.ph
    with store.transaction() as cur:
        for f in rows:
            cur.execute(f"INSERT INTO lumi_flags ({_COLS}) VALUES ({','.join([ph] * 9)})",
                        (f.source, f.run, f.lumi, int(f.good), f.level, f.reason, f.decided_by,
                         f.comment, f.at))
        if audit is not None:
            from hotline.alerts.audit import append

            append(cur, store, *audit)


def flag_history(store: Any, run: int, source: str | None = None) -> list[LumiFlag]:
    """Every decision about ``run``'s lumisections, oldest first."""
    ph = store.ph
    sql = f"SELECT {_COLS} FROM lumi_flags WHERE run = {ph}"
    args: list[Any] = [run]
    if source is not None:
        sql += f" AND source = {ph}"
        args.append(source)
    with store.transaction() as cur:
        cur.execute(sql + " ORDER BY seq", args)
        rows = cur.fetchall()
    return [LumiFlag(s, int(r), int(ls), bool(g), lv, reason, by, comment, float(at))
            for s, r, ls, g, lv, reason, by, comment, at in rows]


def flags(store: Any, run: int, source: str | None = None) -> list[LumiFlag]:
    """The effective flag of each lumisection of ``run`` (latest override, else latest
    automatic decision), by lumisection."""
    auto: dict[tuple[str, int], LumiFlag] = {}
    expert: dict[tuple[str, int], LumiFlag] = {}
    for f in flag_history(store, run, source):
        (auto if f.decided_by == "auto" else expert)[(f.source, f.lumi)] = f
    merged = {**auto, **expert}
    return [merged[k] for k in sorted(merged, key=lambda k: (k[1], k[0]))]


def record_assessment(store: Any, status: RunStatus, amber_good: bool = True,
                      actor: Actor | None = None) -> list[LumiFlag]:
    """Store the engine's decision for each lumisection of ``status`` (only where it
    changed since the last automatic decision); returns the effective flags.

    With ``actor`` (a person asking for the assessment): the role is checked first
    (``assess_run``) and one audit row records the lumisections whose decision changed."""
    if actor is not None:
        require(actor, "assess_run")
    last = {f.lumi: f for f in flag_history(store, status.run, status.source)
            if f.decided_by == "auto"}
    now = time.time()
    new = []
    for ls in status.lumis:
        if ls.level == "idle":
            continue
        good = ls.level == "green" or (ls.level == "amber" and amber_good)
        reason = ls.reason or "as expected"
        prev = last.get(ls.lumi)
        if prev is not None and (prev.good, prev.level, prev.reason) == (good, ls.level, reason):
            continue
        new.append(LumiFlag(status.source, status.run, ls.lumi, good, ls.level, reason,
                            "auto", "", now))
    audit = None
    if actor is not None:
        audit = (actor, "assess_run", f"{status.source}/run {status.run}",
                 {str(f.lumi): _flag_state(last.get(f.lumi)) for f in new},
                 {str(f.lumi): _flag_state(f) for f in new})
    _insert(store, new, audit)
    return flags(store, status.run, status.source)


def override(store: Any, source: str, run: int, lumis: Iterable[int], good: bool,
             comment: str, user: str, actor: Actor | None = None) -> list[LumiFlag]:
    """An expert's decision on ``lumis`` of ``run`` (kept with who, when and why).

    With ``actor``: the role is checked first (``override_flags``), the decision is stored
    under the actor's name and one audit row (the flags before and after) is written with
    it in the same transaction."""
    if actor is not None:
        require(actor, "override_flags")
        user = actor.user
    if not comment or not comment.strip():
        raise ConfigError("an override needs a comment saying why (--comment)")
    if not user or not user.strip():
        raise ConfigError("an override needs the user who decides (--user)")
    current = {f.lumi: f for f in flags(store, run, source)}
    now = time.time()
    rows = []
    for ls in sorted(set(lumis)):
        prev = current.get(ls)
        rows.append(LumiFlag(source, run, ls, good, prev.level if prev else "idle",
                             prev.reason if prev else "not assessed", user.strip(),
                             comment.strip(), now))
    audit = None
    if actor is not None:
        audit = (actor, "override_flags", f"{source}/run {run}",
                 {str(f.lumi): _flag_state(current.get(f.lumi)) for f in rows},
                 {str(f.lumi): _flag_state(f) for f in rows})
    _insert(store, rows, audit)
    return flags(store, run, source)


def golden_json(flag_list: Sequence[LumiFlag]) -> dict[str, list[list[int]]]:
    """CMS golden JSON of the good lumisections: ``{"RUN": [[first, last], ...]}``."""
    runs: dict[int, list[int]] = {}
    for f in flag_list:
        if f.good:
            runs.setdefault(f.run, []).append(f.lumi)
    return {str(r): merge_ranges(ls) for r, ls in sorted(runs.items())}


def bad_json(flag_list: Sequence[LumiFlag]) -> dict[str, Any]:
    """The bad lumisections (merged where the decision is the same) with reasons, who and
    when; and the amber ones certified good, for expert review."""
    def groups(items: list[LumiFlag]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in sorted(items, key=lambda f: (f.run, f.lumi)):
            key = (f.run, f.decided_by, f.comment, f.level)
            if out and out[-1]["_key"] == key and out[-1]["last"] == f.lumi - 1:
                out[-1]["last"] = f.lumi
                if f.reason not in out[-1]["reasons"]:
                    out[-1]["reasons"].append(f.reason)
                continue
            out.append({"_key": key, "run": f.run, "first": f.lumi, "last": f.lumi,
                        "level": f.level, "reasons": [f.reason], "decided_by": f.decided_by,
                        "comment": f.comment, "at": f.at})
        for g in out:
            del g["_key"]
            g["reason"] = g["reasons"][0] if len(g["reasons"]) == 1 else " | ".join(
                g["reasons"][:3]) + (" | ..." if len(g["reasons"]) > 3 else "")
        return out

    return {"bad": groups([f for f in flag_list if not f.good]),
            "review": groups([f for f in flag_list if f.good and f.level == "amber"])}
