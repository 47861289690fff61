"""The subscriptions card: table, delivery log, login-only changes, no secret on screen."""

from __future__ import annotations

import socket
import time

import panel as pn
import pytest

from hotline.alerts.backends import open_store
from hotline.alerts.delivery import DeliveryWorker
from hotline.alerts.outbox import delivery_log
from hotline.alerts.subscription_store import (
    add_subscription,
    get_subscription,
    list_subscriptions,
    pause_subscription,
)
from hotline.dashboard.app import alert_from_args
from tests.support.outbound import allow_local_webhooks
from tests.unit.dashboard.conftest import ae_alert, classic_alert, make_page


@pytest.fixture
def sub_store(tmp_path):
    """A real SQLite store (outbox installed) with two subscriptions and queued deliveries."""
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    allow_local_webhooks(store)
    hook = add_subscription(store, owner="trigger-expert", channel="webhook",
                            settings={"url": "http://127.0.0.1:9/hook?token=abc"},
                            filter={"kinds": ["ae"], "max_p": 1e-3}, name="ae-hook")
    mail = add_subscription(store, owner="muon-oncall", channel="email",
                            settings={"to": ["muon@example.org"]},
                            filter={"rules": ["met250"]})
    store.add_alerts([ae_alert(2, ls, 100 + ls, created=1000.0 + ls) for ls in range(1, 4)]
                     + [classic_alert(2, 1, 201)])
    yield store, hook, mail
    store.close()


def texts(view) -> str:
    """Every value / text a browser could show in the subscriptions card."""
    out = []
    for obj in view.__panel__().select(lambda o: True):
        for attr in ("value", "object", "label", "placeholder", "options"):
            v = getattr(obj, attr, None)
            if v is not None and not callable(v):
                out.append(v.to_csv() if hasattr(v, "to_csv") else str(v))
    return "\n".join(out)


def test_table_lists_subscriptions_with_counts_and_no_secret(sub_store, tmp_path):
    store, hook, mail = sub_store
    view = make_page(store, tmp_path, "guest").hotline_views["subscriptions"]
    tab = view.table.value
    assert list(tab["id"]) == [hook.id, mail.id]
    row = tab.set_index("id").loc[hook.id]
    assert (row["owner"], row["channel"], row["status"]) == ("trigger-expert", "webhook",
                                                             "active")
    assert "kinds=ae" in row["filter"] and "max_p=0.001" in row["filter"]
    # a guest sees scheme and host only: a chat-style webhook's path is its secret
    assert row["target"] == "http://127.0.0.1:9/…"
    expert = make_page(store, tmp_path, "alice").hotline_views["subscriptions"]
    row = expert.table.value.set_index("id").loc[hook.id]
    assert row["target"] == "http://127.0.0.1:9/hook"  # the query (may hold a token) is cut
    assert row["queued"] == 3 and row["sent"] == 0 and row["pending"] == 0
    assert tab.set_index("id").loc[mail.id, "queued"] == 1
    shown = texts(view)
    for s in (hook, mail):
        body = s.secret.removeprefix("whsec_")
        assert body[:8] not in shown and s.secret not in shown
    assert "token=abc" not in shown


def test_guest_cannot_change_anything(sub_store, tmp_path):
    store, hook, mail = sub_store
    page = make_page(store, tmp_path, "guest")
    assert page.hotline_state.can_control is False
    view = page.hotline_views["subscriptions"]
    assert all(w.disabled for w in view.controls)
    assert "log in" in view.login.object and "change subscriptions" in view.login.object
    before = [(s.id, s.paused) for s in list_subscriptions(store)]
    view.select(hook.id)
    view.confirm_w.value = True
    for handler in (view.pause, view.remove):
        view.msg.object = ""
        handler()
        assert "not allowed" in view.msg.object
    view.channel_w.value = "webhook"
    view.target_w.value = "http://127.0.0.1:9/other"
    view.add()
    assert "not allowed" in view.msg.object
    assert [(s.id, s.paused) for s in list_subscriptions(store)] == before
    pause_subscription(store, hook.id)
    view.resume()
    assert get_subscription(store, hook.id).paused is True


def test_logged_in_user_pauses_resumes_removes(sub_store, tmp_path):
    store, hook, mail = sub_store
    page = make_page(store, tmp_path, "alice")
    view = page.hotline_views["subscriptions"]
    assert not any(w.disabled for w in view.controls) and "alice" in view.login.object
    view.pause()
    assert "select a subscription" in view.msg.object
    view.select(hook.id)
    assert view.selected_sub == hook.id
    view.pause()
    assert get_subscription(store, hook.id).paused is True
    assert view.table.value.set_index("id").loc[hook.id, "status"] == "paused"
    view.resume()
    assert get_subscription(store, hook.id).paused is False
    view.select(mail.id)
    view.remove()
    assert "confirm remove" in view.msg.object and len(list_subscriptions(store)) == 2
    view.confirm_w.value = True
    view.remove()
    assert [s.id for s in list_subscriptions(store)] == [hook.id]
    assert list(view.table.value["id"]) == [hook.id] and view.selected_sub == ""


