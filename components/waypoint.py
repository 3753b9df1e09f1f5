"""The waypoint proxy (L7) and the labels that send traffic through it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.model import catalog
from components.model.config import WaypointConfig
from components.model.specs import waypoint_spec


@dataclass
class WaypointArgs:
    config: WaypointConfig
    namespace: pulumi.Input[str]
    # The Gateway API CRDs and istiod (which deploys the waypoint).
    prerequisites: list[pulumi.Resource]
    # Names of the Services the stack creates, as outputs: a label patch must follow its Service.
    services: dict[str, pulumi.Output[str]]


class Waypoint(pulumi.ComponentResource):
    gateway: k8s.apiextensions.CustomResource
    enrolments: list[pulumi.CustomResource]

    def __init__(self, name: str, args: WaypointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:waypoint:Waypoint", name, None, opts)
        config = args.config
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version=catalog.GATEWAY_API,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=config.name, namespace=args.namespace,
                # Serves traffic addressed to Services (istioctl waypoint apply's default).
                labels={"istio.io/waypoint-for": "service"},
                annotations=catalog.WAIT_PROGRAMMED),
            spec=waypoint_spec(),
            # A Gateway before its CRD is "no matches for kind"; without istiod nobody deploys it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.prerequisites),
        )
        # Labelling before the waypoint serves sends traffic to a proxy that is not there yet.
        after_waypoint = pulumi.ResourceOptions(parent=self, depends_on=[self.gateway])
        label = {catalog.USE_WAYPOINT_LABEL: config.name}
        self.enrolments = []
        if config.mode == "namespace":
            self.enrolments.append(k8s.core.v1.NamespacePatch(
                f"{name}-namespace-label",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(name=args.namespace, labels=label,
                                                         annotations=catalog.PATCH_FORCE),
                opts=after_waypoint))
        for service in config.services:
            self.enrolments.append(k8s.core.v1.ServicePatch(
                f"{name}-{service}-label",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(name=args.services[service], namespace=args.namespace,
                                                         labels=label, annotations=catalog.PATCH_FORCE),
                opts=after_waypoint))
        self.register_outputs({"name": config.name})
