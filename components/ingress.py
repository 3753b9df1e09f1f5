"""Productpage exposed through the ingress gateway: an Istio Gateway and a VirtualService."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.bookinfo import BOOKINFO_PORT
from components.config import StackConfig
from components.istio import INGRESS_RELEASE, INGRESS_SELECTOR, ISTIO_NAMESPACE

GATEWAY_NAME = "bookinfo-gateway"
# Istio deploys a Gateway API gateway as <gateway name>-<class name>: Deployment, Service and ServiceAccount.
GATEWAY_API_DEPLOYMENT = f"{GATEWAY_NAME}-istio"
# The paths productpage serves: the page, its static assets, login/logout and the products API.
PRODUCTPAGE_ROUTES: tuple[tuple[str, str], ...] = (
    ("exact", "/productpage"),
    ("prefix", "/static"),
    ("exact", "/login"),
    ("exact", "/logout"),
    ("prefix", "/api/v1/products"),
)


def ingress_gateway(config: StackConfig) -> tuple[str, str] | None:
    """(namespace, name) of the ingress gateway's Service and ServiceAccount (the same name), None without one."""
    if config.app.ingress == "istio":
        return ISTIO_NAMESPACE, INGRESS_RELEASE
    if config.app.ingress == "gateway-api":
        return config.app.namespace, GATEWAY_API_DEPLOYMENT
    return None


def ingress_url(config: StackConfig) -> str | None:
    """productpage through the ingress from the user's machine: kind maps the NodePort to this host port; elsewhere
    the port-forward command in the try-it outputs serves the same port."""
    if ingress_gateway(config) is None:
        return None
    return f"http://localhost:{config.cluster.ingress_host_port}/productpage"


def gateway_spec() -> dict[str, Any]:
    return {
        "selector": dict(INGRESS_SELECTOR),
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    }


def virtual_service_spec() -> dict[str, Any]:
    return {
        "hosts": ["*"],
        "gateways": [GATEWAY_NAME],
        "http": [{
            "match": [{"uri": {kind: path}} for kind, path in PRODUCTPAGE_ROUTES],
            "route": [{"destination": {"host": "productpage", "port": {"number": BOOKINFO_PORT}}}],
        }],
    }


@dataclass
class BookinfoIngressArgs:
    namespace: pulumi.Input[str]
    istio_config_api: list[pulumi.Resource]
    provider: k8s.Provider


class BookinfoIngress(pulumi.ComponentResource):
    gateway: k8s.apiextensions.CustomResource
    virtual_service: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: BookinfoIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:ingress:BookinfoIngress", name, None, opts)
        # Before base's CRDs: "no matches for kind"; before istiod serves its webhook: 'failed calling webhook
        # "validation.istio.io"'.
        after_istio = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=args.istio_config_api)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GATEWAY_NAME, namespace=args.namespace),
            spec=gateway_spec(),
            opts=after_istio,
        )
        self.virtual_service = k8s.apiextensions.CustomResource(
            f"{name}-virtualservice",
            api_version="networking.istio.io/v1",
            kind="VirtualService",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="bookinfo", namespace=args.namespace),
            spec=virtual_service_spec(),
            opts=after_istio,
        )
        self.register_outputs({"gateway": GATEWAY_NAME})


# --- Gateway API variant ---------------------------------------------------------------------------------------

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
_MATCH_TYPES = {"exact": "Exact", "prefix": "PathPrefix"}


def gateway_api_gateway_spec() -> dict[str, Any]:
    return {
        "gatewayClassName": "istio",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                       "allowedRoutes": {"namespaces": {"from": "Same"}}}],
    }


def http_route_spec() -> dict[str, Any]:
    return {
        "parentRefs": [{"name": GATEWAY_NAME}],
        "rules": [{
            "matches": [{"path": {"type": _MATCH_TYPES[kind], "value": path}} for kind, path in PRODUCTPAGE_ROUTES],
            "backendRefs": [{"name": "productpage", "port": BOOKINFO_PORT}],
        }],
    }


@dataclass
class GatewayApiIngressArgs:
    namespace: pulumi.Input[str]
    # The Gateway API CRDs and istiod, which deploys the gateway for the Gateway resource.
    prerequisites: list[pulumi.Resource]
    node_port: int
    provider: k8s.Provider


class BookinfoGatewayApiIngress(pulumi.ComponentResource):
    """A Gateway API Gateway (class istio) + HTTPRoute, reachable on the same NodePort as the Istio ingress."""

    gateway: k8s.apiextensions.CustomResource
    route: k8s.apiextensions.CustomResource
    node_port_service: k8s.core.v1.Service

    def __init__(self, name: str, args: GatewayApiIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:ingress:BookinfoGatewayApiIngress", name, None, opts)
        after = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=args.prerequisites)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version=GATEWAY_API,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=GATEWAY_NAME, namespace=args.namespace,
                annotations={
                    # kind has no load balancer: a LoadBalancer Service would never get an address.
                    "networking.istio.io/service-type": "ClusterIP",
                    "pulumi.com/waitFor": "condition=Programmed",
                }),
            spec=gateway_api_gateway_spec(),
            opts=after,
        )
        self.route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version=GATEWAY_API,
            kind="HTTPRoute",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="bookinfo", namespace=args.namespace),
            spec=http_route_spec(),
            opts=after,
        )
        # Istio's generated Service cannot pin a nodePort; ours selects the same pods on the port kind maps.
        self.node_port_service = k8s.core.v1.Service(
            f"{name}-nodeport",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{GATEWAY_NAME}-nodeport", namespace=args.namespace),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="NodePort",
                selector={GATEWAY_NAME_LABEL: GATEWAY_NAME},
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port=80, node_port=args.node_port)],
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.register_outputs({"gateway": GATEWAY_NAME})
