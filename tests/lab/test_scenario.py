"""`openelb lab` end to end: the story runs, the Service is answered and fails over."""

from __future__ import annotations

import pytest

from openelb.lab.netns import list_netns
from openelb.lab.scenario import LabOptions, run_lab

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.mark.parametrize(
    ("dataplane", "failure"),
    [("afpacket", "link"), ("xdp-native", "graceful")],
)
def test_the_lab_story_assigns_answers_and_fails_over(dataplane: str, failure: str) -> None:
    if dataplane.startswith("xdp"):
        from openelb.dataplane.capability import probe_xdp

        probe = probe_xdp()
        if not probe.usable:
            pytest.skip(f"XDP not usable here: {probe.reason}")
    lines: list[str] = []
    code = run_lab(LabOptions(nodes=2, failure=failure, dataplane=dataplane), out=lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert "IP assigned: 10.250.0.200" in text
    assert "datagrams answered" in text
    assert "took over" in text
    assert "(agrees with the client)" in text  # openelb status names the node the client reached
    assert "What the metrics say" in text
    assert "owns 1 VIP(s)" in text  # the new owner's metrics, scraped inside its namespace
    if failure == "link":
        assert "took over 1x in" in text  # its failover histogram
    assert "torn down" in text
    run_id = text.split("namespaces ", 1)[1].split("-*", 1)[0]
    assert not [ns for ns in list_netns() if ns.startswith(run_id)]  # nothing left behind
