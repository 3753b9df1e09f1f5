"""The waypoint proxy (L7) and the labels that send traffic through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import WaypointConfig

GATEWAY_API = "gateway.networking.k8s.io/v1"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
# Pulumi waits for this condition: istiod has deployed the waypoint and it serves.
WAIT_PROGRAMMED = {"pulumi.com/waitFor": "condition=Programmed"}


def waypoint_spec() -> dict[str, Any]:
    return {
        "gatewayClassName": "istio-waypoint",
        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
    }


@dataclass
class WaypointArgs:
    config: WaypointConfig
    namespace: pulumi.Input[str]
    # The Gateway API CRDs and istiod (which deploys the waypoint).
    prerequisites: list[pulumi.Resource]
    provider: k8s.Provider
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
            api_version=GATEWAY_API,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=config.name, namespace=args.namespace,
                # Serves traffic addressed to Services (istioctl waypoint apply's default).
                labels={"istio.io/waypoint-for": "service"},
                annotations=WAIT_PROGRAMMED),
            spec=waypoint_spec(),
            # A Gateway before its CRD is "no matches for kind"; without istiod nobody deploys it.
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=args.prerequisites),
        )
        # Labelling before the waypoint serves sends traffic to a proxy that is not there yet.
        after_waypoint = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.gateway])
        label = {USE_WAYPOINT_LABEL: config.name}
        force = {"pulumi.com/patchForce": "true"}
        self.enrolments = []
        if config.mode == "namespace":
            self.enrolments.append(k8s.core.v1.NamespacePatch(
                f"{name}-namespace-label",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(name=args.namespace, labels=label, annotations=force),
                opts=after_waypoint))
        for service in config.services:
            self.enrolments.append(k8s.core.v1.ServicePatch(
                f"{name}-{service}-label",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(name=args.services[service], namespace=args.namespace,
                                                         labels=label,
                                                         annotations=force),
                opts=after_waypoint))
        self.register_outputs({"name": config.name})
