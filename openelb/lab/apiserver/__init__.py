"""The embedded apiserver: a stateful, stdlib-only Kubernetes API server for tests and the lab.

No kube-apiserver can run on the project's machines, so this package serves the resources
openelb uses over the real REST + watch protocol, and everything else talks to it through the
real ``kubernetes`` client. Its rules (resourceVersions, watches, conflicts, status subresources,
selectors, finalizers, fault injection) are pinned by ``tests/lab/test_apiserver_*.py``.

Modules: ``server`` (lifecycle, kubeconfig, faults API), ``http`` (routing and streams),
``store`` (objects, resourceVersion, history), ``watching``, ``selectors``, ``patches``,
``schema`` (CRD pruning), ``resources`` (served types, CRD loading), ``defaults``, ``faults``,
``errors``.
"""

from openelb.lab.apiserver.clients import lab_api_client
from openelb.lab.apiserver.errors import ApiError
from openelb.lab.apiserver.resources import DEFAULT_CRD_DIR, CrdError, ResourceType
from openelb.lab.apiserver.server import DEFAULT_HISTORY_LIMIT, ApiServer

__all__ = [
    "DEFAULT_CRD_DIR",
    "DEFAULT_HISTORY_LIMIT",
    "ApiError",
    "ApiServer",
    "CrdError",
    "ResourceType",
    "lab_api_client",
]
