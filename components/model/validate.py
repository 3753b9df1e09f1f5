"""The one entry to a checked config: every section, then the rules that span sections and need the topology."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.model import catalog
from components.model.config import ConfigError, StackConfig, read_sections
from components.model.topology import resolve


def parse_config(raw: Mapping[str, Any]) -> StackConfig:
    """Build the typed config from plain data (the `ambient-mesh:*` objects of a stack file), or raise ConfigError."""
    config = read_sections(raw)
    _check_together(config)
    return config


def _check_together(config: StackConfig) -> None:
    """Rules that span sections: each still names one key."""
    if config.sidecar.enabled and config.sidecar.namespace == config.app.namespace:
        raise ConfigError("sidecar.namespace", config.sidecar.namespace,
                          f"a namespace other than app.namespace ({config.app.namespace}): one namespace never "
                          "carries both istio.io/dataplane-mode=ambient and istio-injection=enabled")
    for name in config.waypoint.services:
        if name not in catalog.BOOKINFO_SERVICES:
            raise ConfigError("waypoint.services", name, "Bookinfo services: " + ", ".join(catalog.BOOKINFO_SERVICES))
    if config.security.l7_clients and not config.waypoint.covers(catalog.PRODUCTPAGE):
        raise ConfigError("security.l7Clients", list(config.security.l7_clients),
                          "an empty list unless a waypoint serves productpage (waypoint.mode namespace, or services "
                          "with productpage): L7 rules are enforced only by a waypoint")
    for key, identities in (("security.productpageClients", config.security.productpage_clients),
                            ("security.l7Clients", config.security.l7_clients)):
        for identity in identities:
            resolve(identity, config, key)
