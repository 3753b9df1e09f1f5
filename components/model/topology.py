"""What follows from the config about where things are: kube context, ingress addresses, and the workload identities
(ServiceAccounts and their SPIFFE principals) that the stack runs."""

from __future__ import annotations

from components.model import catalog
from components.model.config import ClusterConfig, ConfigError, StackConfig


def kube_context(cluster: ClusterConfig) -> str | None:
    """The kubectl context of the cluster: kind names it kind-<name>; None: kubectl's current one."""
    return f"kind-{cluster.name}" if cluster.provider == "kind" else cluster.context


def kubectl(cluster: ClusterConfig) -> str:
    context = kube_context(cluster)
    return f"kubectl --context {context}" if context else "kubectl"


def ingress_gateway(config: StackConfig) -> tuple[str, str] | None:
    """(namespace, name) of the ingress gateway's Service and ServiceAccount (the same name), None without one."""
    if config.app.ingress == "istio":
        return catalog.ISTIO_NAMESPACE, catalog.INGRESS_RELEASE
    if config.app.ingress == "gateway-api":
        return config.app.namespace, catalog.GATEWAY_API_INGRESS_DEPLOYMENT
    return None


def ingress_url(config: StackConfig) -> str | None:
    """productpage through the ingress from the user's machine: kind maps the NodePort to this host port; elsewhere
    the port-forward command in the moreChecks output serves the same port."""
    if ingress_gateway(config) is None:
        return None
    return f"http://localhost:{config.cluster.ingress_host_port}/productpage"


def host_url(config: StackConfig) -> str | None:
    """productpage from this machine, where it is reachable without a port-forward: only kind maps the port."""
    return ingress_url(config) if config.cluster.provider == "kind" else None


def in_cluster_ingress(config: StackConfig) -> str | None:
    """The ingress gateway's address inside the cluster."""
    gateway = ingress_gateway(config)
    return f"{gateway[1]}.{gateway[0]}" if gateway else None


# --- identities ------------------------------------------------------------------------------------------------

def ingress_account(config: StackConfig) -> str | None:
    gateway = ingress_gateway(config)
    return "/".join(gateway) if gateway else None


def waypoint_account(config: StackConfig) -> str | None:
    # istiod runs the waypoint under a ServiceAccount named after its Gateway.
    return f"{config.app.namespace}/{config.waypoint.name}" if config.waypoint.mode != "none" else None


def service_accounts(config: StackConfig) -> list[str]:
    """Every ServiceAccount (namespace/name) whose workloads the stack runs."""
    ns = config.app.namespace
    accounts = [f"{ns}/{catalog.bookinfo_account(s)}" for s in catalog.BOOKINFO_SERVICES]
    accounts += [f"{ns}/{c}" for c in config.app.clients]
    accounts += [a for a in (ingress_account(config), waypoint_account(config)) if a]
    if config.sidecar.enabled:
        accounts.append(f"{config.sidecar.namespace}/{catalog.SIDECAR_CLIENT}")
    return accounts


def resolve(identity: str, config: StackConfig, key: str) -> str:
    """`ingress`, `sleep` or `ns/sa` → the namespace/name of a ServiceAccount the stack creates; else a ConfigError
    naming `key`."""
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
    return f"{catalog.TRUST_DOMAIN}/ns/{namespace}/sa/{name}"
