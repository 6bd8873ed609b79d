"""keepalived.conf rendering: golden files for typical and edge cases, all accepted by keepalived.

Regenerate after an intended change with ``OPENELB_UPDATE_GOLDEN=1 pytest tests/keepalived``
and review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from openelb.config import KeepalivedSettings
from openelb.keepalived.model import plan
from openelb.keepalived.rendering import render
from tests.keepalived.builders import state, vip

GOLDEN = Path(__file__).parent / "golden"
FIFO = "/run/openelb/keepalived/notify.fifo"

CASES = {
    "typical": (state("a", vip("10.250.0.200")), KeepalivedSettings()),
    "ipv6": (state("b", vip("fd0e:1b::200", router_id=12)), KeepalivedSettings()),
    "dual_stack": (
        state(
            "c",
            vip("10.250.0.200"),
            vip("fd0e:1b::200"),
            vip("10.250.0.210", eip="other", router_id=8),
        ),
        KeepalivedSettings(),
    ),
    "many_vips": (
        state("a", *(vip(f"10.250.1.{i}") for i in range(1, 26))),
        KeepalivedSettings(),
    ),
    "one_node": (state("a", vip("10.250.0.200", eligible=("a",))), KeepalivedSettings()),
    "auth": (
        state("a", vip("10.250.0.200")),
        KeepalivedSettings(auth_pass="s3cret", advert_int=1),
    ),
    "multicast": (
        state("b", vip("10.250.0.200"), vip("fd0e:1b::200")),
        KeepalivedSettings(unicast=False, advert_int=0.25, preempt=False),
    ),
}


def _rendered(case: str) -> str:
    desired, settings = CASES[case]
    return render(plan(desired, settings), fifo=FIFO, settings=settings)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_config_matches_golden_file(case: str) -> None:
    text = _rendered(case)
    path = GOLDEN / f"{case}.conf"
    if os.environ.get("OPENELB_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{case}: rendering changed; see the module docstring"


def test_every_config_is_vrrp_v3_and_backup_at_start() -> None:
    for case in CASES:
        text = _rendered(case)
        assert "vrrp_version 3" in text
        assert "state MASTER" not in text
    assert "version 2" in _rendered("auth")  # VRRPv3 has no authentication
    assert "advert_int 0.1\n" in _rendered("typical")


def test_many_vips_beyond_the_advert_limit_are_managed_but_not_advertised() -> None:
    text = _rendered("many_vips")
    advertised, excluded = text.split("virtual_ipaddress_excluded")
    assert advertised.count("/32 dev eth0") == 20 and excluded.count("/32 dev eth0") == 5


def test_rendering_is_byte_stable() -> None:
    assert _rendered("dual_stack") == _rendered("dual_stack")


def test_a_password_and_a_sub_second_interval_are_refused_together() -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        KeepalivedSettings(auth_pass="x", advert_int=0.1)
    with pytest.raises(ValueError, match="advert_int"):
        KeepalivedSettings(advert_int=0.001)


def test_text_that_would_break_the_config_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot put"):
        render(plan(state('a"b'), KeepalivedSettings()), fifo=FIFO, settings=KeepalivedSettings())


@pytest.mark.keepalived
@pytest.mark.parametrize("case", sorted(CASES))
def test_keepalived_accepts_every_golden_config(case: str, tmp_path: Path) -> None:
    binary = shutil.which("keepalived")
    assert binary is not None
    path = tmp_path / "keepalived.conf"
    path.write_text(_rendered(case))
    done = subprocess.run(
        [binary, "-t", "-f", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
