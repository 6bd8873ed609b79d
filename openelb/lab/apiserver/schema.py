"""Structural-schema handling for custom resources: type checks and pruning, as kube-apiserver does.

A real apiserver drops fields a CRD's schema does not declare and rejects wrongly typed ones
with 422. A fake that keeps a misspelt field would let code pass here and fail on a cluster, so
custom resources go through the same two steps. Covered: ``type``, ``properties``,
``additionalProperties``, ``items``, ``required``, ``enum``, ``nullable``, ``minimum``/``maximum``,
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-int-or-string``. Not covered: CEL rules,
formats, patterns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openelb.lab.apiserver import errors
from openelb.lab.apiserver.resources import ResourceType

_ALWAYS_KEPT = ("apiVersion", "kind", "metadata")


class _InvalidError(Exception):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(why)
        self.path = path
        self.why = why


def prune_and_validate(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The object with undeclared fields removed; 422 Invalid when a value has the wrong type."""
    schema = rtype.schema or {}
    result: dict[str, Any] = {k: obj[k] for k in _ALWAYS_KEPT if k in obj}
    properties = schema.get("properties") or {}
    try:
        for key, value in obj.items():
            if key in _ALWAYS_KEPT:
                continue
            if key in properties:
                result[key] = _walk(properties[key], value, key)
            elif schema.get("x-kubernetes-preserve-unknown-fields"):
                result[key] = value
        for key in schema.get("required") or []:
            if key not in result:
                raise _InvalidError(key, "Required value")
    except _InvalidError as exc:
        raise errors.invalid(
            kind=rtype.kind,
            group=rtype.group,
            name=str(obj.get("metadata", {}).get("name", "")),
            field=exc.path,
            why=exc.why,
        ) from None
    return result


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _walk(schema: Mapping[str, Any], value: Any, path: str) -> Any:
    if value is None:
        if schema.get("nullable"):
            return None
        raise _InvalidError(
            path,
            f'Invalid value: "null": {path} in body must be of type {schema.get("type", "object")}',
        )
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            raise _InvalidError(path, f"Invalid value: {value!r}: must be an integer or a string")
        return value
    expected = schema.get("type")
    actual = _type_name(value)
    if expected and not (expected == actual or (expected == "number" and actual == "integer")):
        raise _InvalidError(
            path,
            f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"',
        )
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        raise _InvalidError(path, f"Unsupported value: {value!r}: supported values: {allowed}")
    if actual in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise _InvalidError(path, f"Invalid value: {value}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _InvalidError(path, f"Invalid value: {value}: must be <= {schema['maximum']}")
    if actual == "array":
        items = schema.get("items") or {}
        return [_walk(items, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if actual == "object":
        return _walk_object(schema, value, path)
    return value


def _walk_object(schema: Mapping[str, Any], value: dict[str, Any], path: str) -> dict[str, Any]:
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    out: dict[str, Any] = {}
    for key, child in value.items():
        child_path = f"{path}.{key}"
        if properties and key in properties:
            out[key] = _walk(properties[key], child, child_path)
        elif isinstance(additional, Mapping):
            out[key] = _walk(additional, child, child_path)
        elif additional is True or preserve:
            out[key] = child
    for key in schema.get("required") or []:
        if key not in out:
            raise _InvalidError(f"{path}.{key}", "Required value")
    return out
