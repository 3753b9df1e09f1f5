"""The one entry to a checked config: every section, then the rules that span sections and need the topology."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.model import catalog
from components.model.charts import CHARTS
from components.model.config import ConfigError, StackConfig, read_sections
from components.model.gateway_api import bundle
from components.model.topology import resolve


def parse_config(raw: Mapping[str, Any]) -> StackConfig:
    """Build the typed config from plain data (the `ambient-mesh:*` objects of a stack file), or raise ConfigError."""
    config = read_sections(raw)
    _check_together(config)
    _check_sources(config)
    return config


# Services and ServiceAccounts the stack creates in the app namespace (a waypoint's own must not collide).
APP_NAMES = frozenset({*catalog.BOOKINFO_SERVICES, *map(catalog.bookinfo_account, catalog.BOOKINFO_SERVICES),
                       *catalog.ALL_CLIENT_NAMES, catalog.GATEWAY_API_INGRESS_DEPLOYMENT,
                       f"{catalog.BOOKINFO_GATEWAY}-nodeport"})


def _check_sources(config: StackConfig) -> None:
    """What the stack reads from disk is there and is what it should be, before any resource."""
    istio = config.istio
    if istio.local_charts:
        needed = [c for key, c in CHARTS.items() if key != "ingress-gateway" or config.app.ingress == "istio"]
        missing = [c.chart for c in needed if not (Path(istio.repository) / c.chart / "Chart.yaml").is_file()]
        if missing:
            raise ConfigError("istio.repository", istio.repository,
                              "a local directory with one sub-directory per chart ("
                              + ", ".join(c.chart for c in needed) + "), each with its Chart.yaml; missing: "
                              + ", ".join(missing))
    if config.gateway_api.install and config.gateway_api.local_source:
        bundle(config.gateway_api)  # a local file: read and checked now (a URL is fetched by the stack, checked then)


def _check_together(config: StackConfig) -> None:
    """Rules that span sections: each still names one key."""
    if config.sidecar.enabled and config.sidecar.namespace == config.app.namespace:
        raise ConfigError("sidecar.namespace", config.sidecar.namespace,
                          f"a namespace other than app.namespace ({config.app.namespace}): one namespace never "
                          "carries both istio.io/dataplane-mode=ambient and istio-injection=enabled")
    for name in config.waypoint.services:
        if name not in catalog.BOOKINFO_SERVICES:
            raise ConfigError("waypoint.services", name, "Bookinfo services: " + ", ".join(catalog.BOOKINFO_SERVICES))
    if config.waypoint.mode != "none" and config.waypoint.name in APP_NAMES:
        raise ConfigError("waypoint.name", config.waypoint.name,
                          "a name that no Service or ServiceAccount of the app namespace has (istiod names the "
                          "waypoint's own after it): not " + ", ".join(sorted(APP_NAMES)))
    for route in config.traffic.routes:
        # ztunnel (L4) cannot split HTTP by weight: only a waypoint serving the service reads the HTTPRoute.
        if not config.waypoint.covers(route.service):
            raise ConfigError(f"traffic.routes.{route.service}", dict(route.weights),
                              f"a route of a service a waypoint serves: waypoint.mode namespace, or services "
                              f"listing {route.service} (waypoint.mode is {config.waypoint.mode})")
    if config.security.l7_clients and not config.waypoint.covers(catalog.PRODUCTPAGE):
        raise ConfigError("security.l7Clients", list(config.security.l7_clients),
                          "an empty list unless a waypoint serves productpage (waypoint.mode namespace, or services "
                          "with productpage): L7 rules are enforced only by a waypoint")
    for key, identities in (("security.productpageClients", config.security.productpage_clients),
                            ("security.l7Clients", config.security.l7_clients)):
        for identity in identities:
            resolve(identity, config, key)
