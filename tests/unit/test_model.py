"""The ground floor without mocks: topology, policy rules, the chart table and the outputs are plain functions of a
config built here (dataclasses, no stack file)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.model import catalog, charts, policy, topology
from components.model.config import (
    AppConfig,
    ClusterConfig,
    ConfigError,
    GatewayApiConfig,
    IstioConfig,
    SecurityConfig,
    SidecarConfig,
    StackConfig,
    WaypointConfig,
)
from components.model.outputs import try_it, verify_argv

BASE = StackConfig(cluster=ClusterConfig(name="m", ingress_host_port=9000), istio=IstioConfig(),
                   gateway_api=GatewayApiConfig(), app=AppConfig(namespace="shop"))
ZERO_TRUST = replace(BASE, security=SecurityConfig(productpage_clients=("ingress", "sleep"), default_deny=True))


def test_topology_of_kind_and_existing_clusters() -> None:
    assert topology.kube_context(BASE.cluster) == "kind-m"
    assert topology.kubectl(BASE.cluster) == "kubectl --context kind-m"
    existing = replace(BASE, cluster=ClusterConfig(provider="existing", context="minikube"))
    assert topology.kube_context(existing.cluster) == "minikube"
    assert topology.host_url(BASE) == "http://localhost:9000/productpage" and topology.host_url(existing) is None
    assert topology.in_cluster_ingress(BASE) == f"{catalog.INGRESS_RELEASE}.{catalog.ISTIO_NAMESPACE}"
    gateway_api = replace(BASE, app=AppConfig(namespace="shop", ingress="gateway-api"))
    assert topology.in_cluster_ingress(gateway_api) == f"{catalog.GATEWAY_API_INGRESS_DEPLOYMENT}.shop"
    none = replace(BASE, app=AppConfig(namespace="shop", ingress="none"))
    assert topology.ingress_url(none) is None and topology.ingress_account(none) is None


def test_identities_follow_the_optional_workloads() -> None:
    accounts = topology.service_accounts(BASE)
    assert "shop/bookinfo-productpage" in accounts and "shop/notsleep" in accounts
    assert not any(a.endswith("/waypoint") or a.startswith("legacy/") for a in accounts)
    more = replace(BASE, waypoint=WaypointConfig(mode="namespace", name="wp"),
                   sidecar=SidecarConfig(enabled=True, namespace="legacy"))
    assert {"shop/wp", "legacy/sleep"} <= set(topology.service_accounts(more))
    assert topology.resolve("legacy/sleep", more, "k") == "legacy/sleep"
    with pytest.raises(ConfigError, match="ambient-mesh:k: got 'legacy/sleep'"):
        topology.resolve("legacy/sleep", BASE, "k")
    assert topology.principal("shop/sleep") == "cluster.local/ns/shop/sa/sleep"


def test_the_tutorial_has_no_policy_and_denies_nobody() -> None:
    assert policy.app_policies(BASE) == {}
    assert policy.productpage_allowed(BASE) is None and policy.expected_denied(BASE) == []


def test_the_l7_rule_is_probed_with_a_method_and_an_identity_it_leaves_out() -> None:
    """What verify must see refused with `RBAC: access denied`: the guide's DELETE from the allowed client and its
    call from reviews-v1; nothing where no waypoint applies the rule."""
    waypoint = WaypointConfig(mode="services", name="wp", services=("productpage",))
    config = replace(ZERO_TRUST, waypoint=waypoint,
                     security=replace(ZERO_TRUST.security, l7_clients=("sleep",), l7_methods=("GET", "HEAD")))
    allowed = policy.productpage_allowed(config) or set()
    probes = policy.l7_denials(config)
    [(client, method), (workload, identity_method)] = probes
    assert topology.principal(f"shop/{client}") in allowed and method not in config.security.l7_methods
    assert workload.startswith("reviews-") and identity_method in config.security.l7_methods
    assert topology.principal(f"shop/{catalog.bookinfo_account('reviews')}") not in allowed
    # Every write method allowed: only the identity is left to probe.
    writes = replace(config, security=replace(config.security, l7_methods=("GET", *policy.WRITE_METHODS)))
    assert [w for w, _ in policy.l7_denials(writes)] == [workload]
    # reviews named by the rule: only the method.
    reviews = replace(config, security=replace(config.security, l7_clients=("sleep", "bookinfo-reviews")))
    assert policy.l7_denials(reviews) == [(client, method)]
    # The rule without a waypoint in front of productpage is never applied, and the tutorial has none.
    assert policy.l7_denials(replace(config, waypoint=WaypointConfig())) == []
    assert policy.l7_denials(BASE) == []


def test_default_deny_allows_bookinfos_own_calls_by_name() -> None:
    callers = policy.allowed_callers(ZERO_TRUST)
    for svc in catalog.BOOKINFO:
        expected = {topology.principal(f"shop/{catalog.bookinfo_account(c)}") for c in svc.callers}
        if svc.name == catalog.PRODUCTPAGE:
            expected |= {topology.principal(f"{catalog.ISTIO_NAMESPACE}/{catalog.INGRESS_RELEASE}"),
                         topology.principal("shop/sleep")}
        assert set(callers.get(svc.name, [])) == expected, svc.name
    specs = policy.app_policies(ZERO_TRUST)
    assert next(iter(specs)) == policy.ALLOW_NOTHING and specs[policy.ALLOW_NOTHING] == {}
    assert policy.expected_denied(ZERO_TRUST) == ["notsleep"]


def test_a_waypoint_joins_the_l4_rule_and_checks_the_clients_itself() -> None:
    config = replace(ZERO_TRUST, waypoint=WaypointConfig(mode="services", name="wp", services=("productpage",)))
    l4 = policy.l4_allow_specs(config)["productpage-l4"]["rules"][0]["from"][0]["source"]["principals"]
    assert topology.principal("shop/wp") in l4
    waypoint = policy.waypoint_allow_specs(config)["productpage-waypoint"]
    assert waypoint["targetRefs"] == [{"kind": "Service", "group": "", "name": "productpage"}]
    assert topology.principal("shop/wp") not in waypoint["rules"][0]["from"][0]["source"]["principals"]
    with_l7 = replace(config, security=replace(config.security, l7_clients=("sleep",), l7_methods=("GET", "HEAD")))
    specs = policy.waypoint_allow_specs(with_l7)
    assert set(specs) == {"productpage-l7"}  # ALLOW policies add up: never a second, wider one
    assert specs["productpage-l7"]["rules"][0]["to"][0]["operation"]["methods"] == ["GET", "HEAD"]


def test_chart_locations() -> None:
    url = charts.istio_releases(IstioConfig(repository="https://charts.test/istio"), None)
    assert (url.istiod.chart, url.istiod.repository) == ("istiod", "https://charts.test/istio")
    oci = charts.istio_releases(IstioConfig(repository="oci://registry.test/charts/"), None)
    assert (oci.cni.chart, oci.cni.repository) == ("oci://registry.test/charts/cni", None)
    local = charts.istio_releases(IstioConfig(repository="/srv/charts"), 30001)
    assert local.ingress_gateway is not None and local.ingress_gateway.chart == "/srv/charts/gateway"
    assert {r.version for r in (local.base, local.istiod, local.cni, local.ztunnel)} == {IstioConfig().version}


def test_resource_profiles_change_requests_only() -> None:
    laptop = charts.istio_releases(IstioConfig(resource_profile="laptop"), 30001)
    defaults = charts.istio_releases(IstioConfig(resource_profile="chart-defaults"), 30001)
    for key in charts.CHART_DEFAULTS:
        release = {"ingress-gateway": laptop.ingress_gateway}.get(key) or getattr(laptop, key)
        assert release is not None and set(release.values["resources"]) == {"requests"}
    assert "resources" not in defaults.istiod.values
    assert charts.totals("chart-defaults", 3).cpu_millicores > charts.totals("laptop", 3).cpu_millicores


def test_try_it_names_the_namespace_and_context() -> None:
    commands = try_it(BASE)
    assert all("kubectl --context kind-m" in c for c in commands)
    assert all(" -n shop exec " in c for c in commands if " exec " in c)


def test_verify_argv_says_what_to_expect() -> None:
    argv = verify_argv("shop", "ctx", None, None, ["notsleep"], 30)
    assert argv[argv.index("--namespace") + 1] == "shop" and argv[argv.index("--context") + 1] == "ctx"
    assert "--no-ingress" in argv and argv[argv.index("--expect-denied") + 1] == "notsleep"
