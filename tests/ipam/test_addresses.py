"""Eip address parsing: OpenELB's accepted forms, and errors that name the bad part."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openelb.ipam import AddressError, AddressRange, Family, format_ip, parse_ip, parse_pool_address


def _range(text: str) -> tuple[Family, str, str, int]:
    rng = parse_pool_address(text).range
    return rng.family, format_ip(rng.family, rng.first), format_ip(rng.family, rng.last), rng.size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.7", (Family.IPV4, "192.0.2.7", "192.0.2.7", 1)),
        ("192.0.2.0-192.0.2.10", (Family.IPV4, "192.0.2.0", "192.0.2.10", 11)),
        ("192.0.2.5-192.0.2.5", (Family.IPV4, "192.0.2.5", "192.0.2.5", 1)),
        (" 192.0.2.1 - 192.0.2.3 ", (Family.IPV4, "192.0.2.1", "192.0.2.3", 3)),
        ("192.0.2.0/24", (Family.IPV4, "192.0.2.0", "192.0.2.255", 256)),
        ("192.0.2.0/31", (Family.IPV4, "192.0.2.0", "192.0.2.1", 2)),
        ("192.0.2.0/32", (Family.IPV4, "192.0.2.0", "192.0.2.0", 1)),
        ("192.0.2.0/255.255.255.0", (Family.IPV4, "192.0.2.0", "192.0.2.255", 256)),
        ("0.0.0.0/0", (Family.IPV4, "0.0.0.0", "255.255.255.255", 2**32)),
        ("2001:DB8::1", (Family.IPV6, "2001:db8::1", "2001:db8::1", 1)),
        ("2001:db8::-2001:db8::10", (Family.IPV6, "2001:db8::", "2001:db8::10", 17)),
        ("2001:db8::/64", (Family.IPV6, "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", 2**64)),
        (
            "2001:db8::/48",
            (Family.IPV6, "2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", 2**80),
        ),
        ("::/0", (Family.IPV6, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2**128)),
    ],
)
def test_accepts_openelb_address_forms(text: str, expected: tuple[Family, str, str, int]) -> None:
    assert _range(text) == expected


def test_cidr_with_host_bits_means_the_whole_network_like_openelb() -> None:
    parsed = parse_pool_address("192.0.2.10/24")
    assert str(parsed.range) == "192.0.2.0-192.0.2.255"
    assert parsed.masked_host_bits
    assert not parse_pool_address("192.0.2.0/24").masked_host_bits
    assert parse_pool_address("2001:db8::10/64").masked_host_bits


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("192.0.2.", "'192.0.2.'"),
        ("banana", "'banana'"),
        ("192.0.2.10-192.0.2.1", "reversed"),
        ("2001:db8::10-2001:db8::", "reversed"),
        ("192.0.2.1-2001:db8::1", "mixes IPv4 start '192.0.2.1' with IPv6 end '2001:db8::1'"),
        ("192.0.2.0-192.0.2.", "range end"),
        ("192.0.2.-192.0.2.10", "range start"),
        ("192.0.2.1-192.0.2.2-192.0.2.3", "has 2 '-'"),
        ("192.0.2.0/", "no prefix length"),
        ("192.0.2.0/33", "'/33'"),
        ("2001:db8::/129", "'/129'"),
        ("192.0.2.0/abc", "'/abc'"),
        ("192.0.2.0/255.255.0.254", "not contiguous"),
        ("192.0.2.0/24/8", "more than one '/'"),
        ("2001:db8::/255.255.255.0", "'/255.255.255.0'"),
        ("fe80::1%eth0", "zone"),
        ("::ffff:192.0.2.1", "IPv4-mapped"),
        ("010.0.0.1", "'010.0.0.1'"),
        ("10.0.0.1\x00", "not an IPv4 or IPv6"),
        ("\ud800", "not an IPv4 or IPv6"),
    ],
)
def test_rejects_bad_addresses_naming_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_pool_address(text)
    assert names in str(caught.value)


def test_parse_ip_names_what_was_parsed() -> None:
    assert parse_ip("10.1.2.3") == (Family.IPV4, 0x0A010203)
    with pytest.raises(AddressError, match="requested IP 'x' is not"):
        parse_ip("x", what="requested IP")


def test_range_objects_report_size_and_intersection() -> None:
    a = AddressRange(Family.IPV4, 10, 20)
    assert a.size == 11
    assert 15 in a and 21 not in a
    assert a.intersection(AddressRange(Family.IPV4, 18, 30)) == AddressRange(Family.IPV4, 18, 20)
    assert a.intersection(AddressRange(Family.IPV4, 21, 30)) is None
    assert a.intersection(AddressRange(Family.IPV6, 10, 20)) is None
    with pytest.raises(ValueError, match="bad IPv4 range"):
        AddressRange(Family.IPV4, 5, 4)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_ipv6_text_is_the_canonical_rfc5952_form(value: int) -> None:
    assert format_ip(Family.IPV6, value) == ipaddress.IPv6Address(value).compressed


@given(st.integers(min_value=0, max_value=2**48))
def test_ipv6_text_of_low_addresses_has_no_dotted_part(value: int) -> None:
    assert format_ip(Family.IPV6, value) == ipaddress.IPv6Address(value).compressed


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_text_round_trips(value: int) -> None:
    text = format_ip(Family.IPV4, value)
    assert text == str(ipaddress.IPv4Address(value))
    assert parse_ip(text) == (Family.IPV4, value)


@given(st.text(max_size=40))
def test_any_string_either_parses_or_raises_address_error(text: str) -> None:
    try:
        parsed = parse_pool_address(text)
    except AddressError as exc:
        assert str(exc)
    else:
        assert parsed.range.size >= 1


def _careful(text: str) -> tuple[Family, int] | None:
    stripped = text.strip()
    if "%" in stripped:
        return None
    try:
        ip = ipaddress.ip_address(stripped)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None
    return (Family.IPV4 if ip.version == 4 else Family.IPV6), int(ip)


@given(st.text(alphabet="0123456789abcdefABCDEF:.% -x", max_size=45))
def test_fast_ip_parsing_agrees_with_the_ipaddress_module(text: str) -> None:
    try:
        fast: tuple[Family, int] | None = parse_ip(text)
    except AddressError:
        fast = None
    assert fast == _careful(text)


@given(st.ip_addresses())
def test_every_valid_address_parses_as_ipaddress_reads_it(ip: object) -> None:
    text = str(ip)
    try:
        fast: tuple[Family, int] | None = parse_ip(text)
    except AddressError:
        fast = None
    assert fast == _careful(text)
