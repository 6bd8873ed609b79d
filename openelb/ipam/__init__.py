"""IPAM: which address each LoadBalancer Service gets from the Eip pools. Pure logic, no I/O.

OpenELB-compatible pool choice and status, plus what OpenELB lacked: pools of any size (a /64
costs what a /24 costs: ranges are integers, never enumerated), dual-stack, IP sharing with a
port check, exclusions, typed reasons for "no IP", validation that never crashes, stable VRRP
router IDs, and a deterministic rebuild from the objects Kubernetes stores.

The manager maps its Kubernetes views to :class:`EipSpec` / :class:`ServiceRequest`, keeps one
:class:`Allocator`, and writes what :func:`eip_status`, :func:`eip_conditions` and
:class:`Allocation` say. Nothing here imports the Kubernetes client, the data plane or the lab.
"""

from openelb.ipam.addresses import (
    AddressError,
    AddressRange,
    Family,
    ParsedAddress,
    format_ip,
    parse_ip,
    parse_pool_address,
)
from openelb.ipam.allocator import Allocator
from openelb.ipam.model import (
    ANNOTATION_DEFAULT_POOL,
    ANNOTATION_IP,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_KEY,
    EipSpec,
    IPFamilyPolicy,
    ServiceKey,
    ServicePort,
    ServiceRequest,
)
from openelb.ipam.outcomes import Allocation, Assigned, FamilyFailure, NoIP, NoIPReason
from openelb.ipam.rebuild import Conflict, Dropped, EipState, Rebuilt, ServiceState, rebuild
from openelb.ipam.routerids import (
    RouterIdAssignment,
    RouterIdIssue,
    RouterIdNote,
    RouterIdRange,
    assign_router_ids,
)
from openelb.ipam.sharing import Claim, Refusal, sharing_refusal
from openelb.ipam.status import (
    Condition,
    EipStatus,
    KeptAddress,
    KeptReason,
    eip_conditions,
    eip_status,
)
from openelb.ipam.validation import (
    EipAnalysis,
    Problem,
    ProblemKind,
    analyze_eips,
    validate_eip,
    validate_eips,
)

__all__ = [
    "ANNOTATION_DEFAULT_POOL",
    "ANNOTATION_IP",
    "ANNOTATION_POOL",
    "ANNOTATION_SHARING_KEY",
    "AddressError",
    "AddressRange",
    "Allocation",
    "Allocator",
    "Assigned",
    "Claim",
    "Condition",
    "Conflict",
    "Dropped",
    "EipAnalysis",
    "EipSpec",
    "EipState",
    "EipStatus",
    "Family",
    "FamilyFailure",
    "IPFamilyPolicy",
    "KeptAddress",
    "KeptReason",
    "NoIP",
    "NoIPReason",
    "ParsedAddress",
    "Problem",
    "ProblemKind",
    "Rebuilt",
    "Refusal",
    "RouterIdAssignment",
    "RouterIdIssue",
    "RouterIdNote",
    "RouterIdRange",
    "ServiceKey",
    "ServicePort",
    "ServiceRequest",
    "ServiceState",
    "analyze_eips",
    "assign_router_ids",
    "eip_conditions",
    "eip_status",
    "format_ip",
    "parse_ip",
    "parse_pool_address",
    "rebuild",
    "sharing_refusal",
    "validate_eip",
    "validate_eips",
]
