"""Replay control (real ROOT archive, real SQLite, background thread), auth helpers, CLI."""

from __future__ import annotations

import time

import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.cli import build_parser
from hotline.config import load_config
from hotline.dashboard.auth import check_password, origins, session_role, sign_in_mode
from hotline.dashboard.feed import LiveFeed
from hotline.dashboard.replay_control import ConfigContextFactory, ReplayController
from hotline.dashboard.state import DashboardState
from hotline.stream.archive import find_run
from hotline.stream.pipeline import PipelineContext


def controller(tmp_path, archive):
    store = SQLiteAlertStore(tmp_path / "r.db")
    feed = LiveFeed(store, source="hotline", min_interval=0.0)
    cfg = load_config(environ={}, cli={"source": {"archive": str(archive)}})
    rc = ReplayController(store, feed, lambda: PipelineContext.from_config(cfg), step_size=100)
    return store, feed, rc


def test_replay_runs_in_background_and_feeds_the_state(tmp_path, archive):
    store, feed, rc = controller(tmp_path, archive)
    run = find_run(archive, 7)
    rc.start(run.files, 7, rate=None)
    assert rc.wait(60)
    assert rc.error == "" and rc.events_read == 600 and rc.progress == 1.0
    assert "finished, 600 / 600 events" in rc.describe()
    st = DashboardState(feed, replay=rc)
    st.update(force=True)
    assert st.run == 7 and st.lumi == 12
    assert sum(st.input_series()["n"]) == 600
    assert st.alert_total == store.count_alerts() > 0
    with pytest.raises(RuntimeError):
        rc._thread = type("T", (), {"is_alive": lambda self: True})()
        rc.start(run.files, 7)
    store.close()


def test_replay_can_be_stopped(tmp_path, archive):
    store, feed, rc = controller(tmp_path, archive)
    rc.start(find_run(archive, 7).files, 7, rate=100)  # 6 s if left alone
    t0 = time.monotonic()
    while rc.events_read == 0 and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    rc.stop()
    assert not rc.running and time.monotonic() - t0 < 5
    assert 0 < rc.events_read < 600
    assert "stopped" in rc.describe()
    store.close()


def test_auth_policy(tmp_path):
    store = SQLiteAlertStore(tmp_path / "a.db")
    dash = load_config(environ={}).dashboard
    assert sign_in_mode(dash) == "none"
    basic = load_config(environ={}, cli={"dashboard": {"basic_auth": "secret"}}).dashboard
    assert sign_in_mode(basic) == "basic"
    assert check_password("secret", "anyone", "secret")
    assert not check_password("secret", "anyone", "Secret") and not check_password("", "a", "")
    # an open store: a basic-auth login is the laptop's admin; guests and no-login stay guests
    assert session_role(store, "alice", [], "basic")[0] == "admin"
    assert session_role(store, "guest", [], "basic")[0] == "guest"
    assert session_role(store, None, [], "basic")[0] == "guest"
    assert session_role(store, "alice", [], "none")[0] == "guest"
    assert session_role(store, "alice", ["x"], "oidc")[0] == "guest"  # SSO: grants needed
    assert origins("a:1, b:2,") == ["a:1", "b:2"]
    store.close()


def test_cli_has_dashboard_and_demo_serve(capsys):
    parser = build_parser()
    args = parser.parse_args(["dashboard", "--port", "5999", "--basic-auth", "pw"])
    assert args.port == 5999 and args.basic_auth == "pw" and args.handler
    args = parser.parse_args(["demo", "--serve"])
    assert args.serve is True
    assert parser.parse_args(["demo"]).serve is False  # plain `hotline demo` never blocks