def test_logged_in_user_adds_webhook_and_email(sub_store, tmp_path):
    store, *_ = sub_store
    view = make_page(store, tmp_path, "alice").hotline_views["subscriptions"]
    view.channel_w.value = "webhook"
    view.target_w.value = "http://user:pw@example.org/hook"
    view.add()
    assert "cannot add" in view.msg.object and "credentials" in view.msg.object
    assert len(list_subscriptions(store)) == 2
    view.target_w.value = "https://example.org/hook"
    view.kinds_w.value = ["ae"]
    view.rules_w.value = "ae_test, met250"
    view.max_p_w.value = 1e-4
    view.add()
    new = [s for s in list_subscriptions(store) if s.owner == "alice"]
    assert len(new) == 1
    sub = new[0]
    assert sub.channel == "webhook" and sub.settings["url"] == "https://example.org/hook"
    assert sub.filter.kinds == ("ae",) and sub.filter.rules == ("ae_test", "met250")
    assert sub.filter.max_p == 1e-4
    assert f"hotline subscribe secret {sub.id}" in view.msg.object
    assert "whsec_…" in texts(view)  # the helper sees the message: only the prefix is shown
    assert sub.secret not in texts(view)
    assert sub.secret.removeprefix("whsec_")[:8] not in texts(view)
    assert sub.id in list(view.table.value["id"]) and view.selected_sub == sub.id
    view.channel_w.value = "email"
    view.target_w.value = "dqm@example.org"
    view.owner_w.value = "dqm-shifter"
    view.kinds_w.value = ["dqm"]
    view.rules_w.value = ""
    view.max_p_w.value = None
    view.min_z_w.value = 4.0
    view.smtp_w.value = "127.0.0.1:2525"
    view.add()
    [mail] = [s for s in list_subscriptions(store) if s.owner == "dqm-shifter"]
    assert mail.settings["to"] == ["dqm@example.org"] and mail.settings["smtp_port"] == 2525
    assert mail.settings["dashboard_url"] == "http://127.0.0.1:5006/"
    assert mail.filter.min_significance == 4.0 and mail.filter.kinds == ("dqm",)


def test_delivery_log_of_selected_subscription(sub_store, tmp_path):
    store, hook, mail = sub_store
    with DeliveryWorker(store, threads=1) as worker:
        assert worker.collect() == 4  # 3 AE alerts for the hook, 1 classic for the e-mail
    expected = {d.message_id for d in delivery_log(store, hook.id)}
    view = make_page(store, tmp_path, "guest").hotline_views["subscriptions"]
    assert len(view.log_table.value) == 0
    i = list(view.table.value["id"]).index(hook.id)
    view.table.selection = [i]  # what a click on the row does
    log = view.log_table.value
    assert set(log["key"]) == expected and len(log) == 3
    assert set(log["status"]) == {"pending"} and set(log["kind"]) == {"alert/single"}
    assert hook.id in view.log_title.object
    assert view.table.value.set_index("id").loc[hook.id, "pending"] == 3
    view.select(mail.id)
    assert len(view.log_table.value) == 1


def test_failed_attempts_show_attempts_and_last_error(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/b.db")
    allow_local_webhooks(store)
    with socket.socket() as sk:  # a port with nobody listening: connection refused
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    hook = add_subscription(store, owner="x", channel="webhook",
                            settings={"url": f"http://127.0.0.1:{port}/down"})
    store.add_alerts([ae_alert(2, 1, 5)])
    view = make_page(store, tmp_path, "guest").hotline_views["subscriptions"]
    with DeliveryWorker(store, threads=1) as worker:
        assert worker.collect() == 1 and worker.submit_due() == 1
        deadline = time.monotonic() + 10
        while not worker.record(wait=0.1):
            assert time.monotonic() < deadline, "the attempt never finished"
    view.refresh(force=True)
    row = view.table.value.set_index("id").loc[hook.id]
    assert row["last_error"] and row["pending"] == 1
    view.select(hook.id)
    [entry] = view.log_table.value.to_dict("records")
    assert entry["attempts"] == 1 and entry["status"] == "pending"
    assert entry["last_error"] == row["last_error"] and entry["key"] == store.alerts()[0].id
    assert hook.secret.removeprefix("whsec_")[:8] not in texts(view)
    store.close()


def test_refresh_at_most_once_per_second_and_sees_new_queue(sub_store, tmp_path):
    store, hook, _ = sub_store
    view = make_page(store, tmp_path, "guest").hotline_views["subscriptions"]
    n = view.queries
    store.add_alerts([ae_alert(3, 1, 1)])
    assert view.refresh() is False and view.queries == n  # just refreshed on build
    view._last -= 1.0  # a second later
    assert view.refresh() is True
    assert view.table.value.set_index("id").loc[hook.id, "queued"] == 4


def test_alert_from_url_query_is_selected(sub_store, tmp_path):
    store, *_ = sub_store
    a = store.alerts(kind="ae", limit=1)[0]
    assert alert_from_args({"alert": [a.id.encode()]}) == a.id
    assert alert_from_args({}) == ""
    page = make_page(store, tmp_path, "guest", alert=a.id)
    assert page.hotline_state.selected_id == a.id
    assert "largest contributions mu1" in page.hotline_views["contributions"].note.object


def test_view_is_a_panel_viewer(sub_store, tmp_path):
    store, *_ = sub_store
    view = make_page(store, tmp_path, "guest").hotline_views["subscriptions"]
    assert isinstance(view, pn.viewable.Viewer)
    assert isinstance(view.__panel__(), pn.Column)
