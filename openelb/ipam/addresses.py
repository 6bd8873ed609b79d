"""Addresses as integers: parsing an Eip's ``address`` and single IPs, and printing them back.

Pools are handled as ``[first, last]`` integer ranges so that a /64 (or a /48) costs the same as a
/24: nothing here ever enumerates a range. IPv4 and IPv6 live in separate integer spaces, so every
value travels with its :class:`Family`.

The accepted ``address`` forms are OpenELB's: a single IP, a CIDR (``10.0.0.0/24``, also with an
IPv4 dotted mask ``10.0.0.0/255.255.255.0``) or a range ``first-last``. Like OpenELB, a CIDR with
host bits set (``10.0.0.5/24``) means the whole network (``10.0.0.0-10.0.0.255``), and the network
and broadcast addresses belong to the pool; :func:`parse_pool_address` says when it masked bits so
validation can warn about it. Anything else is rejected with a message that names the bad part.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass


class Family(enum.Enum):
    """An address family, spelled as Kubernetes spells ``spec.ipFamilies``."""

    IPV4 = "IPv4"
    IPV6 = "IPv6"

    # Families key the hot dictionaries; Enum's own __hash__ is a Python call, identity is not.
    __hash__ = object.__hash__

    @property
    def bits(self) -> int:
        """Address length in bits."""
        return 32 if self is Family.IPV4 else 128

    @property
    def other(self) -> Family:
        """The other family (the secondary one of a dual-stack Service)."""
        return Family.IPV6 if self is Family.IPV4 else Family.IPV4

    @classmethod
    def parse(cls, text: str) -> Family | None:
        """``IPv4``/``IPv6`` (any case) to a family; None for anything else."""
        lowered = text.strip().lower()
        if lowered == "ipv4":
            return cls.IPV4
        if lowered == "ipv6":
            return cls.IPV6
        return None


class AddressError(ValueError):
    """An address string that is not a valid pool address or IP; the message names the bad part."""


@dataclass(frozen=True)
class AddressRange:
    """A contiguous, non-empty range of addresses of one family, bounds included."""

    family: Family
    """The family of both bounds."""
    first: int
    """Lowest address, as an integer."""
    last: int
    """Highest address, as an integer (``first <= last``)."""

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last < (1 << self.family.bits):
            raise ValueError(f"bad {self.family.value} range {self.first}-{self.last}")

    @property
    def size(self) -> int:
        """Number of addresses (an exact integer, also for 2**64 and beyond)."""
        return self.last - self.first + 1

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.first <= value <= self.last

    def intersection(self, other: AddressRange) -> AddressRange | None:
        """The addresses both ranges hold, or None (also for different families)."""
        if other.family is not self.family:
            return None
        first, last = max(self.first, other.first), min(self.last, other.last)
        return AddressRange(self.family, first, last) if first <= last else None

    def __str__(self) -> str:
        if self.first == self.last:
            return format_ip(self.family, self.first)
        return f"{format_ip(self.family, self.first)}-{format_ip(self.family, self.last)}"


@dataclass(frozen=True)
class ParsedAddress:
    """What an Eip ``address`` means, and whether parsing had to mask host bits."""

    range: AddressRange
    """The addresses of the pool."""
    masked_host_bits: bool = False
    """True for a CIDR such as ``10.0.0.5/24`` whose host bits were cleared (as OpenELB does)."""


def format_ip(family: Family, value: int) -> str:
    """The canonical text of an address (compressed IPv6, dotted IPv4)."""
    if family is Family.IPV4:
        # Formatting is on the allocation hot path: four shifts beat building an IPv4Address.
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    if value < _V6_EMBEDDED_V4_LIMIT:
        return ipaddress.IPv6Address(value).compressed
    # inet_ntop is C and prints RFC 5952 text, except that it writes addresses whose first 80 bits
    # are zero with an embedded dotted IPv4 part; those take the branch above.
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


_V6_EMBEDDED_V4_LIMIT = 1 << 48


def parse_ip(text: str, *, what: str = "address") -> tuple[Family, int]:
    """One IPv4 or IPv6 address to ``(family, integer)``; :class:`AddressError` names ``what``."""
    stripped = text.strip()
    fast = _parse_ip_fast(stripped)
    if fast is not None:
        return fast
    if not stripped:
        raise AddressError(f"{what} is empty")
    if "%" in stripped:
        raise AddressError(f"{what} '{stripped}' has a zone index; a pool address cannot")
    try:
        ip = ipaddress.ip_address(stripped)
    except ValueError:
        raise AddressError(f"{what} '{stripped}' is not an IPv4 or IPv6 address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        raise AddressError(
            f"{what} '{stripped}' is an IPv4-mapped IPv6 address; write it as {ip.ipv4_mapped}"
        )
    family = Family.IPV4 if ip.version == 4 else Family.IPV6
    return family, int(ip)


def _parse_ip_fast(text: str) -> tuple[Family, int] | None:
    """inet_pton (C) for the common, valid case; None sends the caller to the careful path."""
    # inet_pton raises OSError for a bad address, ValueError for a NUL, UnicodeError for
    # surrogates: all mean "not the easy case" (UnicodeError is a ValueError).
    try:
        return Family.IPV4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        pass
    if "%" in text:
        return None
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):
        return None
    if value >> 32 == 0xFFFF:
        return None  # IPv4-mapped: the careful path explains why it is refused
    return Family.IPV6, value


def parse_pool_address(text: str) -> ParsedAddress:
    """An Eip ``spec.address`` (single IP, CIDR, dotted-mask CIDR or ``first-last`` range)."""
    stripped = text.strip()
    if not stripped:
        raise AddressError("address is empty")
    if "/" in stripped:
        return _parse_cidr(stripped)
    if "-" in stripped:
        return ParsedAddress(_parse_range(stripped))
    family, value = parse_ip(stripped)
    return ParsedAddress(AddressRange(family, value, value))


def _parse_range(text: str) -> AddressRange:
    parts = text.split("-")
    if len(parts) != 2:
        raise AddressError(f"range '{text}' has {len(parts) - 1} '-'; write it as first-last")
    start_text, end_text = parts
    start_family, start = parse_ip(start_text, what=f"range start of '{text}'")
    end_family, end = parse_ip(end_text, what=f"range end of '{text}'")
    if start_family is not end_family:
        raise AddressError(
            f"range '{text}' mixes {start_family.value} start '{start_text.strip()}' "
            f"with {end_family.value} end '{end_text.strip()}'"
        )
    if start > end:
        raise AddressError(
            f"range '{text}' is reversed: start '{start_text.strip()}' is after "
            f"end '{end_text.strip()}'"
        )
    return AddressRange(start_family, start, end)


def _parse_cidr(text: str) -> ParsedAddress:
    if text.count("/") != 1:
        raise AddressError(f"CIDR '{text}' has more than one '/'")
    ip_text, prefix_text = (part.strip() for part in text.split("/"))
    family, value = parse_ip(ip_text, what=f"network address of '{text}'")
    prefix = _prefix_length(family, prefix_text, text)
    host_bits = family.bits - prefix
    first = (value >> host_bits) << host_bits
    last = first | ((1 << host_bits) - 1)
    return ParsedAddress(AddressRange(family, first, last), masked_host_bits=first != value)


def _prefix_length(family: Family, prefix_text: str, whole: str) -> int:
    if prefix_text.isdigit():
        prefix = int(prefix_text)
        if prefix > family.bits:
            raise AddressError(
                f"prefix length '/{prefix_text}' of '{whole}' is larger than {family.bits}"
            )
        return prefix
    if family is Family.IPV4 and prefix_text.count(".") == 3:
        try:
            mask = int(ipaddress.IPv4Address(prefix_text))
        except ValueError:
            raise AddressError(f"netmask '{prefix_text}' of '{whole}' is not valid") from None
        inverted = mask ^ 0xFFFFFFFF
        if inverted & (inverted + 1):
            raise AddressError(f"netmask '{prefix_text}' of '{whole}' is not contiguous")
        return 32 - inverted.bit_length()
    if not prefix_text:
        raise AddressError(f"CIDR '{whole}' has no prefix length after '/'")
    raise AddressError(f"prefix length '/{prefix_text}' of '{whole}' is not a number")
