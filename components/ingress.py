"""Productpage exposed through an ingress: the Istio ingress gateway's Gateway + VirtualService, or a Gateway API
Gateway + HTTPRoute."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.model import catalog
from components.model.specs import gateway_api_gateway_spec, gateway_spec, http_route_spec, virtual_service_spec


@dataclass
class BookinfoIngressArgs:
    namespace: pulumi.Input[str]
    # IstioAmbient.config_api: Istio's CRDs and validation webhook.
    istio_config_api: list[pulumi.Resource]


class BookinfoIngress(pulumi.ComponentResource):
    gateway: k8s.apiextensions.CustomResource
    virtual_service: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: BookinfoIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:ingress:BookinfoIngress", name, None, opts)
        # The Gateway and VirtualService need Istio's CRDs and validation webhook (IstioAmbient.config_api).
        after_istio = pulumi.ResourceOptions(parent=self, depends_on=args.istio_config_api)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version=catalog.ISTIO_NETWORKING_API,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=catalog.BOOKINFO_GATEWAY, namespace=args.namespace),
            spec=gateway_spec(),
            opts=after_istio,
        )
        self.virtual_service = k8s.apiextensions.CustomResource(
            f"{name}-virtualservice",
            api_version=catalog.ISTIO_NETWORKING_API,
            kind="VirtualService",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=catalog.BOOKINFO_VIRTUAL_SERVICE, namespace=args.namespace),
            spec=virtual_service_spec(),
            opts=after_istio,
        )
        self.register_outputs({"gateway": catalog.BOOKINFO_GATEWAY})


@dataclass
class GatewayApiIngressArgs:
    namespace: pulumi.Input[str]
    # The Gateway API CRDs and istiod, which deploys the gateway for the Gateway resource.
    prerequisites: list[pulumi.Resource]
    node_port: int


class BookinfoGatewayApiIngress(pulumi.ComponentResource):
    """A Gateway API Gateway (class istio) + HTTPRoute, reachable on the same NodePort as the Istio ingress."""

    gateway: k8s.apiextensions.CustomResource
    route: k8s.apiextensions.CustomResource
    node_port_service: k8s.core.v1.Service

    def __init__(self, name: str, args: GatewayApiIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:ingress:BookinfoGatewayApiIngress", name, None, opts)
        # A Gateway before its CRD is "no matches for kind"; without istiod nobody deploys its proxy.
        after = pulumi.ResourceOptions(parent=self, depends_on=args.prerequisites)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version=catalog.GATEWAY_API,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=catalog.BOOKINFO_GATEWAY, namespace=args.namespace,
                annotations={**catalog.GATEWAY_SERVICE_TYPE, **catalog.WAIT_PROGRAMMED}),
            spec=gateway_api_gateway_spec(),
            opts=after,
        )
        self.route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version=catalog.GATEWAY_API,
            kind="HTTPRoute",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=catalog.BOOKINFO_ROUTE, namespace=args.namespace),
            spec=http_route_spec(),
            opts=after,
        )
        # Istio's generated Service cannot pin a nodePort; ours selects the same pods on the port kind maps.
        self.node_port_service = k8s.core.v1.Service(
            f"{name}-nodeport",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{catalog.BOOKINFO_GATEWAY}-nodeport", namespace=args.namespace),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="NodePort",
                selector={catalog.GATEWAY_NAME_LABEL: catalog.BOOKINFO_GATEWAY},
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port=80, node_port=args.node_port)],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"gateway": catalog.BOOKINFO_GATEWAY})
