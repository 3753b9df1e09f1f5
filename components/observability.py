"""Observability: Istio's add-ons (Prometheus, Kiali, Grafana) as the objects its docs apply, each waiting only for
what it needs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# The kinds Istio's add-on files carry, as typed resources (their top-level fields as keyword arguments).
_TYPED: dict[tuple[str, str], Any] = {
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


@dataclass
class ObservabilityArgs:
    # Each add-on's objects in file order (components/model/addons.py: addon_objects).
    addons: dict[str, list[dict[str, Any]]]
    # istio-system, where Istio's add-on files put everything.
    namespace: pulumi.Resource
    # What the workloads wait for besides their ServiceAccounts: their images in the nodes.
    wait_for: list[pulumi.Resource] = field(default_factory=list)


class Observability(pulumi.ComponentResource):
    resources: dict[str, list[pulumi.CustomResource]]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:observability:Observability", name, None, opts)
        self.resources = {}
        for addon, documents in args.addons.items():
            made: list[pulumi.CustomResource] = []
            accounts: list[pulumi.Resource] = []
            for doc in documents:
                fields = {_snake(k): v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
                workload = doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
                # A namespaced object before istio-system exists is refused; a workload before its ServiceAccount
                # gets no pods until it exists, and before its images are in the nodes it would pull them.
                needs = [args.namespace, *(accounts + args.wait_for if workload else [])]
                options = pulumi.ResourceOptions(parent=self, depends_on=needs)
                child = f"{name}-{addon}-{doc['kind'].lower()}-{doc['metadata']['name']}"
                typed = _TYPED.get((doc["apiVersion"], doc["kind"]))
                resource = (typed(child, metadata=doc["metadata"], opts=options, **fields) if typed is not None else
                            k8s.apiextensions.CustomResource(child, api_version=doc["apiVersion"], kind=doc["kind"],
                                                             metadata=doc["metadata"], spec=doc.get("spec"),
                                                             opts=options))
                if doc["kind"] == "ServiceAccount":
                    accounts.append(resource)
                made.append(resource)
            self.resources[addon] = made
        self.register_outputs({"addons": list(args.addons)})
