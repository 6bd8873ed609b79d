"""The openelb manager: Services get addresses from Eip pools, Eips get an exact status.

Layers: :mod:`optin` (which Services are ours), :mod:`reading` (JSON to IPAM inputs),
:mod:`reconciler` (pure decisions over one ``openelb.ipam.Allocator``), :mod:`eipstatus`
(the Eip status as the CRD spells it). The process around them (watches, leader election,
writes) lives in :mod:`openelb.manager.controller` and :mod:`openelb.manager.process`.
"""

from openelb.manager.decisions import (
    EventNote,
    FinalizerChange,
    ServiceDecision,
    StartReport,
    ingress_status,
)
from openelb.manager.optin import (
    ANNOTATION_OPT_IN,
    EIP_FINALIZER,
    FINALIZER,
    LOAD_BALANCER_CLASS,
    is_opted_in,
)
from openelb.manager.reconciler import Reconciler, canonical_ip, is_ours

__all__ = [
    "ANNOTATION_OPT_IN",
    "EIP_FINALIZER",
    "FINALIZER",
    "LOAD_BALANCER_CLASS",
    "EventNote",
    "FinalizerChange",
    "Reconciler",
    "ServiceDecision",
    "StartReport",
    "canonical_ip",
    "ingress_status",
    "is_opted_in",
    "is_ours",
]
