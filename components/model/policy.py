"""Zero-trust rules as data: the PeerAuthentication, and which AuthorizationPolicies allow whom.

Behind a waypoint ztunnel sees only the waypoint's identity, so the waypoint must check the clients itself: the L7
rule where one is configured, else the same clients as the L4 policy. ALLOW policies add up, so a service with an
L7 rule gets no second, wider one.
"""

from __future__ import annotations

from typing import Any

from components.model import catalog
from components.model.config import StackConfig
from components.model.topology import principal, resolve, waypoint_account

ALLOW_NOTHING = "allow-nothing"


def peer_authentication_spec(config: StackConfig) -> dict[str, Any]:
    return {"mtls": {"mode": config.security.mtls.upper()}}


def _through_waypoint(config: StackConfig, service: str) -> list[str]:
    """A waypoint in front of `service` is the peer ztunnel sees: it must be allowed at L4 too."""
    account = waypoint_account(config)
    return [principal(account)] if account and config.waypoint.covers(service) else []


def allowed_callers(config: StackConfig) -> dict[str, list[str]]:
    """Service -> the principals allowed to call it (configured clients; with default deny, Bookinfo's own calls)."""
    security = config.security
    callers: dict[str, list[str]] = {}
    if security.productpage_clients:
        callers[catalog.PRODUCTPAGE] = [principal(resolve(i, config, "security.productpageClients"))
                                        for i in security.productpage_clients]
    if security.default_deny:
        # With nothing allowed by default, Bookinfo's own calls need their ALLOW rules.
        ns = config.app.namespace
        for svc in catalog.BOOKINFO:
            callers.setdefault(svc.name, []).extend(
                principal(f"{ns}/{catalog.bookinfo_account(caller)}") for caller in svc.callers)
    # A service nobody may call gets no ALLOW rule: an empty `principals` would not mean "nobody".
    return {service: sorted(set(principals)) for service, principals in callers.items() if principals}


def _from(principals: list[str]) -> list[dict[str, Any]]:
    return [{"source": {"principals": principals}}]


def _target(service: str) -> list[dict[str, str]]:
    """targetRefs of a policy the service's waypoint enforces."""
    return [{"kind": "Service", "group": "", "name": service}]


def l4_allow_specs(config: StackConfig) -> dict[str, dict[str, Any]]:
    """ALLOW policies enforced by ztunnel (workload selector, identities only), by policy name."""
    return {
        f"{service}-l4": {
            "selector": {"matchLabels": {"app": service}},
            "action": "ALLOW",
            "rules": [{"from": _from(sorted(set(principals + _through_waypoint(config, service))))}],
        }
        for service, principals in allowed_callers(config).items()
    }


def l7_allow_spec(config: StackConfig) -> dict[str, Any] | None:
    """ALLOW at the waypoint, attached to the productpage Service: only these clients, only these methods."""
    security = config.security
    if not security.l7_clients:
        return None
    return {
        "targetRefs": _target(catalog.PRODUCTPAGE),
        "action": "ALLOW",
        "rules": [{
            "from": _from([principal(resolve(i, config, "security.l7Clients")) for i in security.l7_clients]),
            "to": [{"operation": {"methods": list(security.l7_methods), "ports": [str(catalog.BOOKINFO_PORT)]}}],
        }],
    }


def waypoint_allow_specs(config: StackConfig) -> dict[str, dict[str, Any]]:
    """ALLOW policies at the waypoint (targetRefs a Service), by policy name."""
    specs: dict[str, dict[str, Any]] = {}
    l7 = l7_allow_spec(config)
    if l7 is not None:
        specs[f"{catalog.PRODUCTPAGE}-l7"] = l7
    for service, principals in allowed_callers(config).items():
        if config.waypoint.covers(service) and not (service == catalog.PRODUCTPAGE and l7 is not None):
            specs[f"{service}-waypoint"] = {"targetRefs": _target(service), "action": "ALLOW",
                                            "rules": [{"from": _from(principals)}]}
    return specs


