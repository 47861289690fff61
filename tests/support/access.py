"""Access-control test helpers: a store with a run to certify, and the store writes by action.

``WRITES`` maps each write action that is a store function (``alerts.access.ACTIONS``) to a
call doing it as an actor, on a store prepared by ``prepared_store`` (run 2 of source
``hotline`` with 12 lumisections and one alert ``ALERT`` in LS 9, one subscription ``sub``
and one group grant to revoke).
``snapshot`` reads every table a write may change, to prove a refused write changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hotline.alerts.access import SYSTEM, Actor, grant
from hotline.alerts.backends import open_store
from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.stream.pipeline import score_histogram

AE_RULE = "ae_default_p1e-04"
PRE_GROUP = "old-shift-crew"
#: the alert of the prepared store (run 2, the hot LS 9)
ALERT = AlertRecord.make(kind="classic", rule="met250", source="hotline", run=2, lumi=9,
                         event=42, payload={"objects": [["met", 365.0, 0, 1]]}, created=1.7e9)


def lumi_summary(run: int, lumi: int, n: int = 2000, met_count: int = 20) -> LumiSummary:
    rng = np.random.default_rng(1000 * run + lumi)
    scores = rng.exponential(1.0, n)
    s = LumiSummary("hotline", run, lumi, n_events=n, n_bad=0)
    s.rule_counts = {"met250": met_count, AE_RULE: int((scores > 10).sum())}
    s.score_hist = {AE_RULE: score_histogram(scores)}
    return s


def prepared_store(path: Path) -> tuple[Any, str]:
    """A real SQLite store for the write actions; returns (store, subscription id)."""
    from hotline.alerts.subscription_store import add_subscription

    store = open_store(f"sqlite:///{path}")
    store.upsert_summaries([lumi_summary(2, ls, met_count=400 if ls == 9 else 20)
                            for ls in range(1, 13)])
    store.add_alerts([ALERT])
    sub = add_subscription(store, owner="muon-oncall", channel="email",
                           settings={"to": ["oncall@example.org"], "smtp_host": "localhost"})
    grant(store, SYSTEM, "group", PRE_GROUP, "shifter")
    return store, sub.id


def _ack_alert(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.acknowledgements import acknowledge_alert

    acknowledge_alert(store, ALERT, "typed-name", "MET spike seen, HCAL noise", actor=actor)


def _ack_flag(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.acknowledgements import acknowledge_lumis

    acknowledge_lumis(store, "hotline", 2, [8, 9, 10, 12], "typed-name", "HV trip, e-log 77",
                      what="LS 8-12: red", actor=actor)


def _assess(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.certification import record_assessment
    from hotline.alerts.run_status import assess_run

    record_assessment(store, assess_run(store, 2, "hotline", model=False), actor=actor)


def _override(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.certification import override

    override(store, "hotline", 2, [3, 4], False, "HV trip in HCAL", "typed-name", actor=actor)


def _reference(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.reference import compute_reference, save_reference

    save_reference(store, compute_reference(store, 2, "hotline", None, actor.user, "clean"),
                   actor=actor)


def _sub(fn_name: str, **kw: Any) -> Callable[[Any, Actor, str], Any]:
    def call(store: Any, actor: Actor, sub: str) -> Any:
        from hotline.alerts import subscription_store

        return getattr(subscription_store, fn_name)(store, sub, actor=actor, **kw)

    return call


def _add(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.subscription_store import add_subscription

    add_subscription(store, owner="trigger", channel="email",
                     settings={"to": ["trigger@example.org"]}, actor=actor)


def _grant(store: Any, actor: Actor, sub: str) -> None:
    grant(store, actor, "group", "cms-hotline-experts", "expert")


def _revoke(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.access import revoke

    revoke(store, actor, "group", PRE_GROUP)


def _allow_list(store: Any, actor: Actor, sub: str) -> None:
    from hotline.alerts.outbound import set_allow_list

    set_allow_list(store, actor, ["*.example.org", "10.1.0.0/16"])


WRITES: dict[str, Callable[[Any, Actor, str], Any]] = {
    "ack_alert": _ack_alert,
    "ack_flag": _ack_flag,
    "assess_run": _assess,
    "override_flags": _override,
    "set_reference": _reference,
    "subscription_add": _add,
    "subscription_pause": _sub("pause_subscription"),
    "subscription_resume": _sub("resume_subscription"),
    "subscription_update": _sub("update_delivery_settings", max_group=50),
    "subscription_secret": _sub("export_secret"),
    "subscription_remove": _sub("remove_subscription"),
    "access_grant": _grant,
    "access_revoke": _revoke,
    "config_set": _allow_list,
}

_TABLES = ("acknowledgements", "lumi_flags", "status_references", "subscriptions", "access_roles",
           "access_settings", "outbox", "deliveries")


def snapshot(store: Any) -> dict[str, list[tuple]]:
    """Every row of the tables a write may change (sorted, for comparison)."""
    out = {}
    with store.transaction() as cur:
        for t in _TABLES:
            cur.execute(f"SELECT * FROM {t}")
            out[t] = sorted(tuple(map(str, r)) for r in cur.fetchall())
    return out
