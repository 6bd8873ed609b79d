"""The XDP program's fixtures (``fixtures.py``) through both packet modules, byte for byte.

The same frames, verdicts, replies and counter reasons the XDP program is held to with
BPF_PROG_TEST_RUN; the AF_PACKET responder must answer exactly alike.
"""

from __future__ import annotations

import pytest

from openelb.dataplane import packet
from openelb.dataplane.frames import Reason, claimed_address
from tests.dataplane import fixtures

OWNED = {ip.packed: mac for _, ip, mac in fixtures.OWNED}


@pytest.fixture(
    params=[
        pytest.param(packet.compiled_impl(), id="c-packet"),
        pytest.param(packet.python_impl, id="py-packet"),
    ]
)
def impl(request: pytest.FixtureRequest) -> packet.PacketModule:
    if request.param is None:
        pytest.fail("compiled packet module is not built: run `make setup`")
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", fixtures.CASES, ids=[c.name for c in fixtures.CASES])
def test_same_verdict_reason_and_reply_as_the_xdp_program(
    impl: packet.PacketModule, case: fixtures.Case
) -> None:
    reason, reply = impl.decide(case.frame, dict(OWNED), case.gate_open)
    assert reason.label == (case.reason or Reason.PASS.label), case.description
    assert (reply is not None) == (case.verdict == "tx"), case.description
    if case.reply is not None:
        assert reply is not None and reply.hex() == case.reply.hex(), case.description
    if case.conflict_mac is not None:
        claim = claimed_address(case.frame)
        assert claim is not None and claim[1] == case.conflict_mac
