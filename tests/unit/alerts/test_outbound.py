"""Outbound policy of webhooks: private targets refused, also by DNS name; the allow-list."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from hotline.alerts.access import SYSTEM, AccessDenied, Actor
from hotline.alerts.backends import open_store
from hotline.alerts.outbound import (
    OutboundRefused,
    check_url,
    load_policy,
    parse_allow,
    set_allow_list,
)
from hotline.alerts.subscription_store import add_subscription
from hotline.errors import ConfigError

DEFAULT = parse_allow(["*"])

PRIVATE_LITERALS = [
    "http://127.0.0.1:8080/hook", "http://127.1.2.3/", "http://10.0.0.5/", "http://172.16.3.4/",
    "http://192.168.1.10/", "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/", "http://0.0.0.0:80/", "http://[::1]:8080/", "http://[fd00::1]/",
    "http://[fe80::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/",
    "http://224.0.0.1/", "https://[::]/",
]


@pytest.mark.parametrize("url", PRIVATE_LITERALS)
def test_private_loopback_link_local_addresses_are_refused(url):
    with pytest.raises(OutboundRefused, match="private, loopback or link-local"):
        check_url(url, DEFAULT)


@pytest.mark.parametrize("name", ["localhost", socket.gethostname()])
def test_dns_names_resolving_to_private_addresses_are_refused(name):
    """Real names of this machine's resolver (/etc/hosts) that point at loopback/private."""
    addrs = {ai[4][0] for ai in socket.getaddrinfo(name, 80)}
    assert addrs and not any(ipaddress.ip_address(a).is_global for a in addrs)
    with pytest.raises(OutboundRefused, match=f"{name} resolves to"):
        check_url(f"http://{name}:9000/hook", DEFAULT)
    # a host-name entry never unlocks a private address, even naming the host exactly
    with pytest.raises(OutboundRefused, match="only an IP or CIDR entry"):
        check_url(f"http://{name}:9000/hook", parse_allow([name]))


def test_ip_and_cidr_entries_allow_private_targets():
    pol = parse_allow(["127.0.0.1/32", "10.1.0.0/16"])
    assert [str(a) for a in check_url("http://127.0.0.1:9/h", pol)] == ["127.0.0.1"]
    assert [str(a) for a in check_url("http://localhost:9/h", parse_allow(
        ["localhost", "127.0.0.0/8"]))] == ["127.0.0.1"]
    assert check_url("http://10.1.200.3/", pol)
    with pytest.raises(OutboundRefused):
        check_url("http://10.2.0.1/", pol)
    with pytest.raises(OutboundRefused, match="not on the webhook allow-list"):
        check_url("http://localhost:9/h", pol)  # the name itself is not listed


def test_host_globs_and_public_addresses():
    pol = parse_allow(["*.example.org", "203.0.113.0/24"])
    # a listed name that does not resolve: accepted when adding (strict_dns=False) only
    assert check_url("https://hooks.example.org/x", pol, resolve_names=False) == []
    with pytest.raises(OutboundRefused, match="not on the webhook allow-list"):
        check_url("https://evil.example.com/x", pol, resolve_names=False)
    with pytest.raises(OutboundRefused, match="not on the webhook allow-list"):
        check_url("https://8.8.8.8/x", pol)  # public, but not listed
    assert check_url("https://8.8.8.8/x", DEFAULT)  # "*": any public address
    assert check_url("https://203.0.113.7/x", pol)  # documentation range, by CIDR
    with pytest.raises(OutboundRefused, match="cannot resolve"):
        check_url("https://no-such-host.invalid/x", parse_allow(["*"]))
    with pytest.raises(ConfigError, match="entry 'http://x'"):
        parse_allow(["http://x"])
    with pytest.raises(ConfigError, match="not an IP address or CIDR"):
        parse_allow(["10.0.0.0/33"])


def test_allow_list_is_admin_only_and_checked_when_adding(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    assert load_policy(store).entries == ["*"]
    with pytest.raises(OutboundRefused, match="169.254.169.254"):
        add_subscription(store, owner="x", channel="webhook",
                         settings={"url": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(OutboundRefused, match="localhost resolves to 127.0.0.1"):
        add_subscription(store, owner="x", channel="webhook",
                         settings={"url": "http://localhost:8080/admin"})
    with pytest.raises(AccessDenied, match="needs the admin role"):
        set_allow_list(store, Actor("bob", "expert"), ["127.0.0.1/32"])
    assert load_policy(store).entries == ["*"]
    set_allow_list(store, SYSTEM, ["*", "127.0.0.1/32"])
    assert load_policy(store).entries == ["*", "127.0.0.1/32"]
    sub = add_subscription(store, owner="x", channel="webhook",
                           settings={"url": "http://127.0.0.1:8080/hook"})
    assert sub.settings["url"] == "http://127.0.0.1:8080/hook"
    store.close()
