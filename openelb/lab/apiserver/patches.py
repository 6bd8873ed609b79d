"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge (approximated).

Strategic merge patch is kube-apiserver's default for built-in types and what the typed client
sends for a dict body. The full algorithm reads patch strategies from Go struct tags; here a table
covers the list fields openelb and its tests touch (finalizers, ownerReferences, Service ports,
conditions, Node addresses), plus the ``$patch: delete|replace`` and
``$deleteFromPrimitiveList/`` directives. Every other list is replaced, as in a merge patch.
"""

from __future__ import annotations

import copy
from typing import Any

from openelb.lab.apiserver.errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_PRIMITIVE_MERGE = {("metadata", "finalizers")}
"""Lists of strings that a strategic patch unions instead of replacing."""
_MERGE_KEYS: dict[tuple[str, ...], str] = {
    ("metadata", "ownerReferences"): "uid",
    ("spec", "ports"): "port",
    ("status", "conditions"): "type",
    ("status", "addresses"): "type",
}
"""Lists of objects that a strategic patch merges element-wise by this key."""


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "delete":
        return None
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and child[-2:] in _PRIMITIVE_MERGE:
            existing = result.get(key)
            old: list[Any] = existing if isinstance(existing, list) else []
            result[key] = old + [v for v in value if v not in old]
        elif isinstance(value, list) and child[-2:] in _MERGE_KEYS:
            result[key] = _merge_keyed_list(result.get(key), value, _MERGE_KEYS[child[-2:]], child)
        else:
            merged = strategic_merge_patch(result.get(key), value, child)
            if merged is None and isinstance(value, dict):
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_keyed_list(target: Any, patch: list[Any], key: str, path: tuple[str, ...]) -> list[Any]:
    items = [copy.deepcopy(x) for x in target] if isinstance(target, list) else []
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            raise _unprocessable(f"{'.'.join(path)}: every element needs the merge key {key!r}")
        index = next(
            (
                i
                for i, old in enumerate(items)
                if isinstance(old, dict) and old.get(key) == element[key]
            ),
            None,
        )
        if element.get("$patch") == "delete":
            if index is not None:
                del items[index]
            continue
        if index is None:
            items.append(strategic_merge_patch({}, element, path))
        else:
            items[index] = strategic_merge_patch(items[index], element, path)
    return items


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], op: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _unprocessable(f"{op}: path /{'/'.join(parts)} does not exist")
    return node, parts[-1]


def _get(doc: Any, path: str, op: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent, last = _parent(doc, parts, op)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _unprocessable(f"{op}: path {path} does not exist")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, "add")
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _unprocessable(f"add: index {last} out of range at {path}")
    else:
        raise _unprocessable(f"add: parent of {path} is not a container")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise _unprocessable("remove: cannot remove the whole document")
    parent, last = _parent(doc, parts, "remove")
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _unprocessable(f"remove: path {path} does not exist")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902, applied to a copy; a failed ``test`` or a bad path is a 422 and changes nothing."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise ApiError(400, "BadRequest", f"malformed JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _remove(doc, path)
        elif op == "replace":
            _get(doc, path, "replace")
            doc = _add(_remove(doc, path), path, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            value = copy.deepcopy(_get(doc, operation.get("from", ""), op))
            if op == "move":
                doc = _remove(doc, operation["from"])
            doc = _add(doc, path, value)
        elif op == "test":
            if _get(doc, path, "test") != operation.get("value"):
                raise _unprocessable(f"test failed at {path}")
        else:
            raise ApiError(400, "BadRequest", f"unknown JSON patch op {op!r}")
    return doc