def test_replay_in_a_child_process_feeds_the_live_overlay(tmp_path, archive):
    store = SQLiteAlertStore(tmp_path / "p.db")
    feed = LiveFeed(store, source="hotline", min_interval=0.0)
    cfg = load_config(environ={}, cli={"source": {"archive": str(archive)}})
    rc = ReplayController(store, feed, ConfigContextFactory(cfg), step_size=100, mode="process")
    rc.start(find_run(archive, 7).files, 7)
    assert rc.wait(120), "replay process did not finish"
    assert rc.error == "" and rc.events_read == 600 and rc.report.events == 600
    with feed._lock:
        live = dict(feed._live)
    assert sum(x.n_events for x in live.values()) == 600  # summaries came back per batch
    assert store.count_alerts() == rc.report.alerts_new > 0  # written by the child
    store.close()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_replay_reads_another_schema_through_the_configured_alias_spec(tmp_path, mode):
    """[source] schema reaches the dashboard's replay (thread and child process alike)."""
    from tests.conftest import make_events
    from tests.support.rootfiles import rename, write_events

    names = {"Muon": "ScoutingMuonNoVtx", "Electron": "ScoutingElectron",
             "Photon": "ScoutingPhoton", "Jet": "ScoutingPFJet", "MET": "ScoutingMET"}
    f = write_events(tmp_path / "scouting.root", rename(make_events(150, seed=4, run=8), names))
    store = SQLiteAlertStore(tmp_path / "r.db")
    feed = LiveFeed(store, source="hotline", min_interval=0.0)
    cfg = load_config(environ={})
    for schema, events in ((None, 0), ("run3_scouting", 150)):
        rc = ReplayController(store, feed, ConfigContextFactory(cfg), step_size=50, mode=mode,
                              schema=schema)
        rc.start([f], 8)
        assert rc.wait(60)
        if schema is None:  # no collection the pipeline reads: refused in one line
            assert "ScoutingMuonNoVtx" in rc.error or "Muon" in rc.error, rc.error
        else:
            assert rc.error == "" and sum(s.n_events for s in store.summaries()) == events
    store.close()


def test_replay_control_is_honest_about_rate_state_and_re_replays(tmp_path, archive):
    """Live rate while running, a fixed average after the end, Start disabled while a replay
    runs, a re-replay of a stored run says why nothing grows (real archive, real SQLite)."""
    from hotline.config import load_config as _cfg
    from hotline.dashboard.hub import Hub
    from hotline.dashboard.views.replay import ReplayControl

    store, feed, rc = controller(tmp_path, archive)
    hub = Hub(store=store, feed=feed, replay=rc, archive=str(archive),
              cfg=_cfg(environ={}, cli={"source": {"archive": str(archive)}}))
    st = hub.new_state(user="operator", role="admin", can_control=True)  # replays: admins
    view = ReplayControl(st)
    assert not view.start_w.disabled and view.stop_w.disabled
    view.run_w.value = 7
    view.rate_w.value = 400  # 1.5 s for 600 events
    view.start_w.clicks += 1
    assert view.start_w.disabled and rc.running
    t0 = time.monotonic()
    rates = []
    while rc.running and time.monotonic() - t0 < 20:
        view.refresh()
        st.update(force=True)
        if rc.events_read > 0:
            rates.append(st.event_rate)
        assert view.start_w.disabled or not rc.running
        time.sleep(0.2)
    assert rc.wait(30) and rc.error == ""
    assert max(rates) > 100  # the live input rate while running, not a long-run average
    view.refresh()
    st.update(force=True)
    assert not view.start_w.disabled and view.stop_w.disabled
    assert st.event_rate == 0.0  # nothing arrives any more
    done = rc.describe()
    assert "finished, 600 / 600 events in" in done and "average" in done
    time.sleep(1.1)
    assert rc.describe() == done  # the average does not keep falling after the end
    assert "already in the store" not in done
    # a second replay of the same run: its events are already counted, and the page says so
    rc.start(find_run(archive, 7).files, 7, rate=None)
    assert rc.wait(60) and rc.error == ""
    assert "was already in the store: its events are counted once" in rc.describe()
    assert sum(s.n_events for s in store.summaries()) == 600
    store.close()
