"""Descriptors of the API resources openelb reads and writes, and their REST paths.

One generic client serves every resource (raw JSON over the real client's HTTP layer), so a
resource is data: group, version, plural, scope and whether it has a status subresource.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    """One API resource type (e.g. core/v1 services)."""

    group: str
    """API group; ``""`` for the core group."""
    version: str
    """API version within the group (``v1``, ``v1alpha2``)."""
    plural: str
    """Lower-case plural used in URLs (``services``)."""
    kind: str
    """Kind of one object (``Service``)."""
    namespaced: bool
    """Objects live in namespaces (False for Nodes, Namespaces, Eips)."""
    has_status: bool
    """The resource has a ``/status`` subresource (the main endpoint ignores status)."""

    @property
    def api_version(self) -> str:
        """``apiVersion`` of its objects (``v1``, ``coordination.k8s.io/v1``)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """REST path; a namespaced resource without namespace lists across all namespaces."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        elif not self.namespaced and namespace:
            raise ValueError(f"{self.plural} are cluster-scoped; got namespace {namespace!r}")
        elif self.namespaced and name:
            raise ValueError(f"{self.plural} are namespaced: a namespace is needed with a name")
        path = f"{base}/{self.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        elif subresource:
            raise ValueError("a subresource needs an object name")
        if subresource:
            path += f"/{subresource}"
        return path

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


SERVICES = Resource("", "v1", "services", "Service", namespaced=True, has_status=True)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False, has_status=True)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False, has_status=True)
EVENTS = Resource("", "v1", "events", "Event", namespaced=True, has_status=False)
ENDPOINTSLICES = Resource(
    "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", namespaced=True, has_status=False
)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True, has_status=False)
EIPS = Resource(
    "network.kubesphere.io", "v1alpha2", "eips", "Eip", namespaced=False, has_status=True
)

ALL: tuple[Resource, ...] = (SERVICES, NODES, NAMESPACES, EVENTS, ENDPOINTSLICES, LEASES, EIPS)
"""Every resource openelb touches (the RBAC it needs is for exactly these)."""


def object_key(obj: dict[str, object]) -> str:
    """Cache key of a raw object: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise ValueError("object has no metadata")
    name = meta.get("name")
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if namespace else str(name)


__all__ = [
    "ALL",
    "EIPS",
    "ENDPOINTSLICES",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "SERVICES",
    "Resource",
    "object_key",
]
