"""The speakers' tiny UDP protocol for fast failure detection.

Membership (who exists) is slow and lives in Leases; these datagrams carry only what must be fast:

- ``HEARTBEAT``: "I, node N at incarnation I, am alive" (sequence numbers expose loss and
  reordering);
- ``GOODBYE``: "I am stopping gracefully, take over now";
- ``OBITUARY``: "I declared node S (incarnation i) dead" so the others need not wait for their own
  detector;
- ``ALIVE``: a refutation: "I, N, am alive at a higher incarnation than your obituary said";
- ``STOP``: "stop expecting my heartbeats" (the sender no longer owns anything the receiver backs
  up), so the receiver disarms its detector instead of declaring a false death;
- ``RELEASED``: "I stopped answering for VIP <subject>" to the node that owns it now, which
  (re-)announces at once: whatever the sender announced last is superseded, and a handover need
  not wait out its safety delay.

Layout (network byte order)::

    magic "OE" | version u8 | kind u8 | flags u8 | sender_len u8 | incarnation u64 | sequence u64
    | sender | [subject_len u8 | subject | subject_incarnation u64]  (OBITUARY, RELEASED; ALIVE:
                                                                       optional)
    | [HMAC-SHA256 truncated to 16 bytes]                              (flags & 1)

``decode`` never raises: malformed, unauthenticated or foreign input yields a ``Rejected`` with
a reason (counted by the receiver), because anything on the LAN can reach the port.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass

MAGIC = b"OE"
VERSION = 1
MAX_NAME = 253
"""A Kubernetes node name is a DNS subdomain: at most 253 bytes."""
MAC_LEN = 16
FLAG_MAC = 0x01

_HEAD = struct.Struct("!2sBBBBQQ")
_U64 = struct.Struct("!Q")
MAX_DATAGRAM = _HEAD.size + MAX_NAME + 1 + MAX_NAME + _U64.size + MAC_LEN


class Kind(enum.IntEnum):
    HEARTBEAT = 1
    GOODBYE = 2
    OBITUARY = 3
    ALIVE = 4
    STOP = 5
    RELEASED = 6


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded datagram."""

    kind: Kind
    sender: str
    incarnation: int
    sequence: int
    subject: str = ""
    """For OBITUARY: the node declared dead; for RELEASED: the VIP; empty otherwise."""
    subject_incarnation: int = 0


@dataclass(frozen=True, slots=True)
class Rejected:
    """A datagram that was not accepted, and why (a bounded set of reasons, used as a label)."""

    reason: str


def _name(value: str, what: str) -> bytes:
    raw = value.encode()
    if not raw or len(raw) > MAX_NAME:
        raise ValueError(f"{what} must be 1-{MAX_NAME} bytes, got {len(raw)}")
    return raw


def encode(message: Message, *, key: bytes | None = None) -> bytes:
    """The datagram for ``message``, authenticated with ``key`` when one is given."""
    sender = _name(message.sender, "sender")
    if not 0 <= message.incarnation < 2**64 or not 0 <= message.sequence < 2**64:
        raise ValueError("incarnation and sequence must fit in 64 bits")
    flags = FLAG_MAC if key else 0
    parts = [
        _HEAD.pack(
            MAGIC,
            VERSION,
            int(message.kind),
            flags,
            len(sender),
            message.incarnation,
            message.sequence,
        ),
        sender,
    ]
    if message.subject:
        subject = _name(message.subject, "subject")
        parts += [bytes((len(subject),)), subject, _U64.pack(message.subject_incarnation)]
    body = b"".join(parts)
    if key:
        body += hmac.new(key, body, hashlib.sha256).digest()[:MAC_LEN]
    return body


def decode(data: bytes, *, key: bytes | None = None) -> Message | Rejected:
    """Parse a datagram; never raises. With ``key``, unauthenticated datagrams are rejected."""
    if len(data) < _HEAD.size:
        return Rejected("short")
    magic, version, kind, flags, sender_len, incarnation, sequence = _HEAD.unpack_from(data)
    if magic != MAGIC:
        return Rejected("magic")
    if version != VERSION:
        return Rejected("version")
    try:
        kind_ = Kind(kind)
    except ValueError:
        return Rejected("kind")
    body_end = len(data)
    if flags & FLAG_MAC:
        body_end -= MAC_LEN
        if body_end < _HEAD.size:
            return Rejected("short")
    if flags & ~FLAG_MAC:
        return Rejected("flags")
    if key:
        if not flags & FLAG_MAC:
            return Rejected("unauthenticated")
        expected = hmac.new(key, data[:body_end], hashlib.sha256).digest()[:MAC_LEN]
        if not hmac.compare_digest(expected, data[body_end:]):
            return Rejected("bad-mac")
    pos = _HEAD.size
    if sender_len == 0 or pos + sender_len > body_end:
        return Rejected("sender")
    try:
        sender = data[pos : pos + sender_len].decode()
    except UnicodeDecodeError:
        return Rejected("sender")
    pos += sender_len
    subject, subject_inc = "", 0
    if pos < body_end:
        subject_len = data[pos]
        pos += 1
        if subject_len == 0 or pos + subject_len + _U64.size != body_end:
            return Rejected("subject")
        try:
            subject = data[pos : pos + subject_len].decode()
        except UnicodeDecodeError:
            return Rejected("subject")
        (subject_inc,) = _U64.unpack_from(data, pos + subject_len)
    if kind_ in (Kind.OBITUARY, Kind.RELEASED) and not subject:
        return Rejected("subject")
    return Message(kind_, sender, incarnation, sequence, subject, subject_inc)


def heartbeat(*, sender: str, incarnation: int, sequence: int, key: bytes | None = None) -> bytes:
    """Shorthand for the datagram the heartbeat thread sends (pre-built in batches)."""
    return encode(Message(Kind.HEARTBEAT, sender, incarnation, sequence), key=key)
