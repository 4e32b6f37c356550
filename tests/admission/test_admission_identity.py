"""Client identity: forwarded headers only from trusted proxies, read from the right."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidegate.admission import ClientIdentity
from tidegate.admission.identity import forwarded_chain

from .admission_support import admitted, info, running

PEER = "10.0.0.5"  # our load balancer


def test_headers_are_ignored_by_default() -> None:
    identity = ClientIdentity()
    spoofed = {"x-forwarded-for": "1.1.1.1", "forwarded": "for=2.2.2.2"}
    assert identity.client_ip("198.51.100.9", spoofed) == "198.51.100.9"
    assert identity.client_ip(None, spoofed) == "unknown"


def test_untrusted_peer_cannot_set_its_address() -> None:
    identity = ClientIdentity(["10.0.0.0/8"])
    assert identity.client_ip("198.51.100.9", {"x-forwarded-for": "1.1.1.1"}) == "198.51.100.9"


def test_rightmost_untrusted_address_wins() -> None:
    identity = ClientIdentity(["10.0.0.0/8", "192.168.1.1"])
    # The client claimed 6.6.6.6; our edge proxy appended the real peer, 203.0.113.4; an inner
    # proxy appended the edge proxy.
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.4, 192.168.1.1"}
    assert identity.client_ip(PEER, headers) == "203.0.113.4"
    assert identity.client_ip(PEER, {"x-forwarded-for": "203.0.113.4:5555"}) == "203.0.113.4"
    # Only trusted hops: the origin is the leftmost.
    assert identity.client_ip(PEER, {"x-forwarded-for": "10.1.1.1, 10.2.2.2"}) == "10.1.1.1"
    # No header: the peer itself.
    assert identity.client_ip(PEER, {}) == PEER


def test_rfc7239_forwarded_wins_and_parses_ipv6() -> None:
    identity = ClientIdentity(["10.0.0.0/8", "2001:db8:ffff::/48"])
    headers = {
        "forwarded": 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.9.9.9;by=x',
        "x-forwarded-for": "7.7.7.7",
    }
    assert identity.client_ip(PEER, headers) == "2001:db8:cafe::17"
    assert forwarded_chain(headers) == ["6.6.6.6", "2001:db8:cafe::17", "10.9.9.9"]
    assert (
        identity.client_ip("2001:db8:ffff::1", {"forwarded": "for=198.51.100.1"}) == "198.51.100.1"
    )


def test_obfuscated_or_garbage_hop_stops_the_walk() -> None:
    identity = ClientIdentity(["10.0.0.0/8"])
    assert identity.client_ip(PEER, {"forwarded": "for=1.2.3.4, for=_hidden"}) == "_hidden"
    assert identity.client_ip(PEER, {"x-forwarded-for": "1.2.3.4, unknown"}) == "unknown"


def test_ipv4_mapped_peers_are_normalized() -> None:
    assert ClientIdentity().client_ip("::ffff:198.51.100.9", {}) == "198.51.100.9"
    identity = ClientIdentity(["10.0.0.0/8"])
    assert (
        identity.client_ip("::ffff:10.0.0.5", {"x-forwarded-for": "198.51.100.2"}) == "198.51.100.2"
    )


headers = st.dictionaries(
    st.sampled_from(["x-forwarded-for", "forwarded", "x-real-ip"]),
    st.one_of(
        st.text(max_size=60),
        st.lists(st.ip_addresses().map(str), max_size=5).map(", ".join),
    ),
    max_size=3,
)


@given(st.ip_addresses().map(str), headers)
def test_never_crashes_and_untrusted_peers_always_win(peer: str, hdrs: dict[str, str]) -> None:
    trusting = ClientIdentity(["10.0.0.0/8", "fd00::/8"])
    result = trusting.client_ip(peer, hdrs)
    assert isinstance(result, str) and result
    if not trusting.is_trusted(peer):
        assert result == ClientIdentity().client_ip(peer, {})
    assert ClientIdentity().client_ip(peer, hdrs) == ClientIdentity().client_ip(peer, {})


async def test_spoofed_header_does_not_dodge_a_per_ip_limit() -> None:
    async with running(limits=[{"key": "ip", "requests": "2/minute"}]) as admission:
        results = [
            await admitted(
                admission, info(client_ip="198.51.100.9", headers={"x-forwarded-for": f"1.1.1.{n}"})
            )
            for n in range(5)
        ]
        assert results == [True, True, False, False, False]


async def test_trusted_proxy_clients_are_counted_separately() -> None:
    async with running(
        limits=[{"key": "ip", "requests": "1/minute"}],
        admission={"trusted_proxies": ["10.0.0.0/8"]},
    ) as admission:
        behind = {"x-forwarded-for": "203.0.113.1"}
        assert await admitted(admission, info(client_ip=PEER, headers=behind))
        assert not await admitted(admission, info(client_ip=PEER, headers=behind))
        other = {"x-forwarded-for": "203.0.113.2"}
        assert await admitted(admission, info(client_ip=PEER, headers=other))
