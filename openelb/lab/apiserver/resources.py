"""The resource types the embedded apiserver serves, and CRD loading.

A resource type is what the URL names (group, version, plural) plus the few facts that change
the semantics: namespaced or not, whether ``/status`` is a subresource, whether an update must
carry a resourceVersion, what DELETE returns. Built-in types are listed here; custom resources
come from CustomResourceDefinition manifests (``deploy/crds/`` by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CRD_DIR = Path(__file__).resolve().parents[3] / "deploy" / "crds"
"""The repository's CRD manifests; the server loads them unless told otherwise."""


@dataclass(frozen=True)
class ResourceType:
    """One servable resource: where it lives in the URL space and how it behaves."""

    group: str
    """API group; "" for the core group served under ``/api``."""
    version: str
    plural: str
    kind: str
    namespaced: bool
    status_subresource: bool = False
    """``/status`` exists: the main endpoint ignores status, ``/status`` ignores the rest."""
    unconditional_update: bool = True
    """A PUT without ``metadata.resourceVersion`` is accepted (false for Leases and CRs: 422)."""
    create_on_update: bool = False
    """A PUT of a missing object creates it (Events do this in kube-apiserver)."""
    return_deleted_object: bool = False
    """DELETE answers with the object (Services, custom resources) instead of a Status."""
    custom: bool = False
    """A custom resource: JSON merge and JSON patch only, strategic merge is 415."""
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """The CRD's openAPIV3Schema, used to reject wrongly typed fields and prune unknown ones."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """``services`` or ``eips.network.kubesphere.io``: the name used in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        group="",
        version="v1",
        plural="services",
        kind="Service",
        namespaced=True,
        status_subresource=True,
        return_deleted_object=True,
    ),
    ResourceType(
        group="",
        version="v1",
        plural="nodes",
        kind="Node",
        namespaced=False,
        status_subresource=True,
    ),
    ResourceType(
        group="",
        version="v1",
        plural="namespaces",
        kind="Namespace",
        namespaced=False,
        status_subresource=True,
        return_deleted_object=True,
    ),
    ResourceType(
        group="",
        version="v1",
        plural="events",
        kind="Event",
        namespaced=True,
        create_on_update=True,
    ),
    ResourceType(group="", version="v1", plural="configmaps", kind="ConfigMap", namespaced=True),
    ResourceType(
        group="discovery.k8s.io",
        version="v1",
        plural="endpointslices",
        kind="EndpointSlice",
        namespaced=True,
    ),
    ResourceType(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        kind="Lease",
        namespaced=True,
        unconditional_update=False,
    ),
)


class CrdError(ValueError):
    """A CRD manifest cannot be served; the message names the file and the problem."""


def types_from_crd(crd: Mapping[str, Any], *, source: str = "<crd>") -> list[ResourceType]:
    """The served versions of one apiextensions.k8s.io/v1 CustomResourceDefinition."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise CrdError(f"{source}: kind is {crd.get('kind')!r}, not CustomResourceDefinition")
    try:
        spec = crd["spec"]
        group = spec["group"]
        names = spec["names"]
        plural, kind = names["plural"], names["kind"]
        scope = spec["scope"]
        versions = spec["versions"]
    except (KeyError, TypeError) as exc:
        raise CrdError(f"{source}: missing field {exc}") from exc
    if scope not in ("Namespaced", "Cluster"):
        raise CrdError(f"{source}: scope must be Namespaced or Cluster, not {scope!r}")
    served: list[ResourceType] = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        served.append(
            ResourceType(
                group=group,
                version=version["name"],
                plural=plural,
                kind=kind,
                namespaced=scope == "Namespaced",
                status_subresource="status" in subresources,
                unconditional_update=False,
                return_deleted_object=True,
                custom=True,
                schema=schema,
            )
        )
    return served


def load_crd_dir(directory: Path) -> list[ResourceType]:
    """Every CRD in the ``*.yaml``/``*.yml``/``*.json`` files of a directory."""
    import yaml  # type: ignore[import-untyped]

    if not directory.is_dir():
        raise CrdError(f"CRD directory {directory} does not exist")
    found: list[ResourceType] = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            documents: Iterable[Any] = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise CrdError(f"{path}: not valid YAML: {exc}") from exc
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise CrdError(f"{path}: a document is not a mapping")
            found.extend(types_from_crd(document, source=str(path)))
    return found
