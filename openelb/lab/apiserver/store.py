"""The object store: one global resourceVersion, the objects, and the event history.

Everything that decides a request's outcome lives here, under one lock, so the semantics a
controller depends on hold exactly: a write gets the next resourceVersion or changes nothing; an
update with a stale resourceVersion is a 409; a watch from resourceVersion N sees every later
event in order or a 410 when the history no longer reaches back to N.

Stored objects are immutable once stored and carry their JSON encoding, so a list response and
every watcher reuse the same bytes: an object is encoded once per write, whatever the number of
watchers.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from openelb.lab.apiserver import errors
from openelb.lab.apiserver.defaults import ClusterIPs, default_namespace, default_service
from openelb.lab.apiserver.errors import ApiError
from openelb.lab.apiserver.patches import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from openelb.lab.apiserver.resources import ResourceType
from openelb.lab.apiserver.schema import prune_and_validate
from openelb.lab.apiserver.selectors import FieldSelector, LabelSelector

Obj = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def encode(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(slots=True)
class Stored:
    """An object as stored: never mutated; ``raw`` is its JSON."""

    obj: Obj
    raw: bytes
    rv: int

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.obj["metadata"].get("labels") or {}
        return labels

    @staticmethod
    def of(obj: Obj, rv: int) -> Stored:
        return Stored(obj, encode(obj), rv)


@dataclass(slots=True)
class Event:
    """One change, as every watcher of its resource type may see it."""

    rv: int
    type: str
    """ADDED, MODIFIED or DELETED."""
    rtype: ResourceType
    namespace: str
    current: Stored
    previous: Stored | None = None
    _line: bytes | None = field(default=None, repr=False)
    _left_line: bytes | None = field(default=None, repr=False)

    def line(self) -> bytes:
        if self._line is None:
            self._line = b'{"type":"%s","object":%s}\n' % (self.type.encode(), self.current.raw)
        return self._line

    def left_selector_line(self) -> bytes:
        """DELETED with the previous content at this event's resourceVersion, as kube does."""
        if self._left_line is None:
            assert self.previous is not None
            obj = json.loads(self.previous.raw)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._left_line = b'{"type":"DELETED","object":%s}\n' % encode(obj)
        return self._left_line


@dataclass(frozen=True)
class ListPage:
    rv: int
    items: list[Stored]
    continue_token: str
    remaining: int


def _type_key(rtype: ResourceType) -> tuple[str, str]:
    return (rtype.group, rtype.plural)


