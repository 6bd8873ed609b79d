"""What kube-apiserver fills in on create, for the fields openelb reads.

A Service comes back from a real cluster with its type, ports' protocol and target port, IP
families and a cluster IP filled in; code that reads them must see the same here. A Namespace
gets phase ``Active``. Only what openelb or its tests rely on is defaulted.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

_SERVICE_NET = ipaddress.IPv4Network("10.96.0.0/12")
_SERVICE_NET6 = ipaddress.IPv6Network("fd00:10:96::/112")


class ClusterIPs:
    """Hands out cluster IPs in order; never reused (the embedded server is short-lived)."""

    def __init__(self) -> None:
        self._v4 = itertools.count(10)
        self._v6 = itertools.count(10)

    def next(self, family: str) -> str:
        if family == "IPv6":
            return str(_SERVICE_NET6.network_address + next(self._v6))
        return str(_SERVICE_NET.network_address + next(self._v4))


def default_service(obj: dict[str, Any], cluster_ips: ClusterIPs) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    if spec["type"] in ("LoadBalancer", "NodePort"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec["type"] == "ExternalName":
        return
    policy = spec.setdefault("ipFamilyPolicy", "SingleStack")
    if "ipFamilies" not in spec:
        spec["ipFamilies"] = ["IPv4", "IPv6"] if policy != "SingleStack" else ["IPv4"]
    if spec.get("clusterIP") == "None":
        spec["clusterIPs"] = ["None"]
        return
    if "clusterIP" not in spec:
        spec["clusterIPs"] = [cluster_ips.next(family) for family in spec["ipFamilies"]]
        spec["clusterIP"] = spec["clusterIPs"][0]
    else:
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("internalTrafficPolicy", "Cluster")


def default_namespace(obj: dict[str, Any]) -> None:
    obj["status"] = {"phase": "Active"}