def app_policies(config: StackConfig) -> dict[str, dict[str, Any]]:
    """Every AuthorizationPolicy of the app namespace, by name, in the order they are created."""
    specs: dict[str, dict[str, Any]] = {}
    if config.security.default_deny:
        # An empty policy matches nothing and allows nothing: whatever no ALLOW names is denied.
        specs[ALLOW_NOTHING] = {}
    return {**specs, **l4_allow_specs(config), **waypoint_allow_specs(config)}


def productpage_allowed(config: StackConfig) -> set[str] | None:
    """The principals that the policies above let reach productpage end to end; None: it is not restricted."""
    if config.waypoint.covers(catalog.PRODUCTPAGE) and config.security.l7_clients:
        # Behind a waypoint with an L7 rule, that rule decides who gets through.
        return {principal(resolve(i, config, "security.l7Clients")) for i in config.security.l7_clients}
    callers = allowed_callers(config)
    if catalog.PRODUCTPAGE in callers:
        # ztunnel, or the waypoint mirroring the same list.
        return set(callers[catalog.PRODUCTPAGE])
    return set() if config.security.default_deny else None


def expected_denied(config: StackConfig) -> list[str]:
    """The curl clients that the stack's policies keep away from productpage (verify --expect-denied)."""
    allowed = productpage_allowed(config)
    if allowed is None:
        return []
    return [c for c in config.app.clients if principal(f"{config.app.namespace}/{c}") not in allowed]


# Methods a read-only L7 rule leaves out, in the order a denial probe tries them (the guide's is DELETE).
WRITE_METHODS = ("DELETE", "POST", "PUT", "PATCH")
# The Bookinfo workload whose call to productpage the guide shows refused at L7 (`kubectl exec deploy/reviews-v1`).
IDENTITY_PROBE = ("reviews", "v1")


def l7_denials(config: StackConfig) -> list[tuple[str, str]]:
    """(workload, method) pairs the waypoint's L7 rule must answer with `RBAC: access denied`, as Istio's getting
    started shows: an allowed client with a method outside l7Methods, and a Bookinfo workload it does not name."""
    security = config.security
    if not (security.l7_clients and config.waypoint.covers(catalog.PRODUCTPAGE)):
        return []
    allowed = productpage_allowed(config) or set()
    probes: list[tuple[str, str]] = []
    client = next((c for c in config.app.clients if principal(f"{config.app.namespace}/{c}") in allowed), None)
    method = next((m for m in WRITE_METHODS if m not in security.l7_methods), None)
    if client is not None and method is not None:
        probes.append((client, method))
    service, version = IDENTITY_PROBE
    if principal(f"{config.app.namespace}/{catalog.bookinfo_account(service)}") not in allowed:
        probes.append((f"{service}-{version}", (security.l7_methods or ("GET",))[0]))
    return probes


def l4_admitted(config: StackConfig, service: str) -> set[str] | None:
    """The principals ztunnel's L4 policies admit to `service`'s pods, read from the ALLOW policy above; None: nothing
    restricts them at L4."""
    spec = l4_allow_specs(config).get(f"{service}-l4")
    if spec is not None:
        return {p for rule in spec["rules"] for source in rule["from"] for p in source["source"]["principals"]}
    # allow-nothing with no ALLOW for the service: ztunnel admits nobody.
    return set() if config.security.default_deny else None


def l4_denials(config: StackConfig) -> list[str]:
    """The curl clients that ztunnel resets (curl exit 56) when they call productpage's pod address, as Istio's getting
    started shows before its waypoint exists: the waypoint serves the Service only (istio.io/waypoint-for: service),
    so the pod's own address skips it, and ztunnel's L4 policy decides on the client's identity alone. Only where a
    waypoint is in front of productpage: without one, the Service's address is refused the same way (curl:<client>)."""
    if not config.waypoint.covers(catalog.PRODUCTPAGE):
        return []
    admitted = l4_admitted(config, catalog.PRODUCTPAGE)
    if admitted is None:
        return []
    return [c for c in config.app.clients if principal(f"{config.app.namespace}/{c}") not in admitted]
