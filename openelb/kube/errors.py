"""openelb's own Kubernetes error hierarchy.

Callers decide by kind, not by HTTP status arithmetic: a reconciler retries :class:`Conflict` by
re-reading, a watch relists on :class:`Gone`, everything backs off on :class:`Unavailable`. The
client's exception (or urllib3's, for a refused connection or a timeout) is chained as
``__cause__`` so nothing of the original is lost.
"""

from __future__ import annotations

import json
from typing import Any


class KubeError(Exception):
    """A request to the apiserver failed. ``status`` is the HTTP code (0 without a response)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        """HTTP status code; 0 when no response arrived (refused, timed out, reset)."""
        self.reason = reason
        """The Status ``reason`` (``NotFound``, ``Conflict``, ...) or a short local one."""
        self.message = message
        """The Status ``message`` (human readable)."""
        self.retry_after: float | None = None
        """Seconds the server asked us to wait (``Retry-After`` on 429/503), if any."""


class KubeConfigError(KubeError):
    """No usable client configuration: no in-cluster service account, kubeconfig or context."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "ConfigError", message)


class BadRequest(KubeError):  # noqa: N818 (Kubernetes reason names)
    """400: the request itself is wrong (bad selector, malformed patch)."""


class Forbidden(KubeError):  # noqa: N818 (Kubernetes reason names)
    """401/403: credentials missing or not allowed (RBAC)."""


class NotFound(KubeError):  # noqa: N818 (Kubernetes reason names)
    """404: the object (or the resource type) does not exist."""


class Conflict(KubeError):  # noqa: N818 (Kubernetes reason names)
    """409 with a stale resourceVersion or failed precondition: re-read and re-apply."""


class AlreadyExists(KubeError):  # noqa: N818 (Kubernetes reason names)
    """409 on create: an object with that name exists."""


class Gone(KubeError):  # noqa: N818 (Kubernetes reason names)
    """410: the resourceVersion is too old (compacted); relist."""


class Invalid(KubeError):  # noqa: N818 (Kubernetes reason names)
    """422: the object fails validation (retrying the same body cannot help)."""


class Unavailable(KubeError):  # noqa: N818 (Kubernetes reason names)
    """5xx, 429, or no response at all (refused, timeout, reset): back off and retry."""


def error_for_status(
    status: int, body: bytes | str | None, *, default_reason: str = ""
) -> KubeError:
    """Build the right :class:`KubeError` subclass from an HTTP status and a Status body."""
    reason, message = _parse_status_body(body)
    reason = reason or default_reason or f"HTTP{status}"
    return _class_for(status, reason)(status, reason, message or reason)


def error_from_status_object(status_obj: dict[str, Any]) -> KubeError:
    """The error a watch ``ERROR`` event carries (a Status object with ``code``)."""
    code = int(status_obj.get("code") or 500)
    reason = str(status_obj.get("reason") or f"HTTP{code}")
    message = str(status_obj.get("message") or reason)
    return _class_for(code, reason)(code, reason, message)


def _class_for(status: int, reason: str) -> type[KubeError]:
    if status == 409:
        return AlreadyExists if reason == "AlreadyExists" else Conflict
    if status == 429 or status >= 500:
        return Unavailable
    return _BY_STATUS.get(status, KubeError)


_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    422: Invalid,
}


def _parse_status_body(body: bytes | str | None) -> tuple[str, str]:
    if not body:
        return "", ""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return "", text.strip()[:500]
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("reason") or ""), str(data.get("message") or "")


__all__ = [
    "AlreadyExists",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeConfigError",
    "KubeError",
    "NotFound",
    "Unavailable",
    "error_for_status",
    "error_from_status_object",
]
