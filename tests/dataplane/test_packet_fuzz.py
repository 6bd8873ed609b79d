"""Fuzzing both parsers and the decision: random and mutated frames never crash them, the two
implementations always agree, and no reply is ever built for an address that is not owned."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openelb.dataplane import packet
from openelb.dataplane.frames import Reason, claimed_address
from tests.dataplane import fixtures
from tests.dataplane import frame_cases as fc

SEEDS = [case.frame for case in (*fc.CASES, *fixtures.CASES) if case.frame]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _compiled() -> packet.PacketModule:
    compiled = packet.compiled_impl()
    assert compiled is not None, "compiled packet module is not built: run `make setup`"
    return compiled


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid request with a few bytes flipped, truncated or extended."""
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    tail = draw(st.binary(max_size=24))
    return bytes(frame[:cut]) + tail if draw(st.booleans()) else bytes(frame)


frames = st.one_of(st.binary(max_size=200), mutated_frames())
tables = st.sampled_from([fc.OWNED, {fc.VIP4: fc.OWNER_MAC}, {fc.VIP6: fc.OWNER_MAC}, {}])


def _reply_is_for_an_owned_address(reply: bytes, owned: dict[bytes, bytes]) -> bool:
    """The address a reply speaks for (ARP sender IP / NA target) is in the table, with its MAC."""
    claim = claimed_address(reply)
    return claim is not None and owned.get(claim[0]) == claim[1]


@pytest.mark.parametrize(
    "impl", [pytest.param("c", id="c-packet"), pytest.param("py", id="py-packet")]
)
@FUZZ
@given(frame=frames, owned=tables, gate=st.booleans())
def test_decide_never_answers_for_an_address_not_owned(
    impl: str, frame: bytes, owned: dict[bytes, bytes], gate: bool
) -> None:
    module = _compiled() if impl == "c" else packet.python_impl
    reason, reply = module.decide(frame, owned, gate)
    assert isinstance(reason, Reason)
    assert (reply is not None) == reason.replied
    if reply is not None:
        assert gate
        assert _reply_is_for_an_owned_address(reply, owned)


@FUZZ
@given(frame=frames, owned=tables, gate=st.booleans())
def test_both_implementations_decide_and_parse_alike(
    frame: bytes, owned: dict[bytes, bytes], gate: bool
) -> None:
    compiled, python = _compiled(), packet.python_impl
    assert compiled.decide(frame, owned, gate) == python.decide(frame, owned, gate)
    assert compiled.parse_arp(frame) == python.parse_arp(frame)
    assert compiled.parse_ns(frame) == python.parse_ns(frame)
