"""The pcap reader and frame decoder, on hand-built files (no root needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from openelb.dataplane import packet
from openelb.lab.pcap import read_pcap


def _pcap(frames: list[tuple[int, int, bytes]], *, nano: bool = True) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for sec, frac, data in frames:
        out += struct.pack("<IIII", sec, frac, len(data), len(data)) + data
    return out


def test_reads_nanosecond_timestamps_and_decodes_arp(tmp_path: Path) -> None:
    garp = packet.python_impl.build_garp(bytes.fromhex("020e1b000001"), bytes([10, 250, 0, 200]))
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap([(1_700_000_000, 123_456_789, garp)]))
    (frame,) = read_pcap(path)
    assert frame.ts == pytest.approx(1_700_000_000.123456789)
    assert frame.dst == "ff:ff:ff:ff:ff:ff"
    assert frame.arp is not None
    assert (frame.arp.op, frame.arp.spa, frame.arp.tpa) == (1, "10.250.0.200", "10.250.0.200")


def test_vlan_tags_are_skipped(tmp_path: Path) -> None:
    garp = packet.python_impl.build_garp(bytes(6), bytes(4))
    tagged = garp[:12] + b"\x88\xa8\x00\x05\x81\x00\x00\x07" + garp[12:]
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap([(1, 0, tagged)], nano=False))
    (frame,) = read_pcap(path)
    assert frame.arp is not None and frame.ethertype == 0x0806


def test_truncated_record_and_empty_file_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap([(1, 0, b"\x00" * 60)])[:-10])
    assert read_pcap(path) == []
    path.write_bytes(b"")
    assert read_pcap(path) == []


def test_garbage_is_rejected_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"not a pcap file at all, really")
    with pytest.raises(ValueError, match="not a pcap file"):
        read_pcap(path)
