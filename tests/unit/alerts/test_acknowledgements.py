"""Crew acknowledgements in a real alert store (alerts.acknowledgements). The tests taking
only ``store`` also run on PostgreSQL
(tests/integration/postgres/test_acknowledgements_postgres.py)."""

from __future__ import annotations

import pytest

from hotline.alerts.acknowledgements import (
    acknowledge_alert,
    acknowledge_lumis,
    acknowledged,
    acknowledgements,
)
from hotline.alerts.records import AlertRecord
from hotline.errors import ConfigError


def _alert(run: int = 5, lumi: int = 3, event: int = 42) -> AlertRecord:
    return AlertRecord.make(kind="classic", rule="met250", source="hotline", run=run,
                            lumi=lumi, event=event, payload={"objects": [["met", 365.0, 0, 1]]})


def test_an_alert_acknowledgement_is_stored_with_who_when_and_why(store):
    a = _alert()
    store.add_alerts([a])
    ack = acknowledge_alert(store, a, "shifter", "  MET spike seen, HCAL noise  ", at=1000.0)
    assert (ack.alert_id, ack.acked_by, ack.comment, ack.at) == (a.id, "shifter",
                                                                  "MET spike seen, HCAL noise",
                                                                  1000.0)
    assert "met250" in ack.what and "run 5 LS 3 event 42" in ack.what
    assert acknowledgements(store, 5) == [ack]
    assert acknowledgements(store, 5, source="other") == []
    assert acknowledged(store, [a.id, "unknown"]) == {a.id: ack}
    # a second acknowledgement keeps the first (history) and is the latest
    later = acknowledge_alert(store, a, "expert", "confirmed", at=2000.0)
    assert acknowledgements(store, 5) == [ack, later]
    assert acknowledged(store, [a.id])[a.id] == later


def test_lumisection_flags_are_acknowledged_per_range(store):
    rows = acknowledge_lumis(store, "hotline", 7, [12, 13, 14, 20], "shifter",
                             "HV trip, see e-log 77", what="LS 12-20: red - AE rate 14x",
                             at=1500.0)
    assert [(r.first_lumi, r.last_lumi, r.lumis) for r in rows] == [(12, 14, "LS 12-14"),
                                                                     (20, 20, "LS 20")]
    assert all(r.alert_id == "" and r.what == "LS 12-20: red - AE rate 14x" for r in rows)
    assert acknowledgements(store, 7) == rows


def test_bad_input_is_refused_in_one_line_and_nothing_is_stored(store):
    a = _alert()
    for user, comment, what in (("", "ok", "user"), ("shifter", "  ", "comment")):
        with pytest.raises(ConfigError, match=what):
            acknowledge_alert(store, a, user, comment)
    with pytest.raises(ConfigError, match="no lumisections"):
        acknowledge_lumis(store, "hotline", 5, [], "shifter", "why")
    assert acknowledgements(store, 5) == []


def test_many_alert_ids_are_looked_up_in_chunks(store):
    alerts = [_alert(event=i) for i in range(1203)]
    for a in alerts[::100]:
        acknowledge_alert(store, a, "shifter", "seen")
    got = acknowledged(store, [a.id for a in alerts])
    assert set(got) == {a.id for a in alerts[::100]}
