"""Settings, as dataclasses: one per component, a docstring under each field.

Values come from command-line flags (which may also be read from ``OPENELB_*`` environment
variables); the defaults are the ones the design's targets are measured with.
"""

from __future__ import annotations

# --- kube: client, watches, leader election ------------------------------------------------------


# --- manager -------------------------------------------------------------------------------------


# --- dataplane -----------------------------------------------------------------------------------


# --- speaker -------------------------------------------------------------------------------------


# --- keepalived (VIP mode) -----------------------------------------------------------------------
