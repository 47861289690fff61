"""Each role at each write handler of the dashboard (server side), session expiry, audit view.

Handlers are called directly, as a browser that enabled a disabled widget could trigger
them: the role the store maps the session's groups to decides, and each allowed write
leaves exactly one audit record.
"""

from __future__ import annotations

import time

import pytest

from hotline.alerts import audit
from hotline.alerts.access import ROLES, SYSTEM, allowed, grant
from hotline.config import load_config
from hotline.dashboard.app import create_page
from hotline.dashboard.hub import build_hub
from tests.conftest import make_events
from tests.support.access import ALERT, prepared_store, snapshot

GROUPS = {"shifter": "cms-hotline-shifters", "expert": "cms-hotline-experts",
          "admin": "cms-hotline-admins"}


def _hub(store, archive, tmp_path):
    cfg = load_config(environ={}, cli={"store": {"url": store.url},
                                       "dashboard": {"oidc_issuer": "http://sso.invalid/r",
                                                     "oidc_client_id": "hotline"},
                                       "source": {"archive": str(archive)}})
    hub = build_hub(cfg, store=store, replay_mode="thread")
    hub.feed.min_interval = 0.0
    return hub


def _override(v, sub):
    c = v["certification"]
    c.ranges_w.value, c.verdict_w.value, c.comment_w.value = "3-4", "bad", "HV trip"
    c.apply_override()


def _add(v, sub):
    s = v["subscriptions"]
    s.channel_w.value, s.target_w.value = "email", "oncall@example.org"
    s.add()


def _on_sub(method):
    def call(v, sub):
        s = v["subscriptions"]
        s.selected_sub = sub
        s.confirm_w.value = True
        getattr(s, method)()
    return call


def _replay(v, sub):
    r = v["replay"]
    r.run_w.value = 7
    r.rate_w.value = 0
    r._start()
    assert r.state.replay.wait(60)
    r.state.update(force=True)


def _ack_alert(v, sub):
    v["alerts"].state.select(ALERT.id)
    ack = v["contributions"].ack
    ack.comment_w.value = "MET spike seen"
    ack._click()


def _ack_flag(v, sub):
    v["strip"].pick(8, 10)
    ack = v["lumi_ack"]
    ack.comment_w.value = "HV trip, e-log 77"
    ack._click()


HANDLERS = {
    "ack_alert": _ack_alert,
    "ack_flag": _ack_flag,
    "assess_run": lambda v, sub: v["certification"].assess(),
    "override_flags": _override,
    "subscription_add": _add,
    "subscription_pause": _on_sub("pause"),
    "subscription_resume": _on_sub("resume"),
    "subscription_remove": _on_sub("remove"),
    "replay_start": _replay,
}


@pytest.fixture
def run7_archive(tmp_path):
    from hotline.stream.archive_writer import write_run

    write_run(tmp_path / "archive", 7, make_events(200, seed=1, run=7, events_per_lumi=100),
              events_per_file=200, card={"description": "access test"})
    return tmp_path / "archive"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_at_every_dashboard_write(role, tmp_path, run7_archive):
    store, sub = prepared_store(tmp_path / f"{role}.db")
    for r, g in GROUPS.items():
        grant(store, SYSTEM, "group", g, r)
    hub = _hub(store, run7_archive, tmp_path)
    views = create_page(hub, user=f"{role}-user",
                        groups=[GROUPS[role]] if role in GROUPS else ["visitors"]
                        ).hotline_views
    assert views["certification"].state.role == role
    views["certification"].refresh(force=True)
    assert views["certification"].run == 2
    for action, handler in HANDLERS.items():  # in order: remove last but one, replay last
        before, n0 = snapshot(store), audit.count(store)
        n_alerts = store.count_alerts()
        handler(views, sub)
        got = audit.entries(store)[n0:]
        if allowed(role, action):
            assert [(e.user, e.role, e.action, e.via) for e in got] == [
                (f"{role}-user", role, action, "dashboard")], (action, role)
            if action == "replay_start":
                assert store.count_alerts() >= n_alerts and hub.replay.events_read == 200
            else:
                assert snapshot(store) != before, (action, role)
        else:
            assert got == [] and snapshot(store) == before, (action, role)
            assert store.count_alerts() == n_alerts
            if action == "replay_start":
                assert hub.replay.events_read == 0
    hub.replay.stop()
    store.close()


def test_session_expiry_makes_the_session_a_guest(tmp_path, run7_archive):
    store, sub = prepared_store(tmp_path / "a.db")
    grant(store, SYSTEM, "group", GROUPS["expert"], "expert")
    hub = _hub(store, run7_archive, tmp_path)
    # signed in 12 h + 1 s ago: the sign-in has ended
    views = create_page(hub, user="eric", groups=[GROUPS["expert"]],
                        signed_in_at=time.time() - 12 * 3600 - 1).hotline_views
    state = views["subscriptions"].state
    assert state.actor().role == "guest" and state.role == "guest" and not state.can_control
    assert all(w.disabled for w in views["subscriptions"].controls)
    n0 = audit.count(store)
    _on_sub("pause")(views, sub)
    assert audit.count(store) == n0 and "not allowed" in views["subscriptions"].msg.object
    fresh = create_page(hub, user="eric", groups=[GROUPS["expert"]]).hotline_views
    assert fresh["subscriptions"].state.actor().role == "expert"
    hub.replay.stop()
    store.close()


def test_audit_view_for_experts_only(tmp_path, run7_archive):
    store, sub = prepared_store(tmp_path / "a.db")
    for r, g in GROUPS.items():
        grant(store, SYSTEM, "group", g, r)
    hub = _hub(store, run7_archive, tmp_path)
    shifter = create_page(hub, user="sara", groups=[GROUPS["shifter"]]).hotline_views["audit"]
    assert not shifter.allowed and shifter.table.value.empty
    assert "shown to experts and admins" in shifter.note.object
    assert shifter._csv().getvalue() == ""  # the download re-checks the role
    expert = create_page(hub, user="eric", groups=[GROUPS["expert"]]).hotline_views
    _on_sub("pause")(expert, sub)
    view = expert["audit"]
    view.refresh(force=True)
    top = view.table.value.iloc[0]
    assert (top["user"], top["role"], top["action"], top["target"]) == (
        "eric", "expert", "subscription_pause", sub)
    assert top["before"] == '{"paused": false}' and top["after"] == '{"paused": true}'
    assert len(view.table.value) == audit.count(store)
    csv_text = view._csv().getvalue()
    assert csv_text.startswith("seq,at_utc,user") and "subscription_pause" in csv_text
    view.export()
    assert "download='audit_log.csv'" in view.link.object
    assert f"({audit.count(store)} records)" in view.link.object
    hub.replay.stop()
    store.close()
