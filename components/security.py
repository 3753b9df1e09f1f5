"""Zero trust: mesh-wide mTLS, L4 authorization at ztunnel, L7 authorization at the waypoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.bookinfo import BOOKINFO_PORT, SERVICES, account_name
from components.config import StackConfig
from components.identities import principal, resolve, waypoint_account
from components.istio import ISTIO_NAMESPACE

SECURITY_API = "security.istio.io/v1"


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
        callers["productpage"] = [principal(resolve(i, config, "security.productpageClients"))
                                  for i in security.productpage_clients]
    if security.default_deny:
        # With nothing allowed by default, Bookinfo's own calls need their ALLOW rules.
        ns = config.app.namespace
        for svc in SERVICES:
            callers.setdefault(svc.name, []).extend(
                principal(f"{ns}/{account_name(caller)}") for caller in svc.callers)
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
        "targetRefs": _target("productpage"),
        "action": "ALLOW",
        "rules": [{
            "from": _from([principal(resolve(i, config, "security.l7Clients")) for i in security.l7_clients]),
            "to": [{"operation": {"methods": list(security.l7_methods), "ports": [str(BOOKINFO_PORT)]}}],
        }],
    }


def waypoint_allow_specs(config: StackConfig) -> dict[str, dict[str, Any]]:
    """ALLOW policies at the waypoint (targetRefs a Service), by policy name.

    Behind a waypoint ztunnel sees only the waypoint's identity, so the waypoint must check the clients itself:
    the L7 rule where one is configured, else the same clients as the L4 policy. ALLOW policies add up, so a service
    with an L7 rule gets no second, wider one.
    """
    specs: dict[str, dict[str, Any]] = {}
    l7 = l7_allow_spec(config)
    if l7 is not None:
        specs["productpage-l7"] = l7
    for service, principals in allowed_callers(config).items():
        if config.waypoint.covers(service) and not (service == "productpage" and l7 is not None):
            specs[f"{service}-waypoint"] = {
                "targetRefs": _target(service),
                "action": "ALLOW",
                "rules": [{"from": _from(principals)}],
            }
    return specs


def productpage_allowed(config: StackConfig) -> set[str] | None:
    """The principals that the policies above let reach productpage end to end; None: it is not restricted."""
    if config.waypoint.covers("productpage") and config.security.l7_clients:
        # Behind a waypoint with an L7 rule, that rule decides who gets through.
        return {principal(resolve(i, config, "security.l7Clients")) for i in config.security.l7_clients}
    callers = allowed_callers(config)
    if "productpage" in callers:
        # ztunnel, or the waypoint mirroring the same list.
        return set(callers["productpage"])
    return set() if config.security.default_deny else None


@dataclass
class MeshSecurityArgs:
    config: StackConfig
    namespace: pulumi.Input[str]
    istio_config_api: list[pulumi.Resource]
    provider: k8s.Provider
    # Other namespaces the stack runs workloads in (the sidecar namespace): default deny covers them too.
    other_namespaces: list[pulumi.Input[str]] = field(default_factory=list)


class MeshSecurity(pulumi.ComponentResource):
    """PeerAuthentication in istio-system, AuthorizationPolicies in the app namespace."""

    policies: list[k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: MeshSecurityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:security:MeshSecurity", name, None, opts)
        config = args.config
        # Before base's CRDs: "no matches for kind"; before istiod serves its webhook: 'failed calling webhook
        # "validation.istio.io"'.
        after_istio = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=args.istio_config_api)

        def policy(suffix: str, kind: str, object_name: str, namespace: pulumi.Input[str],
                   spec: dict[str, Any]) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                f"{name}-{suffix}", api_version=SECURITY_API, kind=kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=namespace),
                spec=spec, opts=after_istio)

        self.policies = [policy("mtls", "PeerAuthentication", "default", ISTIO_NAMESPACE,
                                peer_authentication_spec(config))]
        if config.security.default_deny:
            # An empty policy matches nothing and allows nothing: whatever no ALLOW below names is denied.
            self.policies.append(policy("allow-nothing", "AuthorizationPolicy", "allow-nothing", args.namespace, {}))
            for index, other in enumerate(args.other_namespaces):
                self.policies.append(policy(f"allow-nothing-{index}", "AuthorizationPolicy", "allow-nothing", other,
                                            {}))
        for policy_name, spec in l4_allow_specs(config).items():
            self.policies.append(policy(policy_name, "AuthorizationPolicy", policy_name, args.namespace, spec))
        for policy_name, spec in waypoint_allow_specs(config).items():
            self.policies.append(policy(policy_name, "AuthorizationPolicy", policy_name, args.namespace, spec))
        self.register_outputs({"policies": [p.urn for p in self.policies]})
