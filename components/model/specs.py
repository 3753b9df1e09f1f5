"""The specs of the routing objects: Istio Gateway + VirtualService, Gateway API Gateway + HTTPRoute, waypoint."""

from __future__ import annotations

from typing import Any

from components.model import catalog
from components.model.config import Route

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


def version_service_spec(service: str, version: str) -> dict[str, Any]:
    """One version's Service, as Bookinfo's bookinfo-versions.yaml: the service's pods of that version only."""
    return {"selector": {"app": service, "version": version},
            "ports": [{"name": "http", "port": catalog.BOOKINFO_PORT}]}


def traffic_route_spec(route: Route) -> dict[str, Any]:
    """Istio's getting-started HTTPRoute: the Service itself as parent (the waypoint serving it applies the route),
    each version's Service a weighted backend."""
    return {
        "parentRefs": [{"group": "", "kind": "Service", "name": route.service, "port": catalog.BOOKINFO_PORT}],
        "rules": [{"backendRefs": [{"name": route.version_service(version), "port": catalog.BOOKINFO_PORT,
                                    "weight": weight} for version, weight in route.weights]}],
    }


def bookinfo_image(registry: str, service: str, version: str, tag: str) -> str:
    return f"{registry}/examples-bookinfo-{service}-{version}:{tag}"


def scratch_volume_name(path: str) -> str:
    return "scratch" + path.replace("/", "-").rstrip("-")
