"""The Kubernetes layer: client, typed views, watch caches, work queue, status writes, Events and
Lease leader election.

Nothing here knows whether it talks to a real kube-apiserver or the lab's embedded one; the
logic packages (``openelb.ipam``, ownership) never import this package.
"""
