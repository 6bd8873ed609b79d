"""The manifests under deploy/ are checked offline: no cluster exists here (ENV.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from openelb.cli import main

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _documents() if doc.get("kind") == kind]


def test_every_manifest_parses_and_names_its_kind() -> None:
    docs = _documents()
    assert docs
    for name, doc in docs:
        assert doc.get("apiVersion"), name
        assert doc.get("kind"), name


def test_kustomization_lists_existing_files() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / resource).is_file(), resource


def test_workloads_use_existing_service_accounts_in_one_namespace() -> None:
    accounts = {d["metadata"]["name"] for d in _by_kind("ServiceAccount")}
    workloads = _by_kind("Deployment") + _by_kind("DaemonSet")
    assert {w["kind"] for w in workloads} == {"Deployment", "DaemonSet"}
    for workload in workloads:
        assert workload["metadata"]["namespace"] == "openelb-system"
        spec = workload["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] in accounts
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_bindings_point_at_defined_roles_and_accounts() -> None:
    roles = {(d["kind"], d["metadata"]["name"]) for d in _by_kind("ClusterRole") + _by_kind("Role")}
    accounts = {d["metadata"]["name"] for d in _by_kind("ServiceAccount")}
    for binding in _by_kind("ClusterRoleBinding") + _by_kind("RoleBinding"):
        ref = binding["roleRef"]
        assert (ref["kind"], ref["name"]) in roles
        for subject in binding["subjects"]:
            assert subject["name"] in accounts


def test_speaker_runs_on_the_host_network_with_the_capabilities_it_needs() -> None:
    (speaker,) = _by_kind("DaemonSet")
    spec = speaker["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    (container,) = spec["containers"]
    caps = set(container["securityContext"]["capabilities"]["add"])
    assert {"NET_ADMIN", "NET_RAW", "BPF", "SYS_NICE"} <= caps
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/sys/fs/bpf" in mounts  # pinned program survives a speaker restart
    env = {e["name"] for e in container["env"]}
    assert "NODE_NAME" in env


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_container_commands_exist_in_the_cli(kind: str) -> None:
    (workload,) = _by_kind(kind)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    command = container["args"][0]
    assert command in main.commands
