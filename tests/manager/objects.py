"""Kubernetes JSON for manager tests: Services, Eips and Namespaces as the API returns them."""

from __future__ import annotations

from typing import Any

from openelb.ipam import (
    ANNOTATION_DEFAULT_POOL,
    ANNOTATION_IP,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_KEY,
)
from openelb.manager import ANNOTATION_OPT_IN, FINALIZER, LOAD_BALANCER_CLASS


def timestamp(seconds: int) -> str:
    """An RFC 3339 creationTimestamp ``seconds`` after 2024-01-01."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2024-01-01T{hours:02d}:{minutes:02d}:{secs:02d}Z"


def service(
    name: str,
    *,
    namespace: str = "default",
    opt_in: str = "annotation",
    type: str = "LoadBalancer",
    pool: str | None = None,
    ip: str | None = None,
    lb_ip: str | None = None,
    key: str | None = None,
    ports: tuple[int | tuple[int, str], ...] = (80,),
    families: tuple[str, ...] = ("IPv4",),
    policy: str | None = None,
    ingress: tuple[str, ...] = (),
    finalizer: bool = False,
    deleting: bool = False,
    created: int = 0,
    lb_class: str | None = None,
) -> dict[str, Any]:
    """A Service; opted in by annotation unless ``opt_in`` is ``class`` or ``none``."""
    annotations: dict[str, str] = {}
    if opt_in == "annotation":
        annotations[ANNOTATION_OPT_IN] = "openelb"
    if pool is not None:
        annotations[ANNOTATION_POOL] = pool
    if ip is not None:
        annotations[ANNOTATION_IP] = ip
    if key is not None:
        annotations[ANNOTATION_SHARING_KEY] = key
    spec: dict[str, Any] = {
        "type": type,
        "ports": [
            {"port": p, "protocol": "TCP"}
            if isinstance(p, int)
            else {"port": p[0], "protocol": p[1]}
            for p in ports
        ],
        "ipFamilies": list(families),
    }
    if policy:
        spec["ipFamilyPolicy"] = policy
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    if opt_in == "class":
        spec["loadBalancerClass"] = LOAD_BALANCER_CLASS
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "annotations": annotations,
        "creationTimestamp": timestamp(created),
        "resourceVersion": "1",
    }
    if finalizer:
        meta["finalizers"] = [FINALIZER]
    if deleting:
        meta["deletionTimestamp"] = timestamp(created + 1)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}},
    }


def eip(
    name: str,
    address: str,
    *,
    default: bool = False,
    protocol: str = "layer2",
    interface: str = "eth0",
    created: int = 0,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An Eip (layer2 on eth0 unless told otherwise)."""
    return {
        "apiVersion": "network.kubesphere.io/v1alpha2",
        "kind": "Eip",
        "metadata": {
            "name": name,
            "annotations": {ANNOTATION_DEFAULT_POOL: "true"} if default else {},
            "creationTimestamp": timestamp(created),
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {"address": address, "protocol": protocol, "interface": interface, **spec},
        "status": status or {},
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }
