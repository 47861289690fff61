"""Outbound safety of webhook deliveries: the admin's allow-list and the address checks.

A webhook URL makes the delivery worker send requests from inside the control-room network,
so a subscription must not be able to reach internal services (server-side request
forgery). ``check_url(url, policy)`` decides, and returns the addresses the request may go
to; the webhook channel connects to exactly those addresses (never resolving the name
again, so a DNS answer that changes between the check and the connection cannot redirect
it), and follows no HTTP redirect (a 3xx fails the notification).

The policy (``OutboundPolicy``) is an allow-list stored in the alert store by an admin
(``hotline access webhooks --allow ...``, setting ``webhook_allow``, audited). Entries:

* a host name or glob (``hooks.example.org``, ``*.cern.ch``; ``*`` is any host) - allows
  that host when every address it resolves to is a public (global) address;
* an IP address or CIDR block (``10.1.2.3``, ``10.0.0.0/8``, ``::1/128``) - allows
  addresses inside it, including private, loopback and link-local ones.

Private (RFC 1918, unique-local), loopback, link-local (cloud metadata 169.254.169.254),
shared (100.64/10), multicast, reserved and unspecified addresses are refused unless an IP
or CIDR entry names them: a host-name entry never unlocks them, whatever the name
resolves to. IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry. The
default allow-list is ``["*"]``: any public host.

Checked when a subscription is added (the dashboard's form and ``hotline subscribe add``;
a name that does not resolve yet is accepted there) and on every new connection of the
delivery worker (``alerts.channels.webhook``; a name that does not resolve fails the
attempt).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hotline.errors import ConfigError

__all__ = ["DEFAULT_ALLOW", "OutboundPolicy", "OutboundRefused", "check_url", "is_public",
           "load_policy", "parse_allow", "resolve", "set_allow_list"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOW: tuple[str, ...] = ("*",)
_HOST_GLOB = re.compile(r"^[A-Za-z0-9*?.\-_]+$")


class OutboundRefused(ConfigError):
    """A webhook target the outbound policy refuses (one line naming the URL and why)."""


def _ip(value: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(value.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(ip: IPAddress) -> bool:
    """A globally routable unicast address (not private, loopback, link-local, ...)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not ip.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    """The allow-list as host globs and networks (see the module docstring)."""

    hosts: tuple[str, ...] = DEFAULT_ALLOW
    networks: tuple[IPNetwork, ...] = ()

    @property
    def entries(self) -> list[str]:
        return [*self.hosts, *(str(n) for n in self.networks)]

    def host_listed(self, host: str) -> bool:
        h = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(h, p.lower()) for p in self.hosts)

    def network_of(self, ip: IPAddress) -> IPNetwork | None:
        for n in self.networks:
            if ip.version == n.version and ip in n:
                return n
        return None


def parse_allow(entries: Iterable[str]) -> OutboundPolicy:
    """An allow-list from its entries; ``ConfigError`` naming a malformed entry."""
    hosts: list[str] = []
    nets: list[IPNetwork] = []
    for raw in entries:
        e = str(raw).strip()
        if not e:
            continue
        if "/" in e or _ip(e) is not None:
            try:
                nets.append(ipaddress.ip_network(e.strip("[]"), strict=False))
            except ValueError:
                raise ConfigError(f"webhook allow-list entry {e!r} is not an IP address or "
                                  "CIDR block") from None
        elif _HOST_GLOB.match(e):
            hosts.append(e.lower())
        else:
            raise ConfigError(f"webhook allow-list entry {e!r}: use a host name or glob "
                              "(*.example.org), an IP address or a CIDR block")
    return OutboundPolicy(tuple(hosts), tuple(nets))


def load_policy(store: Any) -> OutboundPolicy:
    """The allow-list stored in ``store`` (the default when none was set)."""
    from hotline.alerts.access import get_setting

    return parse_allow(get_setting(store, "webhook_allow", list(DEFAULT_ALLOW)))


def set_allow_list(store: Any, actor: Any, entries: Sequence[str]) -> OutboundPolicy:
    """Replace the stored allow-list (admin only; audited)."""
    from hotline.alerts.access import require, set_setting

    require(actor, "config_set")
    policy = parse_allow(entries)
    set_setting(store, actor, "webhook_allow", policy.entries)
    return policy


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (``OSError`` when it does not resolve)."""
    out: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = _ip(str(sockaddr[0]))
        if ip is not None and ip not in out:
            out.append(ip)
    return out


def check_url(url: str, policy: OutboundPolicy, *, resolve_names: bool = True,
              strict_dns: bool = True) -> list[IPAddress]:
    """The addresses a request to ``url`` may connect to; ``OutboundRefused`` naming the URL
    and the reason when the policy refuses it. ``strict_dns=False``: a name that does not
    resolve is accepted (with no addresses) if the allow-list lists it."""
    u = urlsplit(url)
    host = u.hostname or ""
    where = f"{u.scheme}://{u.netloc}"
    if not host:
        raise OutboundRefused(f"webhook {where}: no host")
    port = u.port or (443 if u.scheme == "https" else 80)
    literal = _ip(host)
    if literal is not None:
        addrs = [literal]
    else:
        if not policy.host_listed(host):
            raise OutboundRefused(f"webhook {where}: host {host} is not on the webhook "
                                  f"allow-list ({', '.join(policy.entries) or 'empty'})")
        if not resolve_names:
            return []
        try:
            addrs = resolve(host, port)
        except OSError as exc:
            if strict_dns:
                raise OutboundRefused(f"webhook {where}: cannot resolve {host}: "
                                      f"{exc.strerror or exc}") from None
            return []
    for ip in addrs:
        if policy.network_of(ip) is not None:
            continue
        if not is_public(ip):
            via = "" if literal is not None else f" ({host} resolves to {ip})"
            raise OutboundRefused(
                f"webhook {where}: {ip} is a private, loopback or link-local address{via}; "
                "only an IP or CIDR entry of the allow-list can allow it")
        if literal is not None and not policy.host_listed(host):
            raise OutboundRefused(f"webhook {where}: address {ip} is not on the webhook "
                                  f"allow-list ({', '.join(policy.entries) or 'empty'})")
    return addrs
