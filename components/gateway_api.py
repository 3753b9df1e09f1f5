"""Gateway API CRDs: the pinned release bundle's objects, applied as typed resources so a preview shows each one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Other kinds a bundle carries (from v1.5 the safe-upgrades policy and its binding), as typed resources. Their type
# tokens equal those of a CustomResource of the same apiVersion/kind: stacks that made them generically keep them.
_TYPED: dict[tuple[str, str], Any] = {
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"):
        k8s.admissionregistration.v1.ValidatingAdmissionPolicy,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"):
        k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding,
}


@dataclass
class GatewayApiArgs:
    # The bundle's objects in file order (model.gateway_api.load_bundle); empty when the cluster has them already.
    objects: list[dict[str, Any]]


class GatewayApiCrds(pulumi.ComponentResource):
    """Installs the bundle's CRDs and whatever else it carries."""

    resources: list[pulumi.CustomResource]

    def __init__(self, name: str, args: GatewayApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:gatewayapi:GatewayApiCrds", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.resources = []
        for doc in args.objects:
            resource_name = f"{name}-{doc['metadata']['name']}"
            if doc["kind"] == "CustomResourceDefinition":
                self.resources.append(k8s.apiextensions.v1.CustomResourceDefinition(
                    resource_name, metadata=doc["metadata"], spec=doc["spec"], opts=child))
                continue
            # The policy and its binding share one name: the kind tells them apart.
            resource_name = f"{resource_name}-{doc['kind'].lower()}"
            typed = _TYPED.get((doc["apiVersion"], doc["kind"]))
            if typed is not None:
                self.resources.append(typed(resource_name, metadata=doc["metadata"], spec=doc["spec"], opts=child))
            else:
                extra = {key: value for key, value in doc.items() if key not in ("apiVersion", "kind", "metadata")}
                self.resources.append(k8s.apiextensions.CustomResource(
                    resource_name, api_version=doc["apiVersion"], kind=doc["kind"], metadata=doc["metadata"],
                    opts=child, **extra))
        self.register_outputs({"installed": [r.urn for r in self.resources]})
