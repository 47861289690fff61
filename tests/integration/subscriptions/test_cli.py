"""`hotline subscribe ...` and `hotline deliver` end to end, with a real webhook receiver."""

from __future__ import annotations

import json
import stat

from hotline.alerts.outbox import install_outbox
from hotline.alerts.store import SQLiteAlertStore
from hotline.cli import main
from tests.integration.subscriptions.receivers import Receiver
from tests.support.alerts import make_alerts


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_subscribe_lifecycle(tmp_path, capsys, receivers):
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    secret_file = tmp_path / "hook.secret"
    port = Receiver.reserve()
    url = f"http://127.0.0.1:{port}/hook?team=trigger"
    # the receiver listens on this machine: the admin allows loopback targets explicitly
    rc, out = _run(capsys, "access", "webhooks", "--store", db, "--allow", "*",
                   "--allow", "127.0.0.1/32")
    assert rc == 0 and "127.0.0.1/32" in out, out
    rc, out = _run(capsys, "subscribe", "add", "--store", db, "--owner", "trigger-expert",
                   "--kind", "ae", "--max-p", "1e-4", "--webhook", url,
                   "--secret-out", str(secret_file), "--storm-threshold", "50", "--json")
    assert rc == 0, out
    sub = json.loads(out)
    secret = secret_file.read_text().strip()
    assert secret.startswith("whsec_") and stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert sub["secret"] == "whsec_…" and secret not in out
    sid = sub["id"]

    r = receivers(secret, port=port).start()
    rc, out = _run(capsys, "subscribe", "test", sid, "--store", db)
    assert rc == 0 and "delivered test notification" in out and len(r.accepted) == 1

    rc, out = _run(capsys, "subscribe", "pause", sid, "--store", db)
    assert rc == 0 and "paused" in out
    store = SQLiteAlertStore(tmp_path / "alerts.db")
    install_outbox(store)
    alerts = make_alerts(200, seed=51)
    store.add_alerts(alerts)
    want = {a.id for a in alerts if a.kind == "ae" and a.p_value <= 1e-4}
    rc, out = _run(capsys, "deliver", "--store", db, "--until-idle", "--max-seconds", "20")
    assert rc == 0 and "messages sent 0" in out  # paused: held, not lost
    rc, out = _run(capsys, "subscribe", "list", "--store", db)
    assert "paused" in out and "whsec_…" in out and secret not in out
    assert str(len(want)) in out  # queued count

    assert _run(capsys, "subscribe", "resume", sid, "--store", db)[0] == 0
    rc, out = _run(capsys, "deliver", "--store", db, "--until-idle", "--max-seconds", "20")
    assert rc == 0 and f"alerts {len(want)}" in out
    assert r.alert_ids() - {r.accepted[0][1]["data"]["id"]} == want

    rc, out = _run(capsys, "subscribe", "log", sid, "--store", db, "--json")
    log = json.loads(out)
    assert log["stats"]["alerts_sent"] == len(want) and log["stats"]["failed"] == 0
    rc, out = _run(capsys, "subscribe", "log", sid, "--store", db)
    assert rc == 0 and "sent" in out and secret not in out

    rc, out = _run(capsys, "subscribe", "remove", sid, "--store", db)
    assert rc == 0
    rc, out = _run(capsys, "subscribe", "log", sid, "--store", db)
    assert rc == 2 and "no subscription" in out
    store.close()


def test_bad_input_is_one_line_error(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    rc, out = _run(capsys, "subscribe", "add", "--store", db, "--owner", "x",
                   "--webhook", "https://user:pw@example.org/h")
    assert rc == 2 and "must not contain credentials" in out and "pw@" not in out
    rc, out = _run(capsys, "subscribe", "add", "--store", db, "--owner", "x",
                   "--webhook", "https://example.org/h", "--rate", "lots")
    assert rc == 2 and "--rate" in out
    rc, out = _run(capsys, "subscribe", "add", "--store", db, "--owner", "x",
                   "--webhook", "https://example.org/h", "--object-type", "muon")
    assert rc == 2 and "unknown object type" in out and "muons" in out


def test_muon_experts_subscribe_to_ae_alerts_pointing_to_muons(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    rc, out = _run(capsys, "subscribe", "add", "--store", db, "--owner", "muon-dqm", "--json",
                   "--kind", "ae", "--object-type", "muons", "--webhook", "https://example.org/h")
    assert rc == 0, out
    assert json.loads(out)["filter"]["object_types"] == ["muons"]


def test_test_command_reports_failure(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    port = Receiver.reserve()
    assert _run(capsys, "access", "webhooks", "--store", db, "--allow", "*",
                "--allow", "127.0.0.1/32")[0] == 0
    rc, out = _run(capsys, "subscribe", "add", "--store", db, "--owner", "x", "--json",
                   "--webhook", f"http://127.0.0.1:{port}/h", "--timeout", "1")
    sid = json.loads(out)["id"]
    rc, out = _run(capsys, "subscribe", "test", sid, "--store", db)
    assert rc == 1 and "cannot connect" in out
