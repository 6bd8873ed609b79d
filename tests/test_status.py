"""`openelb status` against the embedded apiserver over HTTP: pools, Services, who answers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from openelb.cli import main
from openelb.kube.client import KubeApi, connect
from openelb.kube.resources import EIPS, EVENTS, LEASES, NAMESPACES, NODES, SERVICES
from openelb.speaker.ownership import compute_placement
from openelb.speaker.records import SpeakerRecord, lease_name
from openelb.status import collect, render

NS = "openelb-system"


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[KubeApi]:
    client = connect(str(kubeconfig))
    yield client
    client.close()


def _micro(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(name: str, holder: str, *, age: float, annotations: dict[str, str] | None = None) -> Any:
    renewed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": _micro(renewed),
            "acquireTime": _micro(renewed),
        },
    }


def _node(name: str, *, ready: bool = True) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def _service(name: str, ips: list[str]) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def _service_event(
    api: KubeApi, name: str, service: str, *, type: str, reason: str, message: str, at: str
) -> None:
    """An Event about Service ``default/<service>``, as the manager or a speaker writes it."""
    api.create(
        EVENTS,
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": "Service", "namespace": "default", "name": service},
            "type": type,
            "reason": reason,
            "message": message,
            "lastTimestamp": at,
        },
    )


def _populate(api: KubeApi) -> None:
    api.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for name in ("node1", "node2", "node3"):
        api.create(NODES, _node(name, ready=name != "node3"))
    api.create(
        EIPS,
        {
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": {
                "name": "pool",
                "annotations": {"eip.openelb.kubesphere.io/is-default-eip": "true"},
            },
            "spec": {"address": "192.0.2.10-192.0.2.20", "protocol": "layer2", "interface": "eth0"},
        },
    )
    raw = api.get(EIPS, "pool")
    raw["status"] = {"poolSize": 11, "usage": 2, "v4": True}
    api.replace(EIPS, raw, subresource="status")
    for name, ips in (("web", ["192.0.2.10"]), ("db", ["192.0.2.11"]), ("pending", [])):
        api.create(SERVICES, _service(name, []))
        if ips:
            raw = api.get(SERVICES, name, namespace="default")
            raw["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
            api.replace(SERVICES, raw, subresource="status")
    _service_event(
        api,
        "pending.1",
        "pending",
        type="Warning",
        reason="PoolExhausted",
        message="no free address in Eip pool",
        at="2026-12-03T00:00:00Z",
    )
    api.create(LEASES, _lease("openelb-manager", "manager-abc", age=1))
    for node, mac, age in (
        ("node1", "02:00:00:00:00:01", 1),
        ("node2", "02:00:00:00:00:02", 1),
        ("node3", "02:00:00:00:00:03", 1),  # node not Ready: never an owner
        ("node4", "02:00:00:00:00:04", 60),  # Lease expired: gone
    ):
        record = SpeakerRecord(
            node=node,
            heartbeat=("10.0.0.1", 7947),
            incarnation=1,
            interfaces={"pool": "eth0"},
            macs={"eth0": mac},
        )
        api.create(
            LEASES, _lease(lease_name(node), node, age=age, annotations=record.annotations())
        )


def test_status_names_pools_ips_owner_backup_and_why_a_service_has_no_ip(api: KubeApi) -> None:
    _populate(api)
    status = collect(api, namespace=NS)
    assert status.leader is not None
    assert status.leader.holder == "manager-abc"
    assert not status.leader.expired
    alive = {s.node: s.alive for s in status.speakers}
    assert alive == {"node1": True, "node2": True, "node3": True, "node4": False}
    assert [(p.name, p.usage, p.pool_size, p.default) for p in status.pools] == [
        ("pool", 2, "11", True)
    ]
    by_key = {s.key: s for s in status.services}
    for key, ip in (("default/web", "192.0.2.10"), ("default/db", "192.0.2.11")):
        expected = compute_placement(ip, live=["node1", "node2"])
        (address,) = by_key[key].addresses
        assert address.ip == ip
        assert address.holder.startswith(str(expected.owner))
        assert address.backup == expected.backup
        assert address.pool == "pool"
        assert address.announced_by == "-"
    assert by_key["default/pending"].ips == ()
    assert "PoolExhausted" in by_key["default/pending"].note

    text = render(status)
    assert "manager: leader manager-abc" in text
    assert "EXPIRED" in text  # node4
    assert "no IP: PoolExhausted" in text


def test_status_cli_prints_tables_and_json(api: KubeApi, kubeconfig: Path) -> None:
    _populate(api)
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 0, result.output
    assert "ANSWERED BY" in result.output
    assert "default/web" in result.output
    result = runner.invoke(main, ["status", "--kubeconfig", str(kubeconfig), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {s["key"] for s in data["services"]} == {"default/web", "default/db", "default/pending"}


def test_status_with_no_apiserver_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    result = CliRunner().invoke(main, ["status", "--kubeconfig", str(config)])
    assert result.exit_code != 0
    assert "cannot read the cluster at http://127.0.0.1:9" in result.output
    missing = CliRunner().invoke(main, ["status", "--kubeconfig", str(tmp_path / "nope")])
    assert missing.exit_code != 0
    assert "Error:" in missing.output


def test_status_tells_when_the_last_announcement_came_from_another_node(api: KubeApi) -> None:
    """A speaker that died within its Lease's duration: the rule still names it, Events do not."""
    _populate(api)
    ip = "192.0.2.10"
    owner = compute_placement(ip, live=["node1", "node2"]).owner
    other = "node2" if owner == "node1" else "node1"
    for i, node in enumerate((owner, other)):
        _service_event(
            api,
            f"web.{i}",
            "web",
            type="Normal",
            reason="Announced",
            message=f"{ip} announced by node {node} on eth0",
            at="2026-12-03T00:00:01Z",  # same second: write order decides
        )
    (address,) = next(
        s for s in collect(api, namespace=NS).services if s.key == "default/web"
    ).addresses
    assert address.announced_by == other
    assert f"last announced by {other}" in address.note


def test_status_names_the_pool_and_holder_of_a_vip_mode_address(api: KubeApi) -> None:
    """VIP mode: keepalived elects the holder; status takes it from the speakers' VIPHeld Event."""
    _populate(api)
    api.create(
        EIPS,
        {
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": {"name": "vips"},
            "spec": {"address": "198.51.100.0/28", "protocol": "vip", "interface": "eth0"},
        },
    )
    api.create(SERVICES, _service("vrrp", []))
    raw = api.get(SERVICES, "vrrp", namespace="default")
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}
    api.replace(SERVICES, raw, subresource="status")
    _service_event(
        api,
        "vrrp.1",
        "vrrp",
        type="Normal",
        reason="VIPHeld",
        message="VIP 198.51.100.1 (Eip vips, VRRP instance oelb_1) is held by node node2",
        at="2026-12-03T00:00:01Z",
    )
    service = next(s for s in collect(api, namespace=NS).services if s.key == "default/vrrp")
    (address,) = service.addresses
    assert (address.pool, address.holder, address.announced_by) == ("vips", "node2", "node2")
    assert "keepalived elects" in address.note
