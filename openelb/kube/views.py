"""Small frozen typed views of the objects the reconcilers read, built from raw JSON.

The logic (IPAM, ownership) works on these instead of dicts: a missing field has one default in
one place, and a malformed object raises :class:`ViewError` naming the object and the field
instead of a ``KeyError`` deep inside a reconciler. ``raw`` keeps the whole object for writers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SERVICE_OPT_IN_ANNOTATION = "lb.kubesphere.io/v1alpha1"
"""OpenELB's Service opt-in annotation (value ``openelb``)."""
LOAD_BALANCER_CLASS = "openelb.io/openelb"
"""``spec.loadBalancerClass`` that opts a Service in."""
EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""Node label that keeps a node out of load balancing."""

Raw = dict[str, Any]


class ViewError(ValueError):
    """An object from the apiserver does not have the shape its kind requires."""


@dataclass(frozen=True)
class ObjectMeta:
    """The metadata fields every view carries."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    labels: MappingProxyType[str, str]
    annotations: MappingProxyType[str, str]
    finalizers: tuple[str, ...]
    deleting: bool
    """``deletionTimestamp`` is set: the object is going away once its finalizers are gone."""
    generation: int

    @property
    def key(self) -> str:
        """``namespace/name``, or ``name`` for cluster-scoped objects (the cache key)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service (the sharing check compares protocol and port)."""

    port: int
    protocol: str
    name: str = ""
    node_port: int = 0
    target_port: str = ""


@dataclass(frozen=True)
class Service:
    """A Service as openelb sees it."""

    meta: ObjectMeta
    type: str
    load_balancer_class: str | None
    ports: tuple[ServicePort, ...]
    ip_families: tuple[str, ...]
    ip_family_policy: str
    load_balancer_ip: str
    external_traffic_policy: str
    ingress_ips: tuple[str, ...]
    """IPs in ``status.loadBalancer.ingress`` (what openelb, or someone, assigned)."""
    cluster_ips: tuple[str, ...]
    raw: Raw = field(repr=False, compare=False)

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def uid(self) -> str:
        return self.meta.uid

    @property
    def annotations(self) -> MappingProxyType[str, str]:
        return self.meta.annotations

    @property
    def finalizers(self) -> tuple[str, ...]:
        return self.meta.finalizers

    @property
    def deleting(self) -> bool:
        return self.meta.deleting

    @property
    def resource_version(self) -> str:
        return self.meta.resource_version

    @property
    def is_load_balancer(self) -> bool:
        return self.type == "LoadBalancer"

    @property
    def opted_in(self) -> bool:
        """A LoadBalancer Service asking for openelb (annotation or loadBalancerClass)."""
        if not self.is_load_balancer:
            return False
        if self.load_balancer_class is not None:
            return self.load_balancer_class == LOAD_BALANCER_CLASS
        return self.annotations.get(SERVICE_OPT_IN_ANNOTATION) == "openelb"

    @classmethod
    def from_raw(cls, raw: Raw) -> Service:
        meta = _meta(raw, "Service")
        spec = _section(raw, "spec", meta)
        status = _section(raw, "status", meta)
        lb_status = status.get("loadBalancer") or {}
        ingress = tuple(
            str(entry["ip"])
            for entry in (lb_status.get("ingress") or [])
            if isinstance(entry, dict) and entry.get("ip")
        )
        ports = tuple(_port(p, meta) for p in (spec.get("ports") or []))
        cluster_ips = tuple(str(ip) for ip in (spec.get("clusterIPs") or []) if ip != "None")
        if not cluster_ips and spec.get("clusterIP") not in (None, "", "None"):
            cluster_ips = (str(spec["clusterIP"]),)
        return cls(
            meta=meta,
            type=str(spec.get("type") or "ClusterIP"),
            load_balancer_class=_opt_str(spec.get("loadBalancerClass")),
            ports=ports,
            ip_families=tuple(str(f) for f in (spec.get("ipFamilies") or [])),
            ip_family_policy=str(spec.get("ipFamilyPolicy") or "SingleStack"),
            load_balancer_ip=str(spec.get("loadBalancerIP") or ""),
            external_traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
            ingress_ips=ingress,
            cluster_ips=cluster_ips,
            raw=raw,
        )


