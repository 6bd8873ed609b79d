"""Embedded apiserver: the pure rules (selectors, patches, schema, CRD loading) and races."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from openelb.lab.apiserver import DEFAULT_CRD_DIR, ApiError, ApiServer, CrdError, lab_api_client
from openelb.lab.apiserver.patches import json_patch, merge_patch, strategic_merge_patch
from openelb.lab.apiserver.resources import load_crd_dir, types_from_crd
from openelb.lab.apiserver.selectors import parse_field_selector, parse_label_selector


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("", {}, True),
        ("a=1", {"a": "1"}, True),
        ("a=1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("example.com/x=y,b", {"example.com/x": "y", "b": "c"}, True),
        ("example.com/x=y,b", {"example.com/x": "y"}, False),
    ],
)
def test_label_selector_grammar(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is matches


@pytest.mark.parametrize("bad", ["a in b", "a=(", "=x", "a in ()", "a,,b"])
def test_malformed_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(bad)
    assert info.value.code == 400


def test_field_selector_rejects_unknown_fields() -> None:
    assert parse_field_selector("metadata.name=a").exact_name() == "a"
    with pytest.raises(ApiError) as info:
        parse_field_selector("status.phase=Running")
    assert info.value.code == 400


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # the input is not modified


def test_json_patch_operations_and_atomic_failure() -> None:
    doc: dict[str, Any] = {"a": {"b": [1, 2]}, "x": 1}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/x", "value": 2},
            {"op": "copy", "from": "/x", "path": "/y"},
            {"op": "move", "from": "/y", "path": "/a/z"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "test", "path": "/a/b", "value": [2, 3]},
            {"op": "add", "path": "/k~1s", "value": True},
        ],
    )
    assert out == {"a": {"b": [2, 3], "z": 2}, "x": 2, "k/s": True}
    with pytest.raises(ApiError) as info:
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    assert info.value.code == 422
    assert doc == {"a": {"b": [1, 2]}, "x": 1}


def test_strategic_merge_patch_merges_keyed_lists_and_directives() -> None:
    target = {
        "metadata": {"finalizers": ["a"]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X"}]},
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "$patch": "delete"}]
        },
    }
    out = strategic_merge_patch(target, patch)
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    removed = strategic_merge_patch(
        out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    )
    assert removed["metadata"]["finalizers"] == ["b"]


def test_the_shipped_eip_crd_loads(tmp_path: Path) -> None:
    (eip,) = load_crd_dir(DEFAULT_CRD_DIR)
    assert (eip.group, eip.version, eip.plural, eip.kind) == (
        "network.kubesphere.io",
        "v1alpha2",
        "eips",
        "Eip",
    )
    assert eip.status_subresource and not eip.namespaced and eip.custom
    with pytest.raises(CrdError):
        load_crd_dir(tmp_path / "missing")
    (tmp_path / "bad.yaml").write_text("kind: ConfigMap\napiVersion: v1\n")
    with pytest.raises(CrdError, match="not CustomResourceDefinition"):
        load_crd_dir(tmp_path)
    with pytest.raises(CrdError, match="missing field"):
        types_from_crd({"kind": "CustomResourceDefinition", "spec": {}})


def test_concurrent_read_modify_write_loses_no_update(kube_client: ApiClient) -> None:
    """Writers retry on 409; the final count equals the number of increments."""
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="n"), data={"n": "0"})
    )
    conflicts = []

    def bump(times: int) -> None:
        api = client.CoreV1Api(lab_api_client(kube_client.configuration.host))
        for _ in range(times):
            while True:
                cm = api.read_namespaced_config_map("n", "default")
                cm.data = {"n": str(int(cm.data["n"]) + 1)}
                try:
                    api.replace_namespaced_config_map("n", "default", cm)
                    break
                except ApiException as exc:
                    assert exc.status == 409
                    conflicts.append(1)

    threads = [threading.Thread(target=bump, args=(15,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert v1.read_namespaced_config_map("n", "default").data == {"n": "60"}


def test_status_put_with_a_stale_resource_version_is_409(kube_client: ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    group = ("network.kubesphere.io", "v1alpha2", "eips")
    eip = custom.create_cluster_custom_object(
        *group,
        {
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": {"name": "p"},
            "spec": {"address": "10.0.0.1"},
        },
    )
    custom.patch_cluster_custom_object(*group, "p", {"spec": {"disable": True}})
    eip["status"] = {"usage": 1}
    with pytest.raises(ApiException) as info:
        custom.replace_cluster_custom_object_status(*group, "p", eip)
    assert info.value.status == 409


def test_bad_json_and_wrong_kind_are_400(apiserver: ApiServer) -> None:
    import urllib3

    http = urllib3.PoolManager()
    url = f"{apiserver.url}/api/v1/namespaces/default/configmaps"
    bad = http.request("POST", url, body=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status == 400
    wrong = http.request(
        "POST",
        url,
        body=b'{"kind":"Service","apiVersion":"v1","metadata":{"name":"x"}}',
        headers={"Content-Type": "application/json"},
    )
    assert wrong.status == 400
    missing = http.request("GET", f"{apiserver.url}/apis/nope.io/v1/things")
    assert missing.status == 404
    discovery = http.request("GET", f"{apiserver.url}/apis/network.kubesphere.io/v1alpha2")
    assert discovery.status == 200
    names = {r["name"] for r in discovery.json()["resources"]}
    assert names == {"eips", "eips/status"}


def test_watch_of_one_object_by_field_selector(kube_client: ApiClient) -> None:
    from kubernetes import watch

    leases = client.CoordinationV1Api(kube_client)
    for name in ("a", "b"):
        leases.create_namespaced_lease(
            "default", client.V1Lease(metadata=client.V1ObjectMeta(name=name))
        )
    rv = leases.list_namespaced_lease("default").metadata.resource_version
    leases.patch_namespaced_lease("a", "default", {"spec": {"holderIdentity": "x"}})
    leases.patch_namespaced_lease("b", "default", {"spec": {"holderIdentity": "y"}})
    w = watch.Watch()
    event = next(
        w.stream(
            leases.list_namespaced_lease,
            "default",
            field_selector="metadata.name=b",
            resource_version=rv,
            timeout_seconds=5,
        )
    )
    w.stop()
    assert (event["type"], event["object"].spec.holder_identity) == ("MODIFIED", "y")
