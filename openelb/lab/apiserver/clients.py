"""A ``kubernetes`` client configured for an embedded apiserver, without a kubeconfig file."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def lab_api_client(url: str) -> ApiClient:
    """An ``ApiClient`` talking plain HTTP to ``url`` (the client's default retry policy)."""
    from kubernetes.client import ApiClient, Configuration

    configuration = Configuration(host=url)
    configuration.api_key = {"BearerToken": "openelb-lab"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return ApiClient(configuration)
