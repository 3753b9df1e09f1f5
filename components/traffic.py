"""Traffic management: a service's requests split by version, applied by the waypoint that serves the service."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.model import catalog
from components.model.config import TrafficConfig
from components.model.specs import traffic_route_spec, version_service_spec


@dataclass
class TrafficRoutesArgs:
    config: TrafficConfig
    namespace: pulumi.Input[str]
    # The Gateway API CRDs: an HTTPRoute before its CRD is "no matches for kind".
    crds: list[pulumi.Resource]


class TrafficRoutes(pulumi.ComponentResource):
    routes: dict[str, k8s.apiextensions.CustomResource]
    version_services: dict[str, k8s.core.v1.Service]

    def __init__(self, name: str, args: TrafficRoutesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:traffic:TrafficRoutes", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.routes, self.version_services = {}, {}
        # Bookinfo's bookinfo-versions.yaml, as the guide applies it: a Service for every version of every service.
        for service in catalog.BOOKINFO:
            for version in service.versions:
                spec = version_service_spec(service.name, version)
                self.version_services[f"{service.name}-{version}"] = k8s.core.v1.Service(
                    f"{name}-{service.name}-{version}-service",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{service.name}-{version}", namespace=args.namespace,
                                                        labels={"app": service.name, "version": version}),
                    spec=k8s.core.v1.ServiceSpecArgs(
                        selector=spec["selector"], ports=[k8s.core.v1.ServicePortArgs(**p) for p in spec["ports"]]),
                    opts=child)
        for route in args.config.routes:
            self.routes[route.service] = k8s.apiextensions.CustomResource(
                f"{name}-{route.service}-route",
                api_version=catalog.GATEWAY_API,
                kind="HTTPRoute",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=route.service, namespace=args.namespace),
                spec=traffic_route_spec(route),
                # An HTTPRoute before its CRD is "no matches for kind"; its backends are the version Services.
                opts=pulumi.ResourceOptions(parent=self, depends_on=args.crds))
        self.register_outputs({"routes": [route.service for route in args.config.routes]})
