"""openelb: a load balancer for Kubernetes on bare metal.

Layer 2 mode answers ARP/NDP for Service VIPs from an XDP program and fails over in about
150 ms; VIP mode drives keepalived (VRRPv3). The API is OpenELB's (``Eip`` CRD, annotations).
See ``DESIGN.md`` for the architecture.
"""

__version__ = "0.1.0"
