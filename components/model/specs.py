"""The specs of the routing objects: Istio Gateway + VirtualService, Gateway API Gateway + HTTPRoute, waypoint."""

from __future__ import annotations

from typing import Any

from components.model import catalog

# The paths productpage serves: the page, its static assets, login/logout and the products API.
PRODUCTPAGE_ROUTES: tuple[tuple[str, str], ...] = (
    ("exact", "/productpage"),
    ("prefix", "/static"),
    ("exact", "/login"),
    ("exact", "/logout"),
    ("prefix", "/api/v1/products"),
)
_MATCH_TYPES = {"exact": "Exact", "prefix": "PathPrefix"}


def gateway_spec() -> dict[str, Any]:
    return {
        "selector": dict(catalog.INGRESS_SELECTOR),
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    }


def virtual_service_spec() -> dict[str, Any]:
    return {
        "hosts": ["*"],
        "gateways": [catalog.BOOKINFO_GATEWAY],
        "http": [{
            "match": [{"uri": {kind: path}} for kind, path in PRODUCTPAGE_ROUTES],
            "route": [{"destination": {"host": catalog.PRODUCTPAGE, "port": {"number": catalog.BOOKINFO_PORT}}}],
        }],
    }


def gateway_api_gateway_spec() -> dict[str, Any]:
    return {
        "gatewayClassName": catalog.GATEWAY_API_INGRESS_CLASS,
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                       "allowedRoutes": {"namespaces": {"from": "Same"}}}],
    }


def http_route_spec() -> dict[str, Any]:
    return {
        "parentRefs": [{"name": catalog.BOOKINFO_GATEWAY}],
        "rules": [{
            "matches": [{"path": {"type": _MATCH_TYPES[kind], "value": path}} for kind, path in PRODUCTPAGE_ROUTES],
            "backendRefs": [{"name": catalog.PRODUCTPAGE, "port": catalog.BOOKINFO_PORT}],
        }],
    }


def waypoint_spec() -> dict[str, Any]:
    return {
        "gatewayClassName": catalog.WAYPOINT_CLASS,
        "listeners": [{"name": "mesh", "port": catalog.HBONE_PORT, "protocol": "HBONE"}],
    }


def bookinfo_image(registry: str, service: str, version: str, tag: str) -> str:
    return f"{registry}/examples-bookinfo-{service}-{version}:{tag}"


def scratch_volume_name(path: str) -> str:
    return "scratch" + path.replace("/", "-").rstrip("-")
