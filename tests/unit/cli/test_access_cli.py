"""Roles on the CLI against a shared store, and a scripted shift whose every write is audited.

The CLI acts as the OS account; its role comes from the store's mapping (``hotline access
grant``). Each role runs each write command: allowed -> exit 0 and its audit records;
refused -> exit 2, one line naming user, role and action, nothing written. Then a shift
across the dashboard (session handlers) and the CLI: audit records == writes done.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotline.alerts import audit
from hotline.alerts.access import ROLES, SYSTEM, allowed, grant, os_user
from hotline.alerts.backends import open_store
from hotline.alerts.secrets_at_rest import KEY_ENV, KEY_FILE_ENV, generate_key
from hotline.cli import main
from tests.conftest import make_events
from tests.support.access import ALERT, prepared_store, snapshot
from tests.support.rootfiles import write_events

ME = os_user()

#: action -> (CLI arguments after the command's store option is added, audit records)
COMMANDS: dict[str, tuple[list[str], int]] = {
    "assess_run": (["certify", "2"], 1),
    "override_flags": (["certify", "2", "--set", "3-4=bad", "--comment", "HV trip"], 2),
    "set_reference": (["reference", "set", "2", "--comment", "clean"], 1),
    "subscription_add": (["subscribe", "add", "--owner", "o", "--email", "o@example.org"], 1),
    "subscription_pause": (["subscribe", "pause", "{sub}"], 1),
    "subscription_remove": (["subscribe", "remove", "{sub}"], 1),
    "subscription_secret": (["subscribe", "secret", "{sub}", "--out", "{tmp}/s.txt"], 1),
    "access_grant": (["access", "grant", "--group", "cms-muon", "shifter"], 1),
    "access_revoke": (["access", "revoke", "--group", "old-shift-crew"], 1),
    "config_set": (["access", "webhooks", "--allow", "*.cern.ch"], 1),
    "secrets_rotate": (["access", "rotate-secrets"], 1),
    "replay_start": (["replay", "--files", "{run}", "--no-progress", "--no-model"], 1),
}


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("run") / "run7.root"
    return write_events(path, make_events(300, seed=3, run=7, events_per_lumi=100))


@pytest.mark.parametrize("action", sorted(COMMANDS))
def test_every_role_at_every_cli_write(action, tmp_path, run_file, capsys, monkeypatch):
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "secrets.key"))  # rotated here
    argv, records = COMMANDS[action]
    for role in ROLES:
        store, sub = prepared_store(tmp_path / f"{role}.db")
        grant(store, SYSTEM, "user", ME, role)  # the store is closed: this account's role
        before, n0 = snapshot(store), audit.count(store)
        args = [a.format(sub=sub, tmp=tmp_path, run=run_file) for a in argv]
        capsys.readouterr()
        rc = main([*args, "--store", store.url])
        out = capsys.readouterr()
        got = audit.entries(store)[n0:]
        if allowed(role, action):
            assert rc == 0, (action, role, out.err)
            assert len(got) == records and got[-1].action == action, (action, role)
            assert all(e.user == ME and e.role == role and e.via == "cli" for e in got)
        else:
            assert rc == 2, (action, role, out.out)
            assert f"{ME!r} ({role}) may not" in out.err and out.err.count("\n") == 1
            assert snapshot(store) == before and len(got) == 0, (action, role)
        store.close()


def test_user_option_cannot_impersonate_on_a_store_with_roles(tmp_path, capsys):
    store, _ = prepared_store(tmp_path / "a.db")
    grant(store, SYSTEM, "user", ME, "expert")
    rc = main(["certify", "2", "--set", "3=bad", "--comment", "x", "--user", "carol",
               "--store", store.url])
    assert rc == 2 and "acts as the OS account" in capsys.readouterr().err
    assert main(["access", "whoami", "--store", store.url]) == 0
    assert f"{ME} (" in capsys.readouterr().out
    store.close()


def test_scripted_shift_audit_count_equals_write_count(tmp_path, run_file, capsys,
                                                       monkeypatch):
    """A shift on one store: admin and expert on the CLI, shifter, expert and guest
    sessions on the dashboard (acknowledgements, certification, subscriptions). Every write
    leaves exactly one audit record, every refused attempt none."""
    from hotline.config import load_config
    from hotline.dashboard.app import create_page
    from hotline.dashboard.hub import build_hub

    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "secrets.key"))  # rotated here
    store, sub = prepared_store(tmp_path / "shift.db")
    url = store.url
    grant(store, SYSTEM, "user", ME, "admin")
    n0 = audit.count(store)
    writes: list[tuple[str, str]] = []  # (user, action) of every write done

    def cli(*argv: str, ok: bool = True) -> None:
        rc = main([*argv, "--store", url])
        capsys.readouterr()
        assert (rc == 0) is ok, argv

    # the admin sets up the shift on the CLI
    cli("access", "grant", "--group", "cms-hotline-shifters", "shifter")
    cli("access", "grant", "--group", "cms-hotline-experts", "expert")
    cli("access", "webhooks", "--allow", "*", "--allow", "*.cern.ch")
    cli("replay", "--files", str(run_file), "--no-progress", "--no-model")
    cli("access", "rotate-secrets")
    writes += [(ME, "access_grant")] * 2 + [(ME, "config_set"), (ME, "replay_start"),
                                            (ME, "secrets_rotate")]

    cfg = load_config(environ={}, cli={"store": {"url": url},
                                       "dashboard": {"oidc_issuer": "http://sso.invalid/r",
                                                     "oidc_client_id": "hotline"},
                                       "source": {"archive": str(tmp_path)}})
    hub = build_hub(cfg, store=store, replay=False)

    def session(user: str, groups: list[str]):
        return create_page(hub, user=user, groups=groups).hotline_views

    sara = session("sara", ["cms-hotline-shifters"])  # shifter
    eric = session("eric", ["cms-hotline-experts"])  # expert
    gail = session("gail", ["cms-visitors"])  # guest
    assert (sara["certification"].state.role, eric["certification"].state.role,
            gail["certification"].state.role) == ("shifter", "expert", "guest")

    assert sara["certification"].run == 7  # the run just replayed is on screen
    sara["certification"].assess()
    writes.append(("sara", "assess_run"))
    # the shifter acknowledges an alert and the flags of LS 1-2; the guest tries: refused
    for who in (sara, gail):
        who["alerts"].state.select(ALERT.id)
        who["contributions"].ack.comment_w.value = "MET spike, HCAL noise"
        who["contributions"].ack._click()
        who["strip"].pick(1, 2)
        who["lumi_ack"].comment_w.value = "HV trip, e-log 77"
        who["lumi_ack"]._click()
    assert "acknowledged by sara" in sara["lumi_ack"].msg.object, sara["lumi_ack"].msg.object
    assert "not allowed" in gail["lumi_ack"].msg.object
    writes += [("sara", "ack_alert"), ("sara", "ack_flag")]
    # the shifter tries an override (widgets forced as a browser could): refused
    c = sara["certification"]
    c.ranges_w.value, c.verdict_w.value, c.comment_w.value = "3-4", "bad", "looks odd"
    c.apply_override()
    c = eric["certification"]
    c.ranges_w.value, c.verdict_w.value, c.comment_w.value = "2-3", "bad", "HV trip, e-log 77"
    c.apply_override()
    assert "certified bad by eric" in c.msg.object, c.msg.object
    writes.append(("eric", "override_flags"))
    s = eric["subscriptions"]
    s.channel_w.value, s.target_w.value = "email", "muon-oncall@example.org"
    s.add()
    writes.append(("eric", "subscription_add"))
    s.select(sub)
    s.pause()
    s.resume()
    writes += [("eric", "subscription_pause"), ("eric", "subscription_resume")]
    g = gail["subscriptions"]  # the guest presses pause anyway: refused
    g.selected_sub = sub
    g.pause()
    gail["replay"]._start()  # refused (no replay here, nor the role)
    # the expert on the CLI is the OS account with the expert role now
    grant(store, SYSTEM, "user", ME, "expert")
    writes.append(("hotline", "access_grant"))
    cli("reference", "set", "2", "--comment", "clean run")
    cli("subscribe", "secret", sub, "--out", str(tmp_path / "secret.txt"))
    cli("access", "webhooks", "--allow", "*", ok=False)  # experts do not configure
    writes += [(ME, "set_reference"), (ME, "subscription_secret")]

    got = audit.entries(store)[n0:]
    assert [(e.user, e.action) for e in got] == writes
    assert {e.role for e in got if e.user == "eric"} == {"expert"}
    # and the log exports: one JSON line per record
    out = tmp_path / "audit.jsonl"
    assert main(["access", "audit", "--out", str(out), "--store", url]) == 0
    assert len(out.read_text().splitlines()) == audit.count(store)
    assert json.loads(out.read_text().splitlines()[-1])["action"] == "subscription_secret"
    store.close()


def test_open_store_cli_is_admin(tmp_path, capsys):
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    assert main(["access", "list", "--store", store.url]) == 0
    assert "the store is open" in capsys.readouterr().out
    assert main(["access", "grant", "--user", ME, "admin", "--store", store.url]) == 0
    assert main(["access", "list", "--store", store.url]) == 0
    assert f"{ME}" in capsys.readouterr().out
    store.close()


def test_rotate_secrets_and_a_wrong_key_on_the_cli(tmp_path, capsys, monkeypatch):
    """`hotline access rotate-secrets` re-encrypts under a new key file; the exported secret
    is unchanged; a host with another key gets one line naming the fix, exit 2."""
    key_file = tmp_path / "secrets.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    store, sub = prepared_store(tmp_path / "a.db")
    grant(store, SYSTEM, "user", ME, "admin")
    url = store.url
    assert main(["subscribe", "secret", sub, "--out", str(tmp_path / "s1"), "--store", url]) == 0
    old_key = key_file.read_text()
    capsys.readouterr()
    assert main(["access", "rotate-secrets", "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"1 webhook secret(s) re-encrypted; the new key is in {key_file}" in out
    assert key_file.read_text() != old_key and old_key.strip() not in out
    assert main(["subscribe", "secret", sub, "--out", str(tmp_path / "s2"), "--store", url]) == 0
    assert (tmp_path / "s1").read_text() == (tmp_path / "s2").read_text()
    capsys.readouterr()
    monkeypatch.setenv(KEY_ENV, generate_key())  # another host's key
    assert main(["subscribe", "secret", sub, "--out", str(tmp_path / "s3"), "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wrong key" in err and KEY_ENV in err
    assert not (tmp_path / "s3").exists()
    assert main(["access", "rotate-secrets", "--store", url]) == 2
    assert "give --new-key-file" in capsys.readouterr().err
    assert main(["access", "rotate-secrets", "--new-key-file", str(tmp_path / "k2"),
                 "--store", url]) == 2  # nothing it can open: nothing changed
    assert "wrong key" in capsys.readouterr().err
    assert not (tmp_path / "k2").exists() and not (tmp_path / "k2.new").exists()
    store.close()
