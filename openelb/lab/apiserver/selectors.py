"""Label and field selectors, parsed once per request and matched per object.

Label selectors follow kube-apiserver's grammar: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k`` (exists) and ``!k`` (does not exist), joined by commas. Field
selectors support only ``metadata.name`` and ``metadata.namespace``; anything else is a 400, as
kube-apiserver answers for fields a resource does not index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openelb.lab.apiserver.errors import ApiError, bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_CMP_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str
    """One of ``in``, ``notin``, ``exists``, ``!``."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside a ``( ... )`` value set."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    for term in _split_terms(text):
        requirements.append(_parse_term(term, text))
    return LabelSelector(tuple(requirements))


def _parse_term(term: str, whole: str) -> Requirement:
    if m := _SET_RE.match(term):
        values = [v.strip() for v in m["values"].split(",")]
        if any(not _VALUE_RE.match(v) for v in values) or values == [""]:
            raise _bad_label(whole, term)
        return Requirement(m["key"], m["op"], frozenset(values))
    if m := _CMP_RE.match(term):
        op = "notin" if m["op"] == "!=" else "in"
        return Requirement(m["key"], op, frozenset([m["value"]]))
    if m := _EXISTS_RE.match(term):
        return Requirement(m["key"], "!" if m["neg"] else "exists")
    raise _bad_label(whole, term)


def _bad_label(whole: str, term: str) -> ApiError:
    return bad_request(f'unable to parse requirement: found {term.strip()!r} in "{whole}"')


_FIELDS = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()
    """(field path, equal?, value) triples."""

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        for path, equal, value in self.terms:
            actual = meta.get(path.split(".", 1)[1]) or ""
            if (actual == value) != equal:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.terms

    def exact_name(self) -> str | None:
        """The one name this selector pins, so a lookup can skip scanning."""
        for path, equal, value in self.terms:
            if path == "metadata.name" and equal:
                return value
        return None


def parse_field_selector(text: str | None) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    terms: list[tuple[str, bool, str]] = []
    for term in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(\S*)\s*$", term)
        if not m:
            raise bad_request(f'invalid field selector: "{text}": cannot parse {term!r}')
        path, op, value = m.groups()
        if path not in _FIELDS:
            raise bad_request(f'field label not supported: "{path}"')
        terms.append((path, op != "!=", value))
    return FieldSelector(tuple(terms))
