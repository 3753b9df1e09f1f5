"""Productpage exposed through the ingress gateway: an Istio Gateway and a VirtualService."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.bookinfo import BOOKINFO_PORT
from components.istio import INGRESS_SELECTOR

GATEWAY_NAME = "bookinfo-gateway"
# The paths productpage serves: the page, its static assets, login/logout and the products API.
PRODUCTPAGE_ROUTES: tuple[tuple[str, str], ...] = (
    ("exact", "/productpage"),
    ("prefix", "/static"),
    ("exact", "/login"),
    ("exact", "/logout"),
    ("prefix", "/api/v1/products"),
)


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
