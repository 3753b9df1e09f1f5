"""Zero trust: the mesh-wide PeerAuthentication and the app namespace's AuthorizationPolicies (model/policy.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.model.catalog import ISTIO_NAMESPACE, ISTIO_SECURITY_API
from components.model.policy import ALLOW_NOTHING


@dataclass
class MeshSecurityArgs:
    peer_authentication: dict[str, Any]
    # AuthorizationPolicies of the app namespace, by name.
    policies: dict[str, dict[str, Any]]
    namespace: pulumi.Input[str]
    # IstioAmbient.config_api: Istio's CRDs and validation webhook.
    istio_config_api: list[pulumi.Resource]
    # Other namespaces the stack runs workloads in (the sidecar namespace) that deny whatever no policy allows.
    deny_by_default: list[pulumi.Input[str]] = field(default_factory=list)


class MeshSecurity(pulumi.ComponentResource):
    """PeerAuthentication in istio-system, AuthorizationPolicies in the app namespace."""

    policies: list[k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: MeshSecurityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:security:MeshSecurity", name, None, opts)
        # Policies need Istio's CRDs and validation webhook first (IstioAmbient.config_api).
        after_istio = pulumi.ResourceOptions(parent=self, depends_on=args.istio_config_api)

        def policy(suffix: str, kind: str, object_name: str, namespace: pulumi.Input[str],
                   spec: dict[str, Any]) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                f"{name}-{suffix}", api_version=ISTIO_SECURITY_API, kind=kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=namespace),
                spec=spec, opts=after_istio)

        self.policies = [policy("mtls", "PeerAuthentication", "default", ISTIO_NAMESPACE, args.peer_authentication)]
        self.policies += [policy(name_, "AuthorizationPolicy", name_, args.namespace, spec)
                          for name_, spec in args.policies.items()]
        self.policies += [policy(f"{ALLOW_NOTHING}-{index}", "AuthorizationPolicy", ALLOW_NOTHING, other, {})
                          for index, other in enumerate(args.deny_by_default)]
        self.register_outputs({"policies": [p.urn for p in self.policies]})
