"""Who is the client: the socket peer, or what a *trusted* proxy says it forwarded for.

``X-Forwarded-For`` and ``Forwarded`` are plain request headers anyone can send, so believing them
by default would let a client pick a fresh IP per request and walk past every per-IP limit.
They are read only when the socket peer is inside ``trusted_proxies``, and then from the right:
each trusted hop appends the address it received from, so we skip our own proxies from the end
and stop at the first address that is not one — everything left of it was written by the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

__all__ = ["ClientIdentity", "forwarded_chain"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_CACHE_MAX = 4096
_MAX_TOKEN = 64


class ClientIdentity:
    """Resolves client addresses; built once from ``admission.trusted_proxies``."""

    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(item, strict=False) for item in trusted_proxies)
        self._trust_cache: dict[str, bool] = {}

    @property
    def trusts_anyone(self) -> bool:
        return bool(self._networks)

    def is_trusted(self, address: str) -> bool:
        cached = self._trust_cache.get(address)
        if cached is not None:
            return cached
        ip = _parse_ip(address)
        trusted = ip is not None and self._trusted_ip(ip)
        if len(self._trust_cache) >= _CACHE_MAX:
            self._trust_cache.clear()
        self._trust_cache[address] = trusted
        return trusted

    def _trusted_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self._networks)

    def client_ip(self, peer: str | None, headers: Mapping[str, str]) -> str:
        """The address limits should count; ``headers`` has lower-case names."""
        if peer is None:
            return "unknown"
        if not self._networks or not self.is_trusted(peer):
            return _normalize(peer)
        chain = forwarded_chain(headers)
        if not chain:
            return _normalize(peer)
        for token in reversed(chain):
            ip = _parse_ip(token)
            if ip is None:
                # Not an address ("unknown", an obfuscated id): nothing left of it can be verified.
                return token[:_MAX_TOKEN]
            if not self._trusted_ip(ip):
                return str(ip)
        first = _parse_ip(chain[0])
        return str(first) if first is not None else _normalize(peer)


def forwarded_chain(headers: Mapping[str, str]) -> list[str]:
    """The forwarded-for addresses, client first: RFC 7239 ``Forwarded`` wins over XFF."""
    forwarded = headers.get("forwarded")
    if forwarded:
        chain: list[str] = []
        for element in forwarded.split(","):
            for pair in element.split(";"):
                name, sep, value = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    chain.append(_strip_port(value.strip().strip('"')))
        return chain
    xff = headers.get("x-forwarded-for")
    if not xff:
        return []
    return [_strip_port(item.strip()) for item in xff.split(",") if item.strip()]


def _strip_port(token: str) -> str:
    if token.startswith("["):  # "[2001:db8::1]:4711"
        end = token.find("]")
        return token[1:end] if end > 0 else token
    if token.count(":") == 1:  # "192.0.2.1:8080"
        return token.partition(":")[0]
    return token


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _normalize(peer: str) -> str:
    if peer.startswith("::ffff:"):
        ip = _parse_ip(peer)
        return str(ip) if ip is not None else peer
    return peer
