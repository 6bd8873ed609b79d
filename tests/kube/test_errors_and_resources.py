"""Error mapping from Status bodies and REST paths of the resource descriptors."""

from __future__ import annotations

import json

import pytest

from openelb.kube import errors
from openelb.kube.resources import EIPS, LEASES, NODES, SERVICES, object_key


def _status(code: int, reason: str, message: str = "m") -> bytes:
    return json.dumps(
        {"kind": "Status", "code": code, "reason": reason, "message": message}
    ).encode()


@pytest.mark.parametrize(
    ("status", "reason", "cls"),
    [
        (400, "BadRequest", errors.BadRequest),
        (403, "Forbidden", errors.Forbidden),
        (404, "NotFound", errors.NotFound),
        (409, "Conflict", errors.Conflict),
        (409, "AlreadyExists", errors.AlreadyExists),
        (410, "Expired", errors.Gone),
        (422, "Invalid", errors.Invalid),
        (429, "TooManyRequests", errors.Unavailable),
        (500, "InternalError", errors.Unavailable),
        (503, "ServiceUnavailable", errors.Unavailable),
        (418, "Teapot", errors.KubeError),
    ],
)
def test_status_maps_to_its_error_kind(status: int, reason: str, cls: type) -> None:
    error = errors.error_for_status(status, _status(status, reason, "why"))
    assert type(error) is cls
    assert (error.status, error.reason, error.message) == (status, reason, "why")
    assert isinstance(error, errors.KubeError)


def test_non_json_body_keeps_its_text_and_status() -> None:
    error = errors.error_for_status(502, b"<html>bad gateway</html>", default_reason="Bad Gateway")
    assert isinstance(error, errors.Unavailable)
    assert error.reason == "Bad Gateway"
    assert "bad gateway" in error.message


def test_watch_error_event_410_is_gone() -> None:
    error = errors.error_from_status_object({"code": 410, "reason": "Expired", "message": "old"})
    assert isinstance(error, errors.Gone)


def test_paths_of_core_group_and_crd_resources() -> None:
    assert SERVICES.path() == "/api/v1/services"
    assert SERVICES.path(namespace="ns") == "/api/v1/namespaces/ns/services"
    assert SERVICES.path(namespace="ns", name="a", subresource="status") == (
        "/api/v1/namespaces/ns/services/a/status"
    )
    assert NODES.path(name="n1") == "/api/v1/nodes/n1"
    assert LEASES.path(namespace="kube-system", name="x") == (
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x"
    )
    assert EIPS.path(name="pool", subresource="status") == (
        "/apis/network.kubesphere.io/v1alpha2/eips/pool/status"
    )
    assert EIPS.api_version == "network.kubesphere.io/v1alpha2"


def test_scope_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        EIPS.path(namespace="ns")
    with pytest.raises(ValueError, match="namespace is needed"):
        SERVICES.path(name="a")


def test_object_key() -> None:
    assert object_key({"metadata": {"name": "a", "namespace": "ns"}}) == "ns/a"
    assert object_key({"metadata": {"name": "n1"}}) == "n1"
