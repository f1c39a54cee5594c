"""Where a webhook may point: the URL's shape, and which addresses it may reach.

A webhook URL is checked once, at start-up (:func:`check_url`): http or https, a host that
is a DNS name or an IP literal, a port in 1..65535, no whitespace or control characters. A
literal address is judged then by the policy; a host name is judged on every delivery, on
each address it resolves to (:class:`GuardedResolver`), because DNS may point it anywhere
later, and the connection is made only to the addresses judged.

The policy (``HEATMAP_WEBHOOK_TARGETS``) is a ladder of address classes:

* ``public``: global unicast addresses only.
* ``private`` (default): also loopback, RFC 1918 / unique-local and carrier-grade NAT
  (100.64.0.0/10) addresses; receivers on the same host or the site's LAN are legitimate.
* ``any``: also link-local (169.254.0.0/16, fe80::/10) and the clouds' instance metadata
  addresses, which otherwise hand out credentials to anything that asks.

Never: unspecified (0.0.0.0, ::), multicast, broadcast and reserved addresses (no receiver
lives there). :func:`origin` is what error texts show of a URL: scheme and host only, since
a path or a query may carry a token.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["POLICIES", "DEFAULT_POLICY", "TargetRefused", "GuardedResolver", "check_url", "refusal", "origin"]

POLICIES = ("public", "private", "any")
DEFAULT_POLICY = "private"
#: Instance metadata services outside 169.254.0.0/16 (AWS over IPv6, Alibaba Cloud).
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
# Underscores too: not valid in host names, but Docker and some internal DNS use them.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_RE = re.compile(r"^%s(?:\.%s)*\.?$" % (_LABEL, _LABEL))
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


class TargetRefused(OSError):
    """A webhook host resolved only to addresses the policy refuses."""


def _address_class(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``public``, ``private``, ``link-local`` (with metadata) or ``never``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA or ip.is_link_local:
        return "link-local"
    if ip.is_loopback:  # (before "reserved": ::1 lies in the reserved ::/8)
        return "private"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "never"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        return "private"
    return "public" if ip.is_global else "never"


_ALLOWED = {"public": {"public"}, "private": {"public", "private"}, "any": {"public", "private", "link-local"}}


def refusal(address: str, policy: str) -> str | None:
    """Why ``policy`` refuses the IP ``address`` (text), or None if it may be reached."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "%s is not an IP address" % address
    kind = _address_class(ip)
    if kind in _ALLOWED[policy]:
        return None
    if kind == "never":
        return "%s is not a unicast address a receiver can have" % address
    if kind == "link-local":
        return "%s is link-local or a metadata address (HEATMAP_WEBHOOK_TARGETS=any allows it)" % address
    return "%s is a private or loopback address (HEATMAP_WEBHOOK_TARGETS=private allows it)" % address


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def check_url(value: object, policy: str) -> str | None:
    """What is wrong with ``value`` as a webhook URL under ``policy``, or None."""
    if not isinstance(value, str) or not value:
        return "must be an http:// or https:// URL"
    if _BAD_CHARS.search(value):
        return "must not hold spaces or control characters (CR, LF, tab)"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return "is not a valid URL (%s)" % exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    if port == 0:
        return "port must be in 1..65535"
    host = parts.hostname
    literal = _literal(host)
    if literal is None:
        if "[" in parts.netloc:
            return "host %r is not an IP address" % host
        if not host.isascii() or not _HOST_RE.match(host):
            return "host %r is not a valid host name (international names in their xn-- form)" % host
        return None
    why = refusal(literal, policy)
    return None if why is None else "refused: " + why


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, without user, path, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    try:
        port = parts.port
    except ValueError:  # out of range: the host alone
        port = None
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s%s" % (parts.scheme, host, ":%d" % port if port else "")


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then keeps only the addresses ``policy``
    allows; none left is :class:`TargetRefused`. aiohttp connects only to what the resolver
    returns, so a name cannot be switched to another address between check and connect."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if refusal(r["host"], self.policy) is None]
        if not kept:
            reasons = sorted({refusal(r["host"], self.policy) or "" for r in found})
            raise TargetRefused("%s: %s" % (host, "; ".join(reasons) or "no address"))
        return kept

    async def close(self) -> None:
        await self._inner.close()