@dataclass(frozen=True)
class NodeAddress:
    type: str
    """``InternalIP``, ``ExternalIP``, ``Hostname``, ..."""
    address: str


@dataclass(frozen=True)
class Node:
    """A Node: is it Ready, may it load-balance, what are its addresses."""

    meta: ObjectMeta
    ready: bool
    """The ``Ready`` condition is ``True``."""
    unschedulable: bool
    addresses: tuple[NodeAddress, ...]
    raw: Raw = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def labels(self) -> MappingProxyType[str, str]:
        return self.meta.labels

    @property
    def excluded_from_load_balancers(self) -> bool:
        return EXCLUDE_FROM_LB_LABEL in self.meta.labels

    def addresses_of(self, kind: str) -> tuple[str, ...]:
        """Addresses of one type, e.g. ``node.addresses_of("InternalIP")``."""
        return tuple(a.address for a in self.addresses if a.type == kind)

    @classmethod
    def from_raw(cls, raw: Raw) -> Node:
        meta = _meta(raw, "Node")
        spec = _section(raw, "spec", meta)
        status = _section(raw, "status", meta)
        ready = any(
            isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
            for c in (status.get("conditions") or [])
        )
        addresses = tuple(
            NodeAddress(type=str(a.get("type") or ""), address=str(a.get("address") or ""))
            for a in (status.get("addresses") or [])
            if isinstance(a, dict)
        )
        return cls(
            meta=meta,
            ready=ready,
            unschedulable=bool(spec.get("unschedulable")),
            addresses=addresses,
            raw=raw,
        )


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of an EndpointSlice."""

    addresses: tuple[str, ...]
    node_name: str
    ready: bool
    """``conditions.ready``; unset counts as ready, as the API says."""
    serving: bool
    terminating: bool


@dataclass(frozen=True)
class EndpointSlice:
    """Where a Service's endpoints run (for ``externalTrafficPolicy: Local``)."""

    meta: ObjectMeta
    service: str
    """Name of the owning Service (label ``kubernetes.io/service-name``); empty if unset."""
    address_type: str
    endpoints: tuple[Endpoint, ...]
    raw: Raw = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def service_key(self) -> str:
        """``namespace/service`` of the owning Service."""
        return f"{self.meta.namespace}/{self.service}"

    def ready_nodes(self) -> frozenset[str]:
        """Nodes with at least one ready endpoint."""
        return frozenset(e.node_name for e in self.endpoints if e.ready and e.node_name)

    @classmethod
    def from_raw(cls, raw: Raw) -> EndpointSlice:
        meta = _meta(raw, "EndpointSlice")
        endpoints = []
        for entry in raw.get("endpoints") or []:
            if not isinstance(entry, dict):
                raise ViewError(f"EndpointSlice {meta.key}: an endpoint is not an object")
            cond = entry.get("conditions") or {}
            ready = cond.get("ready")
            endpoints.append(
                Endpoint(
                    addresses=tuple(str(a) for a in (entry.get("addresses") or [])),
                    node_name=str(entry.get("nodeName") or ""),
                    ready=ready is None or bool(ready),
                    serving=bool(cond.get("serving", ready is None or bool(ready))),
                    terminating=bool(cond.get("terminating", False)),
                )
            )
        return cls(
            meta=meta,
            service=meta.labels.get("kubernetes.io/service-name", ""),
            address_type=str(raw.get("addressType") or ""),
            endpoints=tuple(endpoints),
            raw=raw,
        )


@dataclass(frozen=True)
class Namespace:
    """A Namespace's name and labels (Eip ``namespaceSelector`` matches labels)."""

    meta: ObjectMeta
    raw: Raw = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def labels(self) -> MappingProxyType[str, str]:
        return self.meta.labels

    @classmethod
    def from_raw(cls, raw: Raw) -> Namespace:
        return cls(meta=_meta(raw, "Namespace"), raw=raw)


