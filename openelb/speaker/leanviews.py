"""Lean views for the speaker's watch caches: only the fields the speaker reads.

A speaker caches every Service and EndpointSlice of the cluster. At 10,000 Services the full views
with their raw JSON were most of its memory (speaker RSS ~200 MB against a 150 MB target); the
speaker reads only a Service's key, opt-in, deletion, ingress IPs and traffic policy, and of the raw
object what an Event about it needs (``kube.views.event_subject``). Strings every Service repeats
are interned.
"""

from __future__ import annotations

import dataclasses
import sys
from types import MappingProxyType
from typing import Any

from openelb.kube.views import (
    SERVICE_OPT_IN_ANNOTATION,
    EndpointSlice,
    ObjectMeta,
    Service,
    event_subject,
)

_NO_STRINGS: MappingProxyType[str, str] = MappingProxyType({})
_OPT_IN: dict[str, MappingProxyType[str, str]] = {}  # opt-in value -> one shared mapping


def lean_service(raw: dict[str, Any]) -> Service:
    """A Service view with only what the speaker reads (see the module docstring); the other
    fields are empty. Validates the object as :meth:`Service.from_raw` does."""
    full = Service.from_raw(raw)  # validates as everywhere else
    meta = full.meta
    opt_in = meta.annotations.get(SERVICE_OPT_IN_ANNOTATION)
    lean_meta = ObjectMeta(
        name=meta.name,
        namespace=sys.intern(meta.namespace),
        uid="",
        resource_version="",
        labels=_NO_STRINGS,
        annotations=_NO_STRINGS if opt_in is None else _opt_in_map(opt_in),
        finalizers=(),
        deleting=meta.deleting,
        generation=0,
    )
    return Service(
        meta=lean_meta,
        type=sys.intern(full.type),
        load_balancer_class=full.load_balancer_class,
        ports=(),
        ip_families=(),
        ip_family_policy="",
        load_balancer_ip="",
        external_traffic_policy=sys.intern(full.external_traffic_policy),
        ingress_ips=full.ingress_ips,
        cluster_ips=(),
        raw=event_subject(raw),
    )


def _opt_in_map(value: str) -> MappingProxyType[str, str]:
    found = _OPT_IN.get(value)
    if found is None:
        found = MappingProxyType({SERVICE_OPT_IN_ANNOTATION: value})
        if len(_OPT_IN) < 64:  # a handful of values in practice; never grow without bound
            _OPT_IN[value] = found
    return found


def lean_slice(raw: dict[str, Any]) -> EndpointSlice:
    """An EndpointSlice view whose ``raw`` is only an Event's subject."""
    return dataclasses.replace(EndpointSlice.from_raw(raw), raw=event_subject(raw))