class Store:
    """All objects of all served types, the global resourceVersion and the event history."""

    def __init__(self, *, history_limit: int, namespace_type: ResourceType) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self.history_limit = history_limit
        self.cond = threading.Condition()
        self._rv = 1
        self._objects: dict[tuple[str, str], dict[Key, Stored]] = {}
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._sorted: dict[tuple[str, str], list[Key]] = {}
        """Sorted keys per type for paged lists; dropped when a key appears or disappears."""
        self._history: list[Event] = []
        self._floor = 0
        """Events with rv <= floor are gone: a watch or continue from before it gets 410."""
        self._cluster_ips = ClusterIPs()
        self._namespace_type = namespace_type
        self.watch_expire_epoch = 0
        self.watch_drop_epoch = 0
        self.closed = False
        for name in DEFAULT_NAMESPACES:
            self.create(namespace_type, "", {"metadata": {"name": name}})

    # ----------------------------------------------------------------- reads

    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    @property
    def floor(self) -> int:
        return self._floor

    def _table(self, rtype: ResourceType) -> dict[Key, Stored]:
        key = _type_key(rtype)
        table = self._objects.get(key)
        if table is None:
            table = self._objects[key] = {}
            self._types[key] = rtype
        return table

    def _sorted_keys(self, rtype: ResourceType, table: dict[Key, Stored]) -> list[Key]:
        keys = self._sorted.get(_type_key(rtype))
        if keys is None:
            keys = self._sorted[_type_key(rtype)] = sorted(table)
        return keys

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Stored:
        with self.cond:
            found = self._table(rtype).get((namespace, name))
        if found is None:
            raise errors.not_found(plural=rtype.plural, group=rtype.group, name=name)
        return found

    def list_page(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListPage:
        start_after: Key | None = None
        with self.cond:
            rv = self._rv
            if continue_token:
                token_rv, start_after = _decode_continue(continue_token)
                if token_rv < self._floor:
                    raise errors.expired(
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter."
                    )
                rv = token_rv
            table = self._table(rtype)
            if limit or continue_token:
                keys = self._sorted_keys(rtype, table)
                first = 0 if start_after is None else bisect.bisect_right(keys, start_after)
                snapshot = [table[k] for k in keys[first:]]
            else:
                snapshot = list(table.values())
        matching = list(iter_matching(snapshot, namespace=namespace, labels=labels, fields=fields))
        if limit and len(matching) > limit:
            page = matching[:limit]
            last = page[-1].obj["metadata"]
            token = _encode_continue(rv, (last.get("namespace", ""), last["name"]))
            return ListPage(rv, page, token, len(matching) - limit)
        return ListPage(rv, matching, "", 0)

    # ---------------------------------------------------------------- writes

    def _commit(
        self,
        rtype: ResourceType,
        key: Key,
        obj: Obj | None,
        *,
        event: str,
        previous: Stored | None,
        final: Obj | None = None,
    ) -> Stored:
        """Store ``obj`` (or delete ``final``) at the next resourceVersion and record the event."""
        self._rv += 1
        rv = self._rv
        body = obj if obj is not None else final
        assert body is not None
        body["metadata"]["resourceVersion"] = str(rv)
        stored = Stored.of(body, rv)
        table = self._table(rtype)
        if event == "DELETED":
            table.pop(key, None)
            self._sorted.pop(_type_key(rtype), None)
        else:
            if key not in table:
                self._sorted.pop(_type_key(rtype), None)
            table[key] = stored
        self._history.append(
            Event(rv, event, rtype, key[0], stored, previous if event == "MODIFIED" else None)
        )
        if len(self._history) > self.history_limit:
            # Drop a tenth at once so trimming is amortised, not a list shift per write.
            cut = max(1, self.history_limit // 10)
            self._floor = self._history[cut - 1].rv
            del self._history[:cut]
        self.cond.notify_all()
        return stored

    def _check_namespace(self, rtype: ResourceType, namespace: str) -> None:
        if rtype.namespaced and ("", namespace) not in self._table(self._namespace_type):
            raise errors.not_found(plural="namespaces", group="", name=namespace)

    def create(self, rtype: ResourceType, namespace: str, body: Obj) -> Stored:
        obj = _normalise_body(rtype, body)
        meta = obj["metadata"]
        body_ns = meta.get("namespace")
        if rtype.namespaced:
            if body_ns and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        with self.cond:
            self._check_namespace(rtype, namespace)
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise errors.invalid(
                        kind=rtype.kind,
                        group=rtype.group,
                        name="",
                        field="metadata.name",
                        why="Required value: name or generateName is required",
                    )
                meta["name"] = self._generate_name(rtype, namespace, prefix)
            name = meta["name"]
            _validate_name(rtype, name)
            key = (namespace if rtype.namespaced else "", name)
            if key in self._table(rtype):
                raise errors.already_exists(plural=rtype.plural, group=rtype.group, name=name)
            for drop in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(drop, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            if rtype.status_subresource and rtype.kind not in ("Node", "Namespace"):
                obj.pop("status", None)
            if rtype.custom and rtype.schema is not None:
                obj = prune_and_validate(rtype, obj)
            if rtype.group == "" and rtype.kind == "Service":
                default_service(obj, self._cluster_ips)
            elif rtype.group == "" and rtype.kind == "Namespace":
                default_namespace(obj)
            return self._commit(rtype, key, obj, event="ADDED", previous=None)

    def _generate_name(self, rtype: ResourceType, namespace: str, prefix: str) -> str:
        table = self._table(rtype)
        for _ in range(16):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            if (namespace, prefix + suffix) not in table:
                return prefix + suffix
        raise errors.already_exists(plural=rtype.plural, group=rtype.group, name=prefix)

    def update(
        self, rtype: ResourceType, namespace: str, name: str, body: Obj, *, status: bool = False
    ) -> Stored:
        """PUT: replace the object (or its status), conditional on a resourceVersion if given."""
        obj = _normalise_body(rtype, body)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if rtype.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        with self.cond:
            key = (namespace if rtype.namespaced else "", name)
            current = self._table(rtype).get(key)
            if current is None:
                if rtype.create_on_update and not status:
                    meta["name"] = name
                    return self.create(rtype, namespace, obj)
                raise errors.not_found(plural=rtype.plural, group=rtype.group, name=name)
            wanted_rv = meta.get("resourceVersion")
            if not wanted_rv and not rtype.unconditional_update:
                raise errors.invalid(
                    kind=rtype.kind,
                    group=rtype.group,
                    name=name,
                    field="metadata.resourceVersion",
                    why="Invalid value: 0x0: must be specified for an update",
                )
            if wanted_rv and wanted_rv != str(current.rv):
                raise errors.conflict(plural=rtype.plural, group=rtype.group, name=name)
            return self._replace(rtype, key, current, obj, status=status)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        *,
        content_type: str,
        status: bool = False,
    ) -> Stored:
        """PATCH: apply to the current object; a resourceVersion in the result is a precondition."""
        apply = _patcher(rtype, content_type)
        with self.cond:
            key = (namespace if rtype.namespaced else "", name)
            current = self._table(rtype).get(key)
            if current is None:
                raise errors.not_found(plural=rtype.plural, group=rtype.group, name=name)
            patched = apply(json.loads(current.raw), patch)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            meta = patched.get("metadata")
            if not isinstance(meta, dict):
                raise errors.bad_request("the patch removed metadata")
            wanted_rv = meta.get("resourceVersion")
            if wanted_rv and str(wanted_rv) != str(current.rv):
                raise errors.conflict(plural=rtype.plural, group=rtype.group, name=name)
            if meta.get("name") != name:
                raise errors.invalid(
                    kind=rtype.kind,
                    group=rtype.group,
                    name=name,
                    field="metadata.name",
                    why="Invalid value: field is immutable",
                )
            return self._replace(
                rtype, key, current, _normalise_body(rtype, patched), status=status
            )

    def _replace(
        self, rtype: ResourceType, key: Key, current: Stored, obj: Obj, *, status: bool
    ) -> Stored:
        old = current.obj
        if status:
            # /status changes the status stanza and nothing else.
            merged = json.loads(current.raw)
            if "status" in obj:
                merged["status"] = obj["status"]
            else:
                merged.pop("status", None)
            obj = merged
        else:
            if rtype.status_subresource:
                if "status" in old:
                    obj["status"] = json.loads(encode(old["status"]))
                else:
                    obj.pop("status", None)
            meta, old_meta = obj["metadata"], old["metadata"]
            for kept in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
                else:
                    meta.pop(kept, None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise errors.invalid(
                        kind=rtype.kind,
                        group=rtype.group,
                        name=key[1],
                        field="metadata.finalizers",
                        why="Forbidden: no new finalizers can be added if the object is being "
                        "deleted",
                    )
        if rtype.custom and rtype.schema is not None:
            obj = prune_and_validate(rtype, obj)
        if _spec_of(obj) != _spec_of(old):
            obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        obj["metadata"]["resourceVersion"] = str(current.rv)
        if obj == old:
            return current
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            return self._commit(rtype, key, None, event="DELETED", previous=current, final=obj)
        return self._commit(rtype, key, obj, event="MODIFIED", previous=current)

    def delete(
        self, rtype: ResourceType, namespace: str, name: str, options: Obj | None = None
    ) -> tuple[Stored, bool]:
        """DELETE; returns the object and whether it is gone (False: finalizers hold it)."""
        with self.cond:
            key = (namespace if rtype.namespaced else "", name)
            current = self._table(rtype).get(key)
            if current is None:
                raise errors.not_found(plural=rtype.plural, group=rtype.group, name=name)
            preconditions = (options or {}).get("preconditions") or {}
            if preconditions.get("uid") and preconditions["uid"] != current.obj["metadata"]["uid"]:
                raise errors.conflict(
                    plural=rtype.plural,
                    group=rtype.group,
                    name=name,
                    why=f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {current.obj['metadata']['uid']}",
                )
            wanted_rv = preconditions.get("resourceVersion")
            if wanted_rv and str(wanted_rv) != str(current.rv):
                raise errors.conflict(
                    plural=rtype.plural,
                    group=rtype.group,
                    name=name,
                    why=f"Precondition failed: ResourceVersion in precondition: {wanted_rv}, "
                    f"ResourceVersion in object meta: {current.rv}",
                )
            obj = json.loads(current.raw)
            meta = obj["metadata"]
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return current, False
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                return self._commit(rtype, key, obj, event="MODIFIED", previous=current), False
            if _type_key(rtype) == _type_key(self._namespace_type):
                self._delete_namespace_contents(name)
            return self._commit(rtype, key, None, event="DELETED", previous=None, final=obj), True

    def _delete_namespace_contents(self, namespace: str) -> None:
        """Namespace deletion removes what lives in it (kube does this in a controller)."""
        for table_key, table in list(self._objects.items()):
            rtype = self._types[table_key]
            for key in [k for k in table if k[0] == namespace]:
                final = json.loads(table[key].raw)
                self._commit(rtype, key, None, event="DELETED", previous=None, final=final)

    # ---------------------------------------------------------------- history

    def snapshot(self, rtype: ResourceType) -> tuple[int, list[Stored]]:
        """The current objects of a type and the resourceVersion they are current at."""
        with self.cond:
            return self._rv, list(self._table(rtype).values())

    def events_after(
        self, rv: int, *, wait: float, still_wanted: Callable[[], bool]
    ) -> tuple[list[Event], int, int]:
        """Events newer than ``rv`` (waiting up to ``wait`` s for one), the floor, the current RV.

        The caller checks ``rv < floor`` for 410; ``still_wanted`` ends the wait early (server
        stopping, watches dropped or expired).
        """
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                if rv < self._floor:
                    return [], self._floor, self._rv
                start = bisect.bisect_right(self._history, rv, key=_event_rv)
                if start < len(self._history):
                    return self._history[start:], self._floor, self._rv
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not still_wanted():
                    return [], self._floor, self._rv
                self.cond.wait(remaining)

    def compact(self, rv: int | None = None, *, everything: bool = False) -> int:
        """Forget history up to ``rv`` (default: all of it); watches from before it get 410.

        ``everything`` also advances the resourceVersion past every one a client may hold, so
        any resume (even from the latest list) is 410 and clients must relist.
        """
        with self.cond:
            if everything:
                self._rv += 1
            upto = self._rv if rv is None else min(rv, self._rv)
            cut = bisect.bisect_right(self._history, upto, key=_event_rv)
            del self._history[:cut]
            self._floor = max(self._floor, upto)
            self.cond.notify_all()
            return self._floor

    def wake_watchers(self, *, expire: bool = False, drop: bool = False) -> None:
        with self.cond:
            if expire:
                self.watch_expire_epoch += 1
            if drop:
                self.watch_drop_epoch += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def reopen(self) -> None:
        with self.cond:
            self.closed = False

    def counts(self) -> dict[str, int]:
        """Objects per ``plural[.group]``, for benchmarks and debugging."""
        with self.cond:
            return {
                (f"{plural}.{group}" if group else plural): len(table)
                for (group, plural), table in self._objects.items()
            }

    def history_length(self) -> int:
        with self.cond:
            return len(self._history)


def _event_rv(event: Event) -> int:
    return event.rv


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _normalise_body(rtype: ResourceType, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    kind = body.get("kind")
    if kind and kind != rtype.kind:
        raise errors.bad_request(
            f"the body is a {kind}, but this endpoint serves {rtype.kind} ({rtype.api_version})"
        )
    api_version = body.get("apiVersion")
    if api_version and api_version != rtype.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rtype.api_version})"
        )
    obj = dict(body)
    obj["kind"] = rtype.kind
    obj["apiVersion"] = rtype.api_version
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    obj["metadata"] = dict(meta)
    for drop in ("selfLink", "managedFields"):
        obj["metadata"].pop(drop, None)
    return obj


def _validate_name(rtype: ResourceType, name: str) -> None:
    if len(name) > 253 or not _NAME_RE.match(name):
        raise errors.invalid(
            kind=rtype.kind,
            group=rtype.group,
            name=name,
            field="metadata.name",
            why=f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
            "case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character",
        )


def _patcher(rtype: ResourceType, content_type: str) -> Callable[[Any, Any], Any]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == MERGE_PATCH:
        return merge_patch
    if media == JSON_PATCH:
        return json_patch
    if media == STRATEGIC_MERGE_PATCH and not rtype.custom:
        return strategic_merge_patch
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE_PATCH}" + ("" if rtype.custom else f", {STRATEGIC_MERGE_PATCH}"),
    )


def _encode_continue(rv: int, after: Key) -> str:
    raw = json.dumps({"rv": rv, "ns": after[0], "name": after[1]}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["ns"]), str(data["name"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc


def iter_matching(
    items: Iterable[Stored], *, namespace: str | None, labels: LabelSelector, fields: FieldSelector
) -> Iterable[Stored]:
    for stored in items:
        meta = stored.obj["metadata"]
        if namespace is not None and meta.get("namespace", "") != namespace:
            continue
        if not labels.empty and not labels.matches(stored.labels):
            continue
        if not fields.empty and not fields.matches(stored.obj):
            continue
        yield stored
