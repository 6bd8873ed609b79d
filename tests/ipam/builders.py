"""Short constructors for IPAM inputs, so tests read like the objects a user writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from openelb.ipam import (
    ANNOTATION_DEFAULT_POOL,
    ANNOTATION_IP,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_KEY,
    EipSpec,
    ServicePort,
    ServiceRequest,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    """A creation time ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def eip(
    name: str,
    address: str,
    *,
    default: bool = False,
    protocol: str = "layer2",
    interface: str = "eth0",
    created: int = 0,
    **fields: object,
) -> EipSpec:
    """An Eip; layer2 on eth0 unless told otherwise."""
    annotations = {ANNOTATION_DEFAULT_POOL: "true"} if default else {}
    return EipSpec(
        name=name,
        address=address,
        protocol=protocol,
        interface=interface,
        annotations=annotations,
        created=at(created),
        **fields,  # type: ignore[arg-type]
    )


def svc(
    name: str,
    *,
    namespace: str = "default",
    pool: str | None = None,
    ip: str | None = None,
    lb_ip: str = "",
    key: str | None = None,
    ports: tuple[int | tuple[int, str], ...] = (80,),
    families: tuple[str, ...] = (),
    policy: str | None = None,
    created: int = 0,
    labels: dict[str, str] | None = None,
) -> ServiceRequest:
    """A LoadBalancer Service request."""
    annotations: dict[str, str] = {}
    if pool is not None:
        annotations[ANNOTATION_POOL] = pool
    if ip is not None:
        annotations[ANNOTATION_IP] = ip
    if key is not None:
        annotations[ANNOTATION_SHARING_KEY] = key
    port_list = tuple(
        ServicePort(p) if isinstance(p, int) else ServicePort(p[0], p[1]) for p in ports
    )
    return ServiceRequest(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        annotations=annotations,
        load_balancer_ip=lb_ip,
        ip_families=families,
        ip_family_policy=policy,
        ports=port_list,
        created=at(created),
        namespace_labels=labels
        if labels is not None
        else {"kubernetes.io/metadata.name": namespace},
    )
