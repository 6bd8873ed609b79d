"""The inputs of IPAM: small frozen views of Eips and Services, and OpenELB's annotation names.

The manager maps its Kubernetes objects to these views; IPAM never sees a client object. Fields
keep the loose types the API allows where validation has to judge them (an Eip's ``priority`` is
whatever the object held), and strict types elsewhere.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

ANNOTATION_POOL = "eip.openelb.kubesphere.io/v1alpha2"
"""Service annotation naming the Eip to allocate from (comma-separated: one Eip per family)."""
ANNOTATION_IP = "eip.openelb.kubesphere.io/v1alpha1"
"""Service annotation asking for a specific IP (comma-separated: one per family); wins over
``spec.loadBalancerIP`` whenever present, even when empty, as in OpenELB."""
ANNOTATION_DEFAULT_POOL = "eip.openelb.kubesphere.io/is-default-eip"
"""Eip annotation; ``"true"`` marks the default pool (one per family)."""
ANNOTATION_SHARING_KEY = "openelb.io/sharing-key"
"""Service annotation: Services with the same value may share an IP when their ports differ."""

PROTOCOLS = ("layer2", "vip", "bgp")
"""Values of Eip ``spec.protocol``; empty means ``bgp``, as in OpenELB."""
PROTOCOLS_NEEDING_INTERFACE = ("layer2", "vip")
"""Protocols that announce on a NIC and so need ``spec.interface``."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Creation time of objects that do not say (sorts first)."""


class ServiceKey(NamedTuple):
    """A Service's identity in IPAM: namespace and name (what Eip status ``used`` records)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ServiceKey | None:
        """``"ns/name"`` (as in Eip status ``used``) to a key; None when malformed."""
        namespace, sep, name = text.strip().partition("/")
        if not sep or not namespace or not name or "/" in name:
            return None
        return cls(namespace, name)


class IPFamilyPolicy(enum.Enum):
    """Service ``spec.ipFamilyPolicy``."""

    SINGLE_STACK = "SingleStack"
    PREFER_DUAL_STACK = "PreferDualStack"
    REQUIRE_DUAL_STACK = "RequireDualStack"

    @classmethod
    def parse(cls, text: str | None) -> IPFamilyPolicy:
        """The policy; unset or unknown means SingleStack (the API server's default)."""
        member = cls._value2member_map_.get(text) if text else None
        return member if isinstance(member, IPFamilyPolicy) else cls.SINGLE_STACK


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service, as far as sharing an IP is concerned."""

    port: int
    """The Service port number."""
    protocol: str = "TCP"
    """TCP, UDP or SCTP."""


@dataclass(frozen=True)
class ServiceRequest:
    """What a LoadBalancer Service asks of IPAM."""

    namespace: str
    """Service namespace."""
    name: str
    """Service name."""
    uid: str = ""
    """metadata.uid (informational: IPAM keys Services by namespace/name, like Eip status)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """metadata.annotations (pool, IP and sharing-key annotations are read from here)."""
    load_balancer_ip: str = ""
    """spec.loadBalancerIP (the IP annotation wins when present)."""
    ip_families: tuple[str, ...] = ()
    """spec.ipFamilies as strings (``IPv4``/``IPv6``); the first is the primary family."""
    ip_family_policy: str | None = None
    """spec.ipFamilyPolicy; unset means SingleStack."""
    ports: tuple[ServicePort, ...] = ()
    """spec.ports (number and protocol), for the sharing check."""
    created: datetime = EPOCH
    """metadata.creationTimestamp: the oldest Service keeps a contested IP on rebuild."""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the Service's namespace, matched against Eip ``namespaceSelector``."""

    key: ServiceKey = field(init=False, repr=False, compare=False)
    """``namespace/name`` (derived; built once because every IPAM call needs it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", ServiceKey(self.namespace, self.name))

    @property
    def sharing_key(self) -> str | None:
        """The sharing-key annotation value, or None when absent or blank."""
        value = self.annotations.get(ANNOTATION_SHARING_KEY, "").strip()
        return value or None

    @property
    def requested_ips_text(self) -> str:
        """The requested IP(s) as written: the IP annotation if present, else loadBalancerIP."""
        if ANNOTATION_IP in self.annotations:
            return self.annotations[ANNOTATION_IP].strip()
        return self.load_balancer_ip.strip()

    @property
    def pool_names(self) -> tuple[str, ...]:
        """Eip names from the pool annotation (empty when absent or blank)."""
        text = self.annotations.get(ANNOTATION_POOL)
        if not text:
            return ()
        return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class EipSpec:
    """An Eip (address pool), as IPAM needs it."""

    name: str
    """metadata.name (Eips are cluster-scoped)."""
    address: str
    """spec.address: an IP, a CIDR or a range ``first-last``."""
    protocol: str = ""
    """spec.protocol: layer2, vip or bgp (empty means bgp)."""
    interface: str = ""
    """spec.interface: NIC name or ``can_reach:<ip>``; required for layer2 and vip."""
    disable: bool = False
    """spec.disable: no new allocations (existing ones stay)."""
    priority: object = 0
    """spec.priority as found in the object (lower wins); validation checks it is an int32."""
    namespaces: tuple[str, ...] = ()
    """spec.namespaces: namespaces this pool serves automatically."""
    namespace_selector: Mapping[str, str] | None = None
    """spec.namespaceSelector (labels that must all match); ``{}`` matches every namespace,
    as OpenELB's label selector does; None means no selector."""
    exclude: tuple[str, ...] = ()
    """Addresses never handed out (each an IP, CIDR or range)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """metadata.annotations (the default-pool annotation is read from here)."""
    created: datetime = EPOCH
    """metadata.creationTimestamp: the older of two overlapping pools keeps working."""
    router_id: int | None = None
    """Virtual router ID recorded in the status (VIP mode), re-used across restarts."""
    deleting: bool = False
    """metadata.deletionTimestamp is set: no new allocations, and the pool takes no part in
    overlap and default checks (a replacement may take its place); its holders stay put and it
    keeps reporting them until they are released."""

    @property
    def is_default(self) -> bool:
        """Carries ``eip.openelb.kubesphere.io/is-default-eip: "true"``."""
        return self.annotations.get(ANNOTATION_DEFAULT_POOL, "") == "true"

    @property
    def effective_protocol(self) -> str:
        """The protocol, with empty meaning bgp."""
        return self.protocol or "bgp"

    @property
    def order_key(self) -> tuple[datetime, str]:
        """Older first, then by name: who wins a tie between pools."""
        return (self.created, self.name)

    def serves(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether this pool is offered automatically to Services in ``namespace``."""
        if namespace in self.namespaces:
            return True
        selector = self.namespace_selector
        # OpenELB only matches namespaces that carry labels (all do since Kubernetes 1.21).
        if selector is None or not labels:
            return False
        return all(labels.get(key) == value for key, value in selector.items())
