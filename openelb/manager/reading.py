"""Kubernetes JSON to IPAM inputs: Services to requests, Eips to specs, namespaces to labels.

IPAM takes small frozen views and never sees a client object; this is the one place that knows
where each field lives in the JSON. Malformed fields (a port that is not a number, a priority
that is a string) are passed on or skipped, never raised: validation turns them into conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from openelb.ipam import EipSpec, ServiceKey, ServicePort, ServiceRequest
from openelb.ipam.model import EPOCH
from openelb.manager.optin import Raw


def service_key(raw: Raw) -> ServiceKey:
    """``namespace/name`` of a Service."""
    meta = raw.get("metadata", {})
    return ServiceKey(str(meta.get("namespace", "")), str(meta.get("name", "")))


def parse_time(text: object) -> datetime:
    """An RFC 3339 timestamp (``creationTimestamp``); the epoch when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return EPOCH
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return EPOCH


def service_request(raw: Raw, namespace_labels: Mapping[str, str]) -> ServiceRequest:
    """What a Service asks of IPAM."""
    meta = raw.get("metadata", {})
    spec = raw.get("spec") or {}
    ports: list[ServicePort] = []
    for port in spec.get("ports") or ():
        number = port.get("port") if isinstance(port, Mapping) else None
        if isinstance(number, int) and not isinstance(number, bool):
            ports.append(ServicePort(number, str(port.get("protocol") or "TCP")))
    return ServiceRequest(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        annotations=_strings(meta.get("annotations")),
        load_balancer_ip=str(spec.get("loadBalancerIP") or ""),
        ip_families=tuple(str(f) for f in spec.get("ipFamilies") or ()),
        ip_family_policy=spec.get("ipFamilyPolicy") or None,
        ports=tuple(ports),
        created=parse_time(meta.get("creationTimestamp")),
        namespace_labels=namespace_labels,
    )


def ingress_ips(raw: Raw) -> tuple[str, ...]:
    """``status.loadBalancer.ingress[].ip`` in order (hostname-only entries left out)."""
    status = raw.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or ()
    return tuple(
        str(entry["ip"]) for entry in ingress if isinstance(entry, Mapping) and entry.get("ip")
    )


def eip_spec(raw: Raw) -> EipSpec:
    """What an Eip says, as IPAM needs it."""
    meta = raw.get("metadata", {})
    spec = raw.get("spec") or {}
    return EipSpec(
        name=str(meta.get("name", "")),
        address=str(spec.get("address") or ""),
        protocol=str(spec.get("protocol") or ""),
        interface=str(spec.get("interface") or ""),
        disable=bool(spec.get("disable", False)),
        priority=spec.get("priority", 0),
        namespaces=tuple(str(n) for n in spec.get("namespaces") or ()),
        namespace_selector=_selector(spec.get("namespaceSelector")),
        exclude=tuple(str(e) for e in spec.get("exclude") or ()),
        annotations=_strings(meta.get("annotations")),
        created=parse_time(meta.get("creationTimestamp")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def eip_used(raw: Raw) -> dict[str, str]:
    """status.used: address -> ``ns/name[;ns/name]``."""
    return _strings((raw.get("status") or {}).get("used"))


def eip_router_ids(raw: Raw) -> dict[str, int]:
    """status.virtualRouterIDs: VIP -> VRRP router ID, as stored."""
    stored = (raw.get("status") or {}).get("virtualRouterIDs") or {}
    if not isinstance(stored, Mapping):
        return {}
    return {
        str(ip): value
        for ip, value in stored.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }


def namespace_labels(raw: Raw) -> dict[str, str]:
    """A Namespace's labels, with ``kubernetes.io/metadata.name`` as the API server sets it."""
    meta = raw.get("metadata", {})
    labels = _strings(meta.get("labels"))
    labels.setdefault("kubernetes.io/metadata.name", str(meta.get("name", "")))
    return labels


def _selector(value: Any) -> Mapping[str, str] | None:
    """OpenELB's ``namespaceSelector`` is a label map; a LabelSelector's ``matchLabels`` is
    accepted too (what users write by habit)."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("matchLabels"), Mapping):
        return _strings(value["matchLabels"])
    return _strings(value)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}
