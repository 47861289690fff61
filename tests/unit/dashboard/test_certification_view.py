"""The certification card: flags as ranges, golden JSON, login-only assessment and overrides."""

from __future__ import annotations

import json
import logging
import time

import pytest

from hotline.alerts.backends import open_store
from hotline.alerts.certification import flag_history, flags, override
from hotline.alerts.lumi_status import LumiFlag
from hotline.dashboard.views.certification import (
    REFUSED,
    flag_frame,
    flag_ranges,
    parse_override,
)
from hotline.errors import ConfigError
from tests.unit.dashboard.conftest import lumi_summary, make_page


@pytest.fixture
def cert_store(tmp_path):
    """A real SQLite store: run 2 with lumisections 1-12 (LS 9 with a MET-rate burst)."""
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    store.upsert_summaries([lumi_summary(2, ls, met_count=400 if ls == 9 else 20)
                            for ls in range(1, 13)])
    yield store
    store.close()


def make_view(store, tmp_path, user, basic_auth="pw"):
    page = make_page(store, tmp_path, user, basic_auth)
    return page, page.hotline_views["certification"]


def flag(ls, good=True, level="green", reason="as expected", by="auto", comment="", at=1.0):
    return LumiFlag("hotline", 2, ls, good, level, reason, by, comment, at)


# ------------------------------------------------------------------ pure logic


def test_flag_ranges_merge_consecutive_same_decisions():
    fl = ([flag(ls) for ls in (1, 2, 3)]
          + [flag(4, False, "red", "AE rate 14x"), flag(5, False, "red", "AE rate 9x"),
             flag(6, False, "red", "AE rate 14x")]
          + [flag(7, False, "green", by="alice", comment="HV trip", at=5.0),
             flag(8, False, "green", by="alice", comment="HV trip", at=6.0)]
          + [flag(10), flag(11)])  # LS 9 missing: a new range starts
    got = flag_ranges(fl)
    assert [(g["first"], g["last"], g["good"], g["decided_by"]) for g in got] == [
        (1, 3, True, "auto"), (4, 6, False, "auto"), (7, 8, False, "alice"),
        (10, 11, True, "auto")]
    assert got[1]["reasons"] == ["AE rate 14x", "AE rate 9x"]
    assert got[2]["at"] == 6.0 and got[2]["comment"] == "HV trip"
    frame = flag_frame(fl)
    assert list(frame["lumisections"]) == ["1-3", "4-6", "7-8", "10-11"]
    assert list(frame["flag"]) == ["good", "bad", "bad", "good"]
    assert frame.iloc[1]["reason"] == "AE rate 14x | AE rate 9x"
    assert frame.iloc[2]["when"] == "1970-01-01 00:00:06"
    assert list(flag_frame([]).columns) == ["lumisections", "flag", "level", "reason",
                                            "decided_by", "comment", "when"]


