"""The Python mirrors of the XDP program's structs and constants match the C source.

A C probe including ``bpf/structs.h`` and ``bpf/consts.h`` is compiled on the host (the layout
of these plain structs is the same for the BPF target) and prints sizes, offsets and constants.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from openelb.dataplane import xdp_layout
from openelb.dataplane.responder import COUNTER_REASONS
from openelb.dataplane.xdp_loader import BPF_SOURCE_DIR, program_source

STRUCTS = {
    "oelb_key4": xdp_layout.Key4,
    "oelb_key6": xdp_layout.Key6,
    "oelb_vip": xdp_layout.Vip,
    "oelb_conflict": xdp_layout.ConflictEvent,
}
CONSTANTS = {
    "OELB_MAX_VLANS": xdp_layout.MAX_VLANS,
    "OELB_NS_MAX_CHUNKS": xdp_layout.NS_MAX_CHUNKS,
    "OELB_AF_INET": xdp_layout.AF_INET,
    "OELB_AF_INET6": xdp_layout.AF_INET6,
    "OELB_REASON_MAX": len(COUNTER_REASONS),
}


def _enum_name(reason: str) -> str:
    return "OELB_" + reason.upper()


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    compiler = shutil.which("clang") or shutil.which("cc")
    if compiler is None:
        pytest.fail("no C compiler (clang) to check the layout: run `make setup`")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>"]
    lines += ['#include "consts.h"', '#include "structs.h"', "int main(void) {"]
    for struct_name, mirror in STRUCTS.items():
        lines.append(f'printf("{struct_name}.size %zu\\n", sizeof(struct {struct_name}));')
        for field, *_ in mirror._fields_:
            lines.append(
                f'printf("{struct_name}.{field} %zu\\n", offsetof(struct {struct_name}, {field}));'
            )
    for name in [*CONSTANTS, *map(_enum_name, COUNTER_REASONS)]:
        lines.append(f'printf("{name} %d\\n", (int)({name}));')
    lines.append("return 0; }")
    work = tmp_path_factory.mktemp("layout")
    (work / "probe.c").write_text("\n".join(lines))
    subprocess.run(
        [compiler, "-I", str(BPF_SOURCE_DIR), "-o", str(work / "probe"), str(work / "probe.c")],
        check=True,
        capture_output=True,
    )
    out = subprocess.run([str(work / "probe")], check=True, capture_output=True, text=True)
    return {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_mirror_matches_c(name: str, c_layout: dict[str, int]) -> None:
    mirror = STRUCTS[name]
    assert ctypes.sizeof(mirror) == c_layout[f"{name}.size"]
    for field, *_ in mirror._fields_:
        assert getattr(mirror, field).offset == c_layout[f"{name}.{field}"], field


def test_constants_match_c(c_layout: dict[str, int]) -> None:
    for name, value in CONSTANTS.items():
        assert c_layout[name] == value, name


def test_counter_reasons_are_the_c_enum_in_order(c_layout: dict[str, int]) -> None:
    for index, reason in enumerate(COUNTER_REASONS):
        assert c_layout[_enum_name(reason)] == index, reason
        assert xdp_layout.REASON_INDEX[reason] == index


def test_program_source_inlines_every_local_header_once() -> None:
    text = program_source()
    assert '#include "' not in text
    for header in sorted(Path(BPF_SOURCE_DIR).glob("*.h")):
        guard = f"OELB_{header.stem.upper()}_H"
        assert len(re.findall(rf"^#define {guard}$", text, re.MULTILINE)) == 1, header.name
