"""Embedded apiserver contract: injected faults, stop/restart, and the process form."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from openelb.lab.apiserver import ApiServer, lab_api_client


def _no_retries(server: ApiServer) -> ApiClient:
    """A client whose urllib3 layer does not retry, so each fault is seen once."""
    configuration = client.Configuration(host=server.url)
    configuration.retries = False
    return ApiClient(configuration)


def _cm(name: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))


def test_fail_requests_answers_500_with_a_status_then_recovers(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    apiserver.fail_requests(2, status=500)
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            v1.list_namespaced_config_map("default")
        assert info.value.status == 500
        assert json.loads(info.value.body)["kind"] == "Status"
    assert v1.list_namespaced_config_map("default").items == []
    assert apiserver.faults.injected == 2


def test_429_carries_retry_after_and_the_default_client_honours_it(apiserver: ApiServer) -> None:
    strict = client.CoreV1Api(_no_retries(apiserver))
    apiserver.fail_requests(1, status=429, retry_after=1)
    with pytest.raises(ApiException) as info:
        strict.list_namespaced_config_map("default")
    assert info.value.status == 429
    assert info.value.headers["Retry-After"] == "1"
    # The client's default urllib3 policy retries a 429 after Retry-After by itself.
    default = client.CoreV1Api(lab_api_client(apiserver.url))
    apiserver.fail_requests(1, status=429, retry_after=0)
    assert default.list_namespaced_config_map("default").items == []
    assert apiserver.faults.injected == 2


def test_faults_can_target_one_path_and_method(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    apiserver.fail_requests(1, status=500, path_contains="/configmaps", methods=["POST"])
    v1.list_namespaced_config_map("default")
    v1.list_namespaced_service("default")
    with pytest.raises(ApiException):
        v1.create_namespaced_config_map("default", _cm("a"))
    v1.create_namespaced_config_map("default", _cm("a"))


def test_reset_connections_fails_the_request_without_an_answer(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    apiserver.reset_connections(1)
    with pytest.raises(urllib3.exceptions.HTTPError):
        v1.list_namespaced_config_map("default")
    assert v1.list_namespaced_config_map("default").items == []


def test_hang_requests_trips_the_client_timeout(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    apiserver.hang_requests(1, seconds=5)
    with pytest.raises(urllib3.exceptions.HTTPError):
        v1.list_namespaced_config_map("default", _request_timeout=0.3)
    apiserver.clear_faults()
    assert v1.list_namespaced_config_map("default").items == []


def test_stop_refuses_connections_and_restart_keeps_state_and_port(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    v1.create_namespaced_config_map("default", _cm("kept"))
    port, rv = apiserver.port, apiserver.resource_version
    apiserver.stop()
    with pytest.raises(urllib3.exceptions.HTTPError):
        v1.list_namespaced_config_map("default", _request_timeout=2)
    apiserver.start()
    assert apiserver.port == port
    listed = v1.list_namespaced_config_map("default")
    assert [c.metadata.name for c in listed.items] == ["kept"]
    assert int(listed.metadata.resource_version) == rv
    created = v1.create_namespaced_config_map("default", _cm("after"))
    assert int(created.metadata.resource_version) == rv + 1


def test_stop_cuts_open_watches_and_they_resume_after_restart(apiserver: ApiServer) -> None:
    api = _no_retries(apiserver)
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    outcome: list[str] = []

    def consume() -> None:
        try:
            for _ in watch.Watch().stream(
                v1.list_namespaced_config_map, "default", resource_version=rv
            ):
                pass
            outcome.append("ended")
        except Exception as exc:  # noqa: BLE001 - record whatever the client raises
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.3)
    apiserver.restart()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome and outcome[0] != "ended"
    # Resuming from the same RV after the restart replays what happened meanwhile.
    v1.create_namespaced_config_map("default", _cm("new"))
    w = watch.Watch()
    event = next(w.stream(v1.list_namespaced_config_map, "default", resource_version=rv))
    assert (event["type"], event["object"].metadata.name) == ("ADDED", "new")
    w.stop()


def test_drop_watches_cuts_streams_mid_flight(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    response = v1.list_namespaced_config_map("default", watch=True, _preload_content=False)
    time.sleep(0.2)
    assert apiserver.drop_watches() >= 1
    with pytest.raises(urllib3.exceptions.HTTPError):
        response.read()
    assert v1.list_namespaced_config_map("default").items == []


def test_kubeconfig_loads_with_the_official_loader(apiserver: ApiServer, kubeconfig: Path) -> None:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    assert api.configuration.host == apiserver.url
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_cli_runs_the_server_as_a_process_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "openelb.cli", "lab", "apiserver", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving http://127.0.0.1:" in first, first
        proc.stdout.readline()  # kubeconfig written
        api = config.new_client_from_config(config_file=str(kubeconfig))
        v1 = client.CoreV1Api(api)
        v1.create_namespaced_config_map("default", _cm("x"))
        custom = client.CustomObjectsApi(api)
        assert (
            custom.list_cluster_custom_object("network.kubesphere.io", "v1alpha2", "eips")["items"]
            == []
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_outage_refuses_connections_then_serves_the_same_state(apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(_no_retries(apiserver))
    v1.create_namespaced_config_map("default", _cm("kept"))
    resumed = apiserver.outage(0.5)
    with pytest.raises(urllib3.exceptions.HTTPError):
        v1.list_namespaced_config_map("default", _request_timeout=1)
    resumed.join(timeout=5)
    assert [c.metadata.name for c in v1.list_namespaced_config_map("default").items] == ["kept"]


def test_a_stop_during_an_outage_cancels_the_restart(apiserver: ApiServer) -> None:
    resumed = apiserver.outage(0.2)
    apiserver.stop()
    resumed.join(timeout=5)
    assert not apiserver.running


def test_deletecollection_by_label(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        cm = _cm(name)
        cm.metadata.labels = {"team": team}
        v1.create_namespaced_config_map("default", cm)
    v1.delete_collection_namespaced_config_map("default", label_selector="team=x")
    assert [c.metadata.name for c in v1.list_namespaced_config_map("default").items] == ["c"]