def test_parse_override_accepts_ranges_and_names_bad_input():
    known = set(range(1, 41))
    assert parse_override(" 25-32, 35 ", "bad", " HV trip ", known) == (
        [*range(25, 33), 35], False, "HV trip")
    assert parse_override("7", "good", "checked", known) == ([7], True, "checked")
    for ranges, verdict, comment, words in [
        ("25-x", "bad", "c", "'25-x'"),
        ("32-25", "bad", "c", "ends before it starts"),
        ("", "bad", "c", "give the lumisections"),
        ("39-42,50", "bad", "c", "no lumisection 41-42, 50 (it has 1-40)"),
        ("3", "bad", "   ", "needs a comment"),
        ("3", "maybe", "c", "'maybe'"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse_override(ranges, verdict, comment, known)
        assert words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


# ------------------------------------------------------------------ the view on a real store


def test_guest_sees_flags_but_cannot_change_anything(cert_store, tmp_path, caplog):
    override(cert_store, "hotline", 2, [3, 4], False, "noisy HCAL", "alice")
    page, view = make_view(cert_store, tmp_path, "guest")
    assert page.hotline_state.can_control is False and view.run == 2
    assert all(w.disabled for w in view.controls)
    assert "log in" in view.login.object
    tab = view.table.value
    assert list(tab["lumisections"]) == ["3-4"]
    assert tab.iloc[0]["decided_by"] == "alice" and tab.iloc[0]["comment"] == "noisy HCAL"
    before = flag_history(cert_store, 2)
    # the widgets forced as a browser could send them: the server still refuses
    view.ranges_w.value, view.verdict_w.value, view.comment_w.value = "5-6", "bad", "me"
    with caplog.at_level(logging.WARNING, logger="hotline.dashboard.views.certification"):
        view.apply_override()
        assert view.msg.object == REFUSED
        view.msg.object = ""
        view.assess()
        assert view.msg.object == REFUSED
    assert "'guest' (guest) may not override_flags" in caplog.text
    assert flag_history(cert_store, 2) == before


def test_without_login_configured_nobody_can_certify(cert_store, tmp_path):
    _, view = make_view(cert_store, tmp_path, "alice", basic_auth="")
    assert all(w.disabled for w in view.controls)
    view.ranges_w.value, view.comment_w.value = "1", "x"
    view.apply_override()
    assert view.msg.object == REFUSED and flag_history(cert_store, 2) == []


def test_logged_in_override_is_stored_with_user_comment_and_time(cert_store, tmp_path,
                                                                 caplog):
    page, view = make_view(cert_store, tmp_path, "alice")
    assert not any(w.disabled for w in view.controls) and "alice" in view.login.object
    assert "not certified yet" in view.title.object and view.golden.object == ""
    view.ranges_w.value, view.verdict_w.value = "5-6,8", "bad"
    view.comment_w.value = "  HV trip in wheel 2, see e-log 1234  "
    t0 = time.time()
    with caplog.at_level(logging.INFO, logger="hotline.dashboard.views.certification"):
        view.apply_override()
    stored = flags(cert_store, 2, "hotline")
    assert [(f.lumi, f.good, f.decided_by, f.comment) for f in stored] == [
        (ls, False, "alice", "HV trip in wheel 2, see e-log 1234") for ls in (5, 6, 8)]
    assert all(t0 - 1 <= f.at <= time.time() for f in stored)
    assert "alice: override run 2 (hotline) LS 5-6,8 -> bad" in caplog.text
    assert "certified bad by alice" in view.msg.object
    assert view.ranges_w.value == "" and view.comment_w.value == ""
    # the table refreshed at once
    assert list(view.table.value["lumisections"]) == ["5-6", "8"]
    assert set(view.table.value["decided_by"]) == {"alice"}
    assert "0 of 3 lumisections certified good; 3 decided by an expert" in view.title.object


def test_bad_input_stores_nothing_and_says_why_in_one_line(cert_store, tmp_path):
    _, view = make_view(cert_store, tmp_path, "alice")
    for ranges, comment, words in [("5-x", "why", "'5-x'"), ("11-14", "why",
                                                              "no lumisection 13-14"),
                                   ("5", "", "needs a comment"), ("", "why", "give the")]:
        view.ranges_w.value, view.comment_w.value = ranges, comment
        view.apply_override()
        assert view.msg.object.startswith("**override not stored:**"), view.msg.object
        assert words in view.msg.object and "\n" not in view.msg.object
    assert flag_history(cert_store, 2) == []


def test_assess_and_certify_then_override_wins(cert_store, tmp_path):
    _, view = make_view(cert_store, tmp_path, "alice")
    view.assess()
    assert view.msg.object.startswith("run 2 assessed:"), view.msg.object
    auto = flags(cert_store, 2, "hotline")
    assert [f.lumi for f in auto] == list(range(1, 13))
    assert {f.decided_by for f in auto} == {"auto"}
    bad = [f.lumi for f in auto if not f.good]
    assert bad == [9], [(f.lumi, f.level, f.reason) for f in auto]
    assert json.loads(view.golden_text) == {"2": [[1, 8], [10, 12]]}
    assert "{&quot;2&quot;: [[1, 8], [10, 12]]}</pre>" in view.golden.object
    assert "11 of 12 lumisections certified good" in view.title.object
    # the expert certifies LS 9 good after all; assessing again does not lose that
    view.ranges_w.value, view.verdict_w.value, view.comment_w.value = "9", "good", "ok"
    view.apply_override()
    view.assess()
    now = flags(cert_store, 2, "hotline")
    assert all(f.good for f in now)
    assert [f.decided_by for f in now if f.lumi == 9] == ["alice"]
    assert view.golden_text == '{"2": [[1, 12]]}'


def test_refresh_is_throttled_and_sees_cli_changes(cert_store, tmp_path):
    _, view = make_view(cert_store, tmp_path, "guest")
    n = view.queries
    assert view.refresh() is False and view.queries == n
    view._last -= 2.0
    override(cert_store, "hotline", 2, [1], False, "from the CLI", "bob")
    assert view.refresh() is True and view.queries == n + 1
    assert list(view.table.value["decided_by"]) == ["bob"]


def test_follows_the_run_on_screen(cert_store, tmp_path):
    page, view = make_view(cert_store, tmp_path, "guest")
    state = page.hotline_state
    cert_store.upsert_summaries([lumi_summary(3, ls) for ls in (1, 2)])
    override(cert_store, "hotline", 3, [2], False, "run 3 LS 2", "bob")
    state.feed._last_poll = -1e9
    state.update(force=True)
    assert state.run == 3 and view.run == 3
    assert list(view.table.value["comment"]) == ["run 3 LS 2"]
