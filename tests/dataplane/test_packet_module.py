"""Both packet module implementations: same API, same bytes, the XDP program's rules."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest

from openelb.dataplane import packet
from openelb.dataplane.frames import Reason, claimed_address, solicited_node
from openelb.dataplane.responder import COUNTER_REASONS
from tests.dataplane import frame_cases as fc

IMPLEMENTATIONS = [
    pytest.param(packet.compiled_impl(), id="c-packet"),
    pytest.param(packet.python_impl, id="py-packet"),
]

MAC = bytes.fromhex("020e1b000001")
VIP = bytes([10, 250, 0, 200])
VIP6 = ipaddress.IPv6Address("fd0e:1b::c8").packed


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> packet.PacketModule:
    if request.param is None:
        pytest.fail("compiled packet module is not built: run `make setup`")
    return request.param  # type: ignore[no-any-return]


def _compiled() -> packet.PacketModule:
    compiled = packet.compiled_impl()
    assert compiled is not None, "compiled packet module is not built: run `make setup`"
    return compiled


# --- builders -------------------------------------------------------------------------------------


def test_garp_request_form_is_broadcast_with_sender_ip_equal_to_target_ip(
    impl: packet.PacketModule,
) -> None:
    frame = impl.build_garp(MAC, VIP)
    assert len(frame) == 42
    assert frame[0:6] == b"\xff" * 6 and frame[6:12] == MAC
    assert frame[12:14] == b"\x08\x06"
    assert frame[20:22] == b"\x00\x01"  # request
    assert frame[22:28] == MAC and frame[28:32] == VIP
    assert frame[32:38] == bytes(6) and frame[38:42] == VIP


def test_garp_reply_form_targets_the_sender_mac(impl: packet.PacketModule) -> None:
    frame = impl.build_garp(MAC, VIP, reply=True)
    assert frame[20:22] == b"\x00\x02"
    assert frame[32:38] == MAC  # target MAC = sender MAC, never ff:ff..


def test_arp_probe_has_a_zero_sender_ip(impl: packet.PacketModule) -> None:
    frame = impl.build_arp_probe(MAC, VIP)
    assert frame == fc.arp(sha=MAC, eth_src=MAC, spa=bytes(4), tpa=VIP, pad=0)


def test_arp_reply_is_unicast_to_the_requester(impl: packet.PacketModule) -> None:
    frame = impl.build_arp_reply(mac=MAC, ip=VIP, dst_mac=fc.CLIENT_MAC, dst_ip=fc.CLIENT4)
    expected = fc.arp(
        op=2,
        sha=MAC,
        spa=VIP,
        tha=fc.CLIENT_MAC,
        tpa=fc.CLIENT4,
        eth_dst=fc.CLIENT_MAC,
        eth_src=MAC,
        pad=0,
    )
    assert frame == expected


def test_unsolicited_na_goes_to_all_nodes_with_override_and_no_solicited_flag(
    impl: packet.PacketModule,
) -> None:
    frame = impl.build_unsolicited_na(MAC, VIP6)
    expected = fc.na(
        target=VIP6, dst=fc.ALL_NODES, eth_dst=bytes.fromhex("333300000001"), mac=MAC, flags=0x20
    )
    assert frame == expected
    assert frame[14 + 7] == 255  # hop limit, or receivers drop it (RFC 4861 7.1.2)


def test_solicited_na_sets_solicited_and_override(impl: packet.PacketModule) -> None:
    frame = impl.build_na(mac=MAC, ip=VIP6, dst_mac=fc.CLIENT_MAC, dst_ip=fc.CLIENT6)
    assert frame == fc.na(target=VIP6, dst=fc.CLIENT6, eth_dst=fc.CLIENT_MAC, mac=MAC, flags=0x60)


def test_dad_ns_comes_from_the_unspecified_address_to_the_solicited_node_group(
    impl: packet.PacketModule,
) -> None:
    frame = impl.build_dad_ns(MAC, VIP6)
    assert frame == _dad_ns_reference(MAC, VIP6)
    assert frame[14 + 24 : 14 + 40] == solicited_node(VIP6)


def _dad_ns_reference(mac: bytes, ip: bytes) -> bytes:
    message = bytes((135, 0, 0, 0, 0, 0, 0, 0)) + ip
    return fc.icmp6(
        src=fc.ZERO6, dst=fc.snm(ip), message=message, eth_dst=fc.snm_mac(ip), eth_src=mac
    )


def test_batch_builders_give_one_frame_per_address(impl: packet.PacketModule) -> None:
    v4 = [VIP, bytes([10, 250, 0, 201])]
    assert impl.build_garp_batch(MAC, v4) == [impl.build_garp(MAC, ip) for ip in v4]
    assert impl.build_garp_batch(MAC, v4, True) == [impl.build_garp(MAC, ip, True) for ip in v4]
    v6 = [VIP6, fc.NOT_OWNED6]
    assert impl.build_unsolicited_na_batch(MAC, v6) == [
        impl.build_unsolicited_na(MAC, ip) for ip in v6
    ]
    assert impl.build_garp_batch(MAC, []) == []


@pytest.mark.parametrize(("mac", "ip"), [(b"\x00" * 5, VIP), (MAC, b"\x00" * 16)])
def test_bad_lengths_are_refused_clearly(impl: packet.PacketModule, mac: bytes, ip: bytes) -> None:
    with pytest.raises(ValueError, match="must be"):
        impl.build_garp(mac, ip)


def test_ipv6_builders_refuse_ipv4_addresses(impl: packet.PacketModule) -> None:
    with pytest.raises(ValueError, match=r"16 bytes \(IPv6\)"):
        impl.build_unsolicited_na(MAC, VIP)
    with pytest.raises(ValueError, match=r"16 bytes \(IPv6\)"):
        impl.build_dad_ns(MAC, VIP)


# --- parsing --------------------------------------------------------------------------------------


def test_parse_arp_reads_every_field_through_vlan_tags(impl: packet.PacketModule) -> None:
    frame = fc.arp(tags=fc.vlan(0x2064, 0x88A8) + fc.vlan(100), spa=fc.CLIENT4)
    parsed = impl.parse_arp(frame)
    assert parsed is not None
    assert parsed.vlan_tags == (0x2064, 100)
    assert (parsed.op, parsed.sha, parsed.spa, parsed.tpa) == (1, fc.CLIENT_MAC, fc.CLIENT4, VIP)
    assert parsed.eth_dst == fc.BROADCAST and parsed.eth_src == fc.CLIENT_MAC


def test_parse_ns_reads_the_source_link_layer_option(impl: packet.PacketModule) -> None:
    parsed = impl.parse_ns(fc.ns())
    assert parsed is not None
    assert parsed.target == VIP6 and parsed.src == fc.CLIENT6 and parsed.dst == fc.snm(VIP6)
    assert parsed.source_lladdr == fc.CLIENT_MAC and parsed.hop_limit == 255 and parsed.code == 0
    assert impl.parse_ns(fc.ns(slla=None)).source_lladdr is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        fc.arp()[:30],
        fc.ns()[:60],
        fc.ns(options=b"\x01\x00" + bytes(6)),
        fc.ns(payload_len=90),
    ],
    ids=["empty", "short-arp", "short-ns", "zero-option", "long-payload"],
)
def test_parsers_return_none_for_malformed_frames(impl: packet.PacketModule, frame: bytes) -> None:
    assert impl.parse_arp(frame) is None
    assert impl.parse_ns(frame) is None


def test_parsers_do_not_mistake_one_protocol_for_the_other(impl: packet.PacketModule) -> None:
    assert impl.parse_ns(fc.arp()) is None
    assert impl.parse_arp(fc.ns()) is None


# --- the decision ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", fc.CASES, ids=[c.description for c in fc.CASES])
def test_decide_follows_the_xdp_rules(impl: packet.PacketModule, case: fc.Case) -> None:
    reason, reply = impl.decide(case.frame, case.owned, case.gate_open)
    assert reason == case.reason
    if case.reply is None:
        assert reply is None
    else:
        assert reply is not None
        assert reply.hex() == case.reply.hex()


def test_decide_accepts_any_bytes_like_frame(impl: packet.PacketModule) -> None:
    frame = fc.arp()
    assert impl.decide(bytearray(frame), fc.OWNED)[0] == Reason.ARP_REPLY
    assert impl.decide(memoryview(frame), fc.OWNED)[0] == Reason.ARP_REPLY  # type: ignore[arg-type]


def test_reason_values_are_the_counter_indices_of_the_responder_interface() -> None:
    counted = [r for r in Reason if r is not Reason.PASS]
    assert [r.label for r in counted] == list(COUNTER_REASONS)
    assert [int(r) for r in counted] == list(range(len(COUNTER_REASONS)))


def test_claimed_address_names_who_claims_a_vip() -> None:
    garp = fc.arp(sha=fc.OTHER_MAC, spa=fc.VIP4, eth_src=fc.OTHER_MAC)
    assert claimed_address(garp) == (fc.VIP4, fc.OTHER_MAC)
    tagged = fc.arp(sha=fc.OTHER_MAC, spa=fc.VIP4, tags=fc.vlan(7))
    assert claimed_address(tagged) == (fc.VIP4, fc.OTHER_MAC)
    advert = fc.na(
        target=VIP6, dst=fc.ALL_NODES, eth_dst=fc.BROADCAST, mac=fc.OTHER_MAC, flags=0x20
    )
    assert claimed_address(advert) == (VIP6, fc.OTHER_MAC)
    assert claimed_address(b"\x00" * 10) is None


# --- the facade -----------------------------------------------------------------------------------


def test_implementations_agree_byte_for_byte_on_builders() -> None:
    compiled, python = _compiled(), packet.python_impl
    for reply in (False, True):
        assert compiled.build_garp(MAC, VIP, reply) == python.build_garp(MAC, VIP, reply)
    for name in ("build_unsolicited_na", "build_dad_ns"):
        assert getattr(compiled, name)(MAC, VIP6) == getattr(python, name)(MAC, VIP6)


def test_environment_switch_forces_the_pure_python_module() -> None:
    code = (
        "from openelb.dataplane import packet; print(packet.IMPLEMENTATION, packet.FALLBACK_REASON)"
    )
    forced = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "OPENELB_NO_EXTENSIONS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert forced.stdout.strip() == "python OPENELB_NO_EXTENSIONS is set"
    default = subprocess.run(
        [sys.executable, "-c", code],
        env={k: v for k, v in os.environ.items() if k != "OPENELB_NO_EXTENSIONS"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert default.stdout.strip() == "compiled"
