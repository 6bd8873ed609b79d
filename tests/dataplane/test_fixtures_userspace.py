"""The userspace responders (compiled and pure-Python packet module) against the XDP fixtures:
same verdict, same counter reason, byte-for-byte the same reply as the XDP program."""

from __future__ import annotations

import pytest

from openelb.dataplane import packet
from tests.dataplane.fixtures import CASES, OWNED, Case

IMPLEMENTATIONS = [
    pytest.param(packet.compiled_impl(), id="c-packet"),
    pytest.param(packet.python_impl, id="py-packet"),
]
OWNED_TABLE = {ip.packed: mac for _ifindex, ip, mac in OWNED}

# Known differences between the userspace responders and the XDP program.
KNOWN: dict[str, str] = {
    "arp-request-from-vip-holder": (
        "userspace also flags ordinary requests whose sender IP is an owned VIP as conflicts; "
        "the XDP program checks only announcements (replies, gratuitous ARP) to save a hash "
        "lookup per request"
    ),
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_userspace_matches_xdp(case: Case, impl: packet.PacketModule | None) -> None:
    if impl is None:
        pytest.fail("compiled packet module is not built: run `make setup`")
    if case.name in KNOWN:
        pytest.xfail(KNOWN[case.name])
    reason, reply = impl.decide(case.frame, OWNED_TABLE, case.gate_open)
    assert reason.label == (case.reason or "pass"), case.description
    if case.verdict == "tx":
        assert reply is not None and reply.hex() == (case.reply or b"").hex(), case.description
    else:
        assert reply is None, case.description
