"""The Eip finalizer: added to live Eips, released from a deleted one only once it holds nothing."""

from __future__ import annotations

from typing import Any

import pytest

from openelb.manager import EIP_FINALIZER, FinalizerChange
from openelb.manager.eipstatus import eip_finalizer_change
from tests.manager.objects import eip


def _eip(*, finalizer: bool, deleting: bool) -> dict[str, Any]:
    raw = eip("pool", "10.0.0.0/24")
    if finalizer:
        raw["metadata"]["finalizers"] = ["someone.else/keep", EIP_FINALIZER]
    if deleting:
        raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return raw


@pytest.mark.parametrize(
    ("finalizer", "deleting", "usage", "change"),
    [
        (False, False, 0, FinalizerChange.ADD),
        (True, False, 3, FinalizerChange.KEEP),
        (True, True, 2, FinalizerChange.KEEP),
        (True, True, 0, FinalizerChange.REMOVE),
        (False, True, 0, FinalizerChange.KEEP),
    ],
    ids=["live-gets-it", "live-keeps-it", "deleted-in-use-waits", "deleted-unused-goes", "gone"],
)
def test_finalizer_change(
    finalizer: bool, deleting: bool, usage: int, change: FinalizerChange
) -> None:
    raw = _eip(finalizer=finalizer, deleting=deleting)
    assert eip_finalizer_change(raw, usage=usage) is change
