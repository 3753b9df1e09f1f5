"""Workload identities: the ServiceAccounts the stack creates and their SPIFFE principals."""

from __future__ import annotations

from components.bookinfo import SERVICES, account_name
from components.clients import CLIENT_NAMES
from components.config import ConfigError, StackConfig
from components.ingress import ingress_gateway

TRUST_DOMAIN = "cluster.local"
SIDECAR_CLIENT = "sleep"


def services() -> tuple[str, ...]:
    return tuple(svc.name for svc in SERVICES)


def ingress_account(config: StackConfig) -> str | None:
    gateway = ingress_gateway(config)
    return "/".join(gateway) if gateway else None


def waypoint_account(config: StackConfig) -> str | None:
    # istiod runs the waypoint under a ServiceAccount named after its Gateway.
    return f"{config.app.namespace}/{config.waypoint.name}" if config.waypoint.mode != "none" else None


def service_accounts(config: StackConfig) -> list[str]:
    """Every ServiceAccount (namespace/name) whose workloads the stack runs."""
    ns = config.app.namespace
    accounts = [f"{ns}/{account_name(svc.name)}" for svc in SERVICES] + [f"{ns}/{c}" for c in CLIENT_NAMES]
    accounts += [a for a in (ingress_account(config), waypoint_account(config)) if a]
    if config.sidecar.enabled:
        accounts.append(f"{config.sidecar.namespace}/{SIDECAR_CLIENT}")
    return accounts


def resolve(identity: str, config: StackConfig, key: str) -> str:
    """`ingress`, `sleep` or `ns/sa` → the namespace/name of a ServiceAccount the stack creates."""
    if identity == "ingress":
        account = ingress_account(config)
        if account is None:
            raise ConfigError(key, identity, "identities of workloads the stack runs; app.ingress is none")
        return account
    account = identity if "/" in identity else f"{config.app.namespace}/{identity}"
    known = service_accounts(config)
    if account not in known:
        raise ConfigError(key, identity, "ServiceAccounts this stack creates: ingress, " + ", ".join(known))
    return account


def principal(account: str) -> str:
    namespace, name = account.split("/", 1)
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{name}"
