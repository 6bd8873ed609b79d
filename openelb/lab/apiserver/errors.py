"""Kubernetes-style API errors: every failure leaves the server as a ``Status`` body.

Clients branch on ``code`` and ``reason`` (409 ``Conflict`` vs ``AlreadyExists``, 410 ``Expired``),
so the server raises one exception type carrying both and the HTTP layer renders it.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request failed; rendered as a ``metav1.Status`` with this code and reason."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind: str, name: str | None, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def not_found(*, plural: str, group: str, name: str) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        details=_details(plural, name, group),
    )


def already_exists(*, plural: str, group: str, name: str) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        details=_details(plural, name, group),
    )


def conflict(*, plural: str, group: str, name: str, why: str | None = None) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    why = why or (
        "the object has been modified; please apply your changes to the latest version and "
        "try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        details=_details(plural, name, group),
    )


def invalid(*, kind: str, group: str, name: str, field: str, why: str) -> ApiError:
    body_details = _details(kind, name, group)
    body_details["causes"] = [{"reason": "FieldValueInvalid", "message": why, "field": field}]
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {field}: {why}',
        details=body_details,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
