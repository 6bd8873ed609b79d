"""Command-line flags for VIP mode, ready for ``openelb speaker`` to stack on its command.

``@keepalived_options`` adds the flags (each also read from ``OPENELB_<FLAG>``, e.g.
``OPENELB_VRRP_ADVERT_INT``);
:func:`settings_from_options` pops them from the command's keyword arguments and builds a
validated :class:`~openelb.config.KeepalivedSettings`, turning a bad combination (a password
with a sub-second interval, say) into a clear usage error instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from openelb.config import KeepalivedSettings

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULTS = KeepalivedSettings()

_OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("--keepalived", "binary", {"default": _DEFAULTS.binary, "help": "keepalived executable."}),
    (
        "--keepalived-dir",
        "runtime_dir",
        {"default": _DEFAULTS.runtime_dir, "help": "Config, pid files and notify FIFO."},
    ),
    (
        "--vrrp-advert-int",
        "advert_int",
        {"type": float, "default": _DEFAULTS.advert_int, "help": "VRRP advert interval (s)."},
    ),
    (
        "--vrrp-priority",
        "priority_top",
        {"type": int, "default": _DEFAULTS.priority_top, "help": "Preferred master's priority."},
    ),
    (
        "--vrrp-unicast/--vrrp-multicast",
        "unicast",
        {"default": _DEFAULTS.unicast, "help": "Adverts to peers' addresses or multicast."},
    ),
    (
        "--vrrp-auth-pass",
        "auth_pass",
        {"default": "", "help": "VRRP password (forces VRRPv2 and whole-second adverts)."},
    ),
    (
        "--vrrp-preempt/--vrrp-no-preempt",
        "preempt",
        {"default": _DEFAULTS.preempt, "help": "Take an instance back when a better node returns."},
    ),
]


def keepalived_options(command: F) -> F:
    """Add the VIP-mode flags to a click command."""
    for flag, name, extra in reversed(_OPTIONS):
        envvar = "OPENELB_" + flag.split("/")[0].lstrip("-").upper().replace("-", "_")
        command = click.option(flag, name, envvar=envvar, show_default=True, **extra)(command)
    return command


def settings_from_options(kwargs: dict[str, Any]) -> KeepalivedSettings:
    """Pop the VIP-mode flags from ``kwargs``; click.UsageError if they do not fit together."""
    values = {name: kwargs.pop(name) for _flag, name, _extra in _OPTIONS if name in kwargs}
    try:
        return KeepalivedSettings(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
