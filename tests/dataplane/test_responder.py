"""The responder interface: entries validate their input, open_responder explains its choice."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from openelb.dataplane import responder
from openelb.dataplane.responder import (
    COUNTER_REASONS,
    DataplaneError,
    SyncResult,
    VipEntry,
    open_responder,
)

MAC = bytes.fromhex("020e1b000001")


def test_entry_rejects_a_mac_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        VipEntry(1, ipaddress.ip_address("10.0.0.1"), b"\x01\x02")


@pytest.mark.parametrize("ip", ["224.0.0.1", "0.0.0.0", "ff02::1", "::"])
def test_entry_rejects_multicast_and_unspecified_vips(ip: str) -> None:
    with pytest.raises(ValueError, match="cannot be a VIP"):
        VipEntry(1, ipaddress.ip_address(ip), MAC)


def test_entry_rejects_a_non_positive_ifindex() -> None:
    with pytest.raises(ValueError, match="ifindex"):
        VipEntry(0, ipaddress.ip_address("10.0.0.1"), MAC)


def test_entry_on_loopback_resolves_ifindex_and_mac() -> None:
    entry = VipEntry.on("lo", "127.0.0.9")
    assert entry.ifindex == 1 and entry.mac == bytes(6)
    assert entry.ip == ipaddress.IPv4Address("127.0.0.9")


def test_entry_on_a_missing_interface_names_it() -> None:
    with pytest.raises(DataplaneError, match="no interface named 'nope0'"):
        VipEntry.on("nope0", "10.0.0.1")


def test_equal_entries_hash_alike_and_print_readably() -> None:
    a = VipEntry(2, ipaddress.ip_address("10.0.0.1"), MAC)
    b = VipEntry(2, ipaddress.ip_address("10.0.0.1"), MAC)
    assert {a, b} == {a}
    assert str(a) == "10.0.0.1@if2=02:0e:1b:00:00:01"


def test_sync_result_reports_whether_anything_changed() -> None:
    assert not SyncResult(unchanged=3).changed
    entry = VipEntry(2, ipaddress.ip_address("fd00::1"), MAC)
    assert SyncResult(added=(entry,)).changed


def test_counter_reasons_are_unique() -> None:
    assert len(set(COUNTER_REASONS)) == len(COUNTER_REASONS)


def test_open_responder_rejects_an_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(DataplaneError, match="unknown data plane mode 'ebpf'"):
        open_responder(["lo"], mode="ebpf", pin_root=tmp_path)  # type: ignore[arg-type]


def test_open_responder_needs_an_interface(tmp_path: Path) -> None:
    with pytest.raises(DataplaneError, match="at least one interface"):
        open_responder([], pin_root=tmp_path)


def test_open_responder_says_why_every_mode_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_afpacket(interfaces: object, *, reason: str) -> responder.Responder:
        raise DataplaneError("no AF_PACKET here")

    monkeypatch.setattr(responder, "_open_afpacket", no_afpacket)
    with pytest.raises(DataplaneError) as info:
        open_responder(["nope0"], pin_root=tmp_path, instance="t")
    message = str(info.value)
    for mode in responder.MODES:
        assert f"{mode}: " in message
