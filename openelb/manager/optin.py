"""Which Services the manager may touch: the opt-in rules and the names it writes.

A Service is ours when it is ``type: LoadBalancer`` and either carries OpenELB's annotation
``lb.kubesphere.io/v1alpha1: openelb`` or sets ``spec.loadBalancerClass: openelb.io/openelb``.
A Service naming any other load balancer class belongs to another controller, even if it also
carries the annotation: the class is the Kubernetes-native contract and wins. Services that are
not ours are never written to, with one exception: a Service that *was* ours (it carries our
finalizer or holds one of our addresses) gets its addresses taken back and the finalizer removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ANNOTATION_OPT_IN = "lb.kubesphere.io/v1alpha1"
"""OpenELB's opt-in annotation; its value must be ``openelb``."""
OPT_IN_VALUE = "openelb"
"""The value of :data:`ANNOTATION_OPT_IN` that opts a Service in."""
LOAD_BALANCER_CLASS = "openelb.io/openelb"
"""``spec.loadBalancerClass`` that opts a Service in (OpenELB lacked it)."""
FINALIZER = "openelb.io/ip-release"
"""Held on every Service with addresses so a deletion waits until its addresses are released."""
EIP_FINALIZER = "finalizer.ipam.kubesphere.io/v1alpha1"
"""Held on every Eip so its deletion waits until no Service holds one of its addresses (the pool
keeps reporting them meanwhile). OpenELB's own name: Eips migrated from OpenELB carry it already,
and it is released here once it is safe."""

Raw = Mapping[str, Any]
"""A Kubernetes object as JSON (what the API returns)."""


def is_load_balancer(raw: Raw) -> bool:
    """``spec.type`` is LoadBalancer."""
    return bool(_spec(raw).get("type") == "LoadBalancer")


def is_opted_in(raw: Raw) -> bool:
    """The Service asks for openelb and no other load balancer class claims it."""
    if not is_load_balancer(raw):
        return False
    cls = _spec(raw).get("loadBalancerClass")
    if cls:
        return bool(cls == LOAD_BALANCER_CLASS)
    annotations = raw.get("metadata", {}).get("annotations") or {}
    return bool(str(annotations.get(ANNOTATION_OPT_IN, "")).strip() == OPT_IN_VALUE)


def is_deleting(raw: Raw) -> bool:
    """``metadata.deletionTimestamp`` is set: the object waits for its finalizers."""
    return bool(raw.get("metadata", {}).get("deletionTimestamp"))


def has_finalizer(raw: Raw, finalizer: str = FINALIZER) -> bool:
    """The object carries ``finalizer`` (by default the Service one, :data:`FINALIZER`)."""
    return finalizer in (raw.get("metadata", {}).get("finalizers") or ())


def _spec(raw: Raw) -> Mapping[str, Any]:
    spec = raw.get("spec")
    return spec if isinstance(spec, Mapping) else {}