@dataclass(frozen=True)
class Lease:
    """A coordination.k8s.io Lease (leader election, speaker membership)."""

    meta: ObjectMeta
    holder: str
    """``spec.holderIdentity``; empty when released."""
    duration_seconds: float
    acquire_time: str
    renew_time: str
    transitions: int
    raw: Raw = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def renewed_at(self) -> float | None:
        """``renewTime`` as a Unix time, None if unset or unparsable."""
        return parse_micro_time(self.renew_time)

    @classmethod
    def from_raw(cls, raw: Raw) -> Lease:
        meta = _meta(raw, "Lease")
        spec = _section(raw, "spec", meta)
        return cls(
            meta=meta,
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            raw=raw,
        )


@dataclass(frozen=True)
class Eip:
    """An OpenELB ``Eip`` pool; spec/status stay dicts (``openelb.ipam`` interprets them)."""

    meta: ObjectMeta
    spec: MappingProxyType[str, Any]
    status: MappingProxyType[str, Any]
    raw: Raw = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def annotations(self) -> MappingProxyType[str, str]:
        return self.meta.annotations

    @classmethod
    def from_raw(cls, raw: Raw) -> Eip:
        meta = _meta(raw, "Eip")
        return cls(
            meta=meta,
            spec=MappingProxyType(_section(raw, "spec", meta)),
            status=MappingProxyType(_section(raw, "status", meta)),
            raw=raw,
        )


def parse_micro_time(text: str) -> float | None:
    """RFC 3339 (``2026-01-02T03:04:05.123456Z``) to Unix time; None when empty or bad."""
    if not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _meta(raw: Raw, kind: str) -> ObjectMeta:
    if not isinstance(raw, dict):
        raise ViewError(f"{kind}: not an object")
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ViewError(f"{kind}: metadata.name is missing")
    where = f"{kind} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
    labels = _str_map(meta.get("labels"), f"{where}: metadata.labels")
    annotations = _str_map(meta.get("annotations"), f"{where}: metadata.annotations")
    return ObjectMeta(
        name=str(meta["name"]),
        namespace=str(meta.get("namespace") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=labels,
        annotations=annotations,
        finalizers=tuple(str(f) for f in (meta.get("finalizers") or [])),
        deleting=bool(meta.get("deletionTimestamp")),
        generation=int(meta.get("generation") or 0),
    )


def _section(raw: Raw, name: str, meta: ObjectMeta) -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ViewError(f"{meta.key}: {name} is not an object")
    return value


def _str_map(value: object, where: str) -> MappingProxyType[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise ViewError(f"{where} is not a map")
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _port(entry: object, meta: ObjectMeta) -> ServicePort:
    if not isinstance(entry, dict) or "port" not in entry:
        raise ViewError(f"Service {meta.key}: a port has no number")
    try:
        number = int(entry["port"])
    except (TypeError, ValueError):
        raise ViewError(f"Service {meta.key}: port {entry['port']!r} is not a number") from None
    return ServicePort(
        port=number,
        protocol=str(entry.get("protocol") or "TCP"),
        name=str(entry.get("name") or ""),
        node_port=int(entry.get("nodePort") or 0),
        target_port=str(entry.get("targetPort") or ""),
    )


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


__all__ = [
    "EXCLUDE_FROM_LB_LABEL",
    "LOAD_BALANCER_CLASS",
    "SERVICE_OPT_IN_ANNOTATION",
    "Eip",
    "Endpoint",
    "EndpointSlice",
    "Lease",
    "Namespace",
    "Node",
    "NodeAddress",
    "ObjectMeta",
    "Service",
    "ServicePort",
    "ViewError",
    "event_subject",
    "parse_micro_time",
]


# --- lean views for long-lived caches (speaker scale) ---------------------------------------------


def event_subject(raw: Raw) -> Raw:
    """Only what an Event needs about ``raw`` (what ``EventRecorder`` reads): kind, apiVersion,
    name, namespace, uid, resourceVersion.

    A cache that holds thousands of views for their typed fields keeps this as ``raw`` instead of
    the whole object: at 10,000 Services the full JSON was ~60 MB of a speaker's memory.
    """
    meta = raw.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta}
    if isinstance(kept.get("namespace"), str):
        kept["namespace"] = sys.intern(kept["namespace"])
    kind, version = raw.get("kind"), raw.get("apiVersion")
    return {
        "kind": sys.intern(kind) if isinstance(kind, str) else kind,
        "apiVersion": sys.intern(version) if isinstance(version, str) else version,
        "metadata": kept,
    }
