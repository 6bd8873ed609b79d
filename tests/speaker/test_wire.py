"""Wire format: round trips, authentication, and decode never raising on garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openelb.speaker import wire
from openelb.speaker.wire import Kind, Message, Rejected

KEY = b"secret-key"


@pytest.mark.parametrize("key", [None, KEY])
def test_every_kind_round_trips(key: bytes | None) -> None:
    for kind in Kind:
        subject = {Kind.OBITUARY: "node-b", Kind.ALIVE: "node-b", Kind.RELEASED: "fd00::1"}
        text = subject.get(kind, "")
        msg = Message(kind, "node-a", 2**63 + 5, 42, text, 7 if text else 0)
        assert wire.decode(wire.encode(msg, key=key), key=key) == msg


def test_keyed_receiver_rejects_unauthenticated_and_tampered() -> None:
    msg = Message(Kind.HEARTBEAT, "node-a", 1, 1)
    assert wire.decode(wire.encode(msg), key=KEY) == Rejected("unauthenticated")
    data = bytearray(wire.encode(msg, key=KEY))
    data[10] ^= 1
    assert wire.decode(bytes(data), key=KEY) == Rejected("bad-mac")
    assert wire.decode(wire.encode(msg, key=b"other"), key=KEY) == Rejected("bad-mac")


@pytest.mark.parametrize("kind", [Kind.OBITUARY, Kind.RELEASED])
def test_a_message_about_something_without_its_subject_is_rejected(kind: Kind) -> None:
    data = wire.encode(Message(Kind.HEARTBEAT, "a", 1, 1))
    data = data[:3] + bytes((kind,)) + data[4:]
    assert wire.decode(data) == Rejected("subject")


def test_encode_refuses_bad_names() -> None:
    with pytest.raises(ValueError, match="sender"):
        wire.encode(Message(Kind.HEARTBEAT, "", 1, 1))
    with pytest.raises(ValueError, match="sender"):
        wire.encode(Message(Kind.HEARTBEAT, "x" * 300, 1, 1))


def test_heartbeat_fits_the_native_ring_slot() -> None:
    assert len(wire.heartbeat(sender="n" * 253, incarnation=1, sequence=1, key=KEY)) <= (
        wire.MAX_DATAGRAM
    )


@given(st.binary(max_size=600), st.sampled_from([None, KEY]))
def test_decode_never_raises_on_garbage(data: bytes, key: bytes | None) -> None:
    out = wire.decode(data, key=key)
    assert isinstance(out, Message | Rejected)


@given(st.data())
def test_decode_never_raises_on_mutated_valid_datagrams(data: st.DataObject) -> None:
    msg = Message(
        data.draw(st.sampled_from(list(Kind))),
        data.draw(st.text(min_size=1, max_size=40)),
        data.draw(st.integers(0, 2**64 - 1)),
        data.draw(st.integers(0, 2**64 - 1)),
        "s",
        1,
    )
    raw = bytearray(wire.encode(msg, key=KEY))
    pos = data.draw(st.integers(0, 600))
    if pos < len(raw):
        raw[pos] = data.draw(st.integers(0, 255))
    else:
        raw = raw[: pos % (len(raw) + 1)]
    out = wire.decode(bytes(raw), key=KEY)
    assert isinstance(out, Message | Rejected)
