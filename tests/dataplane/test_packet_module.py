"""Both packet module implementations give the same bytes (compiled and pure Python)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from openelb.dataplane import packet

IMPLEMENTATIONS = [
    pytest.param(packet.compiled_impl(), id="c-packet"),
    pytest.param(packet.python_impl, id="py-packet"),
]

MAC = bytes.fromhex("020e1b000001")
VIP = bytes([10, 250, 0, 200])


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> packet.PacketModule:
    if request.param is None:
        pytest.fail("compiled packet module is not built: run `make setup`")
    return request.param  # type: ignore[no-any-return]


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


def test_implementations_agree_byte_for_byte() -> None:
    compiled = packet.compiled_impl()
    assert compiled is not None, "compiled packet module is not built"
    for reply in (False, True):
        assert compiled.build_garp(MAC, VIP, reply) == packet.python_impl.build_garp(
            MAC, VIP, reply
        )


@pytest.mark.parametrize(("mac", "ip"), [(b"\x00" * 5, VIP), (MAC, b"\x00" * 16)])
def test_bad_lengths_are_refused_clearly(impl: packet.PacketModule, mac: bytes, ip: bytes) -> None:
    with pytest.raises(ValueError, match="must be"):
        impl.build_garp(mac, ip)


def test_environment_switch_forces_the_pure_python_module() -> None:
    code = "from openelb.dataplane import packet; print(packet.IMPLEMENTATION)"
    forced = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "OPENELB_NO_EXTENSIONS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert forced.stdout.strip() == "python"
    default = subprocess.run(
        [sys.executable, "-c", code],
        env={k: v for k, v in os.environ.items() if k != "OPENELB_NO_EXTENSIONS"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert default.stdout.strip() == "compiled"
