"""Zero trust and L7: mTLS, L4/L7 authorization, waypoint, sidecar namespace, Gateway API ingress."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.model import policy
from components.model.config import StackConfig
from tests.conftest import L4_ZERO_TRUST, base_config
from tools.testkit.mockgraph import Graph, Registration, run_stack

AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
WORKLOADS = (DEPLOYMENT, "kubernetes:core/v1:Service", "kubernetes:core/v1:ServiceAccount")

ALL_ON: dict[str, dict[str, Any]] = {
    "app": {"ingress": "gateway-api"},
    "waypoint": {"mode": "namespace"},
    "sidecar": {"enabled": True},
    "security": {"defaultDeny": True, "productpageClients": ["ingress", "sleep", "sidecar/sleep"],
                 "l7Clients": ["sleep", "sidecar/sleep"], "l7Methods": ["GET", "HEAD"]},
}


def zero_trust_config(**overrides: dict[str, Any]) -> StackConfig:
    """The dev stack with the tests' own zero-trust slice under the given overrides (the dev stack has no policy)."""
    return base_config(**{**overrides, "security": {**L4_ZERO_TRUST, **overrides.get("security", {})}})


@pytest.fixture(scope="module")
def graph() -> Graph:
    return run_stack(zero_trust_config())


def policies(graph: Graph) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in graph.of_type(AUTHZ)}


def principals(spec: dict[str, Any]) -> set[str]:
    return {p for rule in spec.get("rules", []) for f in rule.get("from", []) for p in f["source"]["principals"]}


def release_name(graph: Graph, helm_name: str) -> str:
    [found] = [r.name for r in graph.of_type(RELEASE) if r.inputs["name"] == helm_name]
    return found


def gateway_api_objects(graph: Graph) -> list[Registration]:
    return [r for r in graph if r.type.startswith("kubernetes:gateway.networking.k8s.io/")]


def identities_in_graph(graph: Graph, config: StackConfig) -> set[str]:
    """SPIFFE principals of every workload the graph runs (ServiceAccounts, chart- and istiod-made accounts)."""
    found = {f"cluster.local/ns/{r.inputs['metadata']['namespace']}/sa/{r.inputs['metadata']['name']}"
             for r in graph.of_type("kubernetes:core/v1:ServiceAccount")}
    # The gateway chart runs under a ServiceAccount named after its release.
    found |= {f"cluster.local/ns/{r.inputs['namespace']}/sa/{r.inputs['name']}" for r in graph.of_type(RELEASE)
              if r.inputs["chart"].endswith("gateway")}
    # istiod runs each Gateway API gateway as <name>-<class> and each waypoint under the Gateway's name.
    for gateway in gateway_api_objects(graph):
        if gateway.type.endswith(":Gateway"):
            meta, cls = gateway.inputs["metadata"], gateway.inputs["spec"]["gatewayClassName"]
            account = meta["name"] if cls == "istio-waypoint" else f"{meta['name']}-{cls}"
            found.add(f"cluster.local/ns/{meta['namespace']}/sa/{account}")
    return found


def test_l4_allow_list_and_default_deny(graph: Graph) -> None:
    [mtls] = graph.of_type("kubernetes:security.istio.io/v1:PeerAuthentication")
    assert mtls.inputs["metadata"] == {"name": "default", "namespace": "istio-system"}
    assert mtls.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    specs = policies(graph)
    assert set(specs) == {"allow-nothing", "productpage-l4", "details-l4", "reviews-l4", "ratings-l4"}
    assert specs["allow-nothing"] == {}
    spec = specs["productpage-l4"]
    assert spec["action"] == "ALLOW"
    assert spec["selector"] == {"matchLabels": {"app": "productpage"}}
    assert principals(spec) == {"cluster.local/ns/istio-system/sa/istio-ingressgateway",
                                "cluster.local/ns/default/sa/sleep"}
    assert not any("notsleep" in p for p in principals(spec))  # the tutorial's denied client
    assert not gateway_api_objects(graph)  # no waypoint by default


def test_policy_selector_matches_productpage_pods(graph: Graph) -> None:
    selector = policies(graph)["productpage-l4"]["selector"]["matchLabels"].items()
    selected = [d for d in graph.of_type(DEPLOYMENT)
                if selector <= d.inputs["spec"]["template"]["metadata"]["labels"].items()]
    assert [d.inputs["metadata"]["name"] for d in selected] == ["productpage-v1"]


@pytest.mark.parametrize("overrides", [{}, ALL_ON], ids=["dev", "all-on"])
def test_every_principal_is_a_workload_of_the_stack(overrides: dict[str, dict[str, Any]]) -> None:
    config = zero_trust_config(**overrides)
    graph = run_stack(config)
    known = identities_in_graph(graph, config)
    used = set().union(*(principals(spec) for spec in policies(graph).values()))
    assert used and used <= known, used - known


def test_permissive_mtls_and_no_l4_policy() -> None:
    config = base_config(security={"mtls": "permissive", "productpageClients": [], "defaultDeny": False})
    assert policy.peer_authentication_spec(config) == {"mtls": {"mode": "PERMISSIVE"}}
    assert policy.app_policies(config) == {}


def test_default_deny_keeps_bookinfo_calls_allowed() -> None:
    graph = run_stack(zero_trust_config(security={"defaultDeny": True}))
    specs = policies(graph)
    assert specs["allow-nothing"] == {}
    ns = "cluster.local/ns/default/sa"
    assert principals(specs["details-l4"]) == {f"{ns}/bookinfo-productpage"}
    assert principals(specs["reviews-l4"]) == {f"{ns}/bookinfo-productpage"}
    assert principals(specs["ratings-l4"]) == {f"{ns}/bookinfo-reviews"}
    assert "sleep-l4" not in specs and "notsleep-l4" not in specs
    # Nobody listed for productpage: allow-nothing covers it; no ALLOW rule with an empty principal list.
    specs = policy.app_policies(zero_trust_config(security={"defaultDeny": True, "productpageClients": []}))
    assert "productpage-l4" not in specs and "allow-nothing" in specs
    assert all(principals(spec) for name, spec in specs.items() if name != "allow-nothing")


def test_default_deny_covers_the_sidecar_namespace() -> None:
    graph = run_stack(zero_trust_config(sidecar={"enabled": True}))
    deny = {r.inputs["metadata"]["namespace"] for r in graph.of_type(AUTHZ)
            if r.inputs["metadata"]["name"] == "allow-nothing"}
    assert deny == {"default", "sidecar"}
    [sidecar_ns] = [n for n in graph.of_type("kubernetes:core/v1:Namespace")
                    if n.inputs["metadata"]["name"] == "sidecar"]
    [policy] = [r for r in graph.of_type(AUTHZ) if r.inputs["metadata"]["namespace"] == "sidecar"]
    assert sidecar_ns.name in graph.depends_on(policy.name)


def test_waypoint_gateway_and_namespace_label() -> None:
    graph = run_stack(zero_trust_config(waypoint={"mode": "namespace"}))
    [waypoint] = gateway_api_objects(graph)
    assert waypoint.inputs["spec"] == {"gatewayClassName": "istio-waypoint",
                                       "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}
    assert waypoint.inputs["metadata"]["name"] == "waypoint"
    assert waypoint.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Programmed"
    crds = {r.name for r in graph.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")}
    assert crds and crds | {release_name(graph, "istiod")} <= graph.explicit(waypoint.name)
    [label] = [p for p in graph.of_type("kubernetes:core/v1:NamespacePatch")
               if "istio.io/use-waypoint" in p.inputs["metadata"]["labels"]]
    assert label.inputs["metadata"]["labels"] == {"istio.io/use-waypoint": waypoint.inputs["metadata"]["name"]}
    assert graph.explicit(label.name) == {waypoint.name}
    # ztunnel now sees the waypoint as productpage's caller...
    specs = policies(graph)
    assert "cluster.local/ns/default/sa/waypoint" in principals(specs["productpage-l4"])
    # ...so the waypoint checks the clients itself, for every service it serves that has allowed callers.
    for service in ("productpage", "details", "reviews", "ratings"):
        spec = specs[f"{service}-waypoint"]
        assert spec["targetRefs"] == [{"kind": "Service", "group": "", "name": service}]
        assert principals(spec) == principals(specs[f"{service}-l4"]) - {"cluster.local/ns/default/sa/waypoint"}
    assert "cluster.local/ns/default/sa/notsleep" not in principals(specs["productpage-waypoint"])


def test_waypoint_for_listed_services_labels_those_services_after_they_exist() -> None:
    graph = run_stack(zero_trust_config(waypoint={"mode": "services", "services": ["reviews", "productpage"]}))
    patches = graph.of_type("kubernetes:core/v1:ServicePatch")
    assert {p.inputs["metadata"]["name"] for p in patches} == {"reviews", "productpage"}
    services = {s.inputs["metadata"]["name"]: s.name for s in graph.of_type("kubernetes:core/v1:Service")}
    [waypoint] = gateway_api_objects(graph)
    for patch in patches:
        assert patch.inputs["metadata"]["labels"] == {"istio.io/use-waypoint": "waypoint"}
        assert graph.depends_on(patch.name) == {waypoint.name, services[patch.inputs["metadata"]["name"]]}
    assert not [p for p in graph.of_type("kubernetes:core/v1:NamespacePatch")
                if "istio.io/use-waypoint" in p.inputs["metadata"]["labels"]]


def test_l7_policy_at_the_waypoint() -> None:
    graph = run_stack(zero_trust_config(waypoint={"mode": "services", "services": ["productpage"]},
                                 security={"l7Clients": ["sleep"], "l7Methods": ["GET"]}))
    spec = policies(graph)["productpage-l7"]
    # ALLOW policies add up: a second, method-free rule on productpage would undo the L7 restriction.
    assert "productpage-waypoint" not in policies(graph)
    productpage = next(s for s in graph.of_type("kubernetes:core/v1:Service")
                       if s.inputs["metadata"]["name"] == "productpage")
    [target] = spec["targetRefs"]
    assert target == {"kind": "Service", "group": "", "name": productpage.inputs["metadata"]["name"]}
    assert "selector" not in spec  # targetRefs: enforced by the waypoint, not ztunnel
    [rule] = spec["rules"]
    assert rule["from"] == [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}]
    assert rule["to"] == [{"operation": {"methods": ["GET"], "ports": ["9080"]}}]
    [policy] = [r for r in graph.of_type(AUTHZ) if r.inputs["metadata"]["name"] == "productpage-l7"]
    assert {release_name(graph, "istio-base"), release_name(graph, "istiod")} <= graph.explicit(policy.name)


def test_sidecar_namespace() -> None:
    graph = run_stack(zero_trust_config(sidecar={"enabled": True}))
    [namespace] = [n for n in graph.of_type("kubernetes:core/v1:Namespace")
                   if n.inputs["metadata"]["name"] == "sidecar"]
    assert namespace.inputs["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert "istio.io/dataplane-mode" not in namespace.inputs["metadata"]["labels"]
    ambient_patches = {p.inputs["metadata"]["name"] for p in graph.of_type("kubernetes:core/v1:NamespacePatch")}
    assert "sidecar" not in ambient_patches
    [client] = [d for d in graph.of_type(DEPLOYMENT) if d.inputs["metadata"]["namespace"] == "sidecar"]
    assert client.inputs["metadata"]["name"] == "sleep"
    assert release_name(graph, "istiod") in graph.explicit(client.name)
    [istiod] = [r for r in graph.of_type(RELEASE) if r.inputs["name"] == "istiod"]
    assert istiod.inputs["values"]["cni"]["enabled"] is True


def test_gateway_api_ingress() -> None:
    config = zero_trust_config(app={"ingress": "gateway-api"})
    graph = run_stack(config)
    assert "istio-ingressgateway" not in {r.inputs["name"] for r in graph.of_type(RELEASE)}
    assert not [r for r in graph if r.type.startswith("kubernetes:networking.istio.io/")]
    [gateway] = [r for r in gateway_api_objects(graph) if r.type.endswith(":Gateway")]
    [route] = [r for r in gateway_api_objects(graph) if r.type.endswith(":HTTPRoute")]
    assert gateway.inputs["spec"]["gatewayClassName"] == "istio"
    [listener] = gateway.inputs["spec"]["listeners"]
    assert (listener["name"], listener["port"], listener["protocol"]) == ("http", 80, "HTTP")
    assert gateway.inputs["metadata"]["annotations"]["networking.istio.io/service-type"] != "LoadBalancer"
    assert route.inputs["spec"]["parentRefs"] == [{"name": gateway.inputs["metadata"]["name"]}]
    [rule] = route.inputs["spec"]["rules"]
    # The same five paths as the Istio VirtualService.
    istio_vs = run_stack(zero_trust_config()).of_type("kubernetes:networking.istio.io/v1:VirtualService")[0]
    vs_paths = [next(iter(m["uri"].items())) for m in istio_vs.inputs["spec"]["http"][0]["match"]]
    types = {"exact": "Exact", "prefix": "PathPrefix"}
    assert [(m["path"]["type"], m["path"]["value"]) for m in rule["matches"]] == [(types[k], v) for k, v in vs_paths]
    assert rule["backendRefs"] == [{"name": "productpage", "port": 9080}]
    crds = {r.name for r in graph.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")}
    for resource in (gateway, route):
        assert crds | {release_name(graph, "istiod")} <= graph.explicit(resource.name)
    [node_port] = [s for s in graph.of_type("kubernetes:core/v1:Service") if s.inputs["spec"].get("type") == "NodePort"]
    assert node_port.inputs["spec"]["ports"][0]["nodePort"] == config.cluster.ingress_node_port
    assert node_port.inputs["spec"]["selector"] == {
        "gateway.networking.k8s.io/gateway-name": gateway.inputs["metadata"]["name"]}
    assert principals(policies(graph)["productpage-l4"]) >= {"cluster.local/ns/default/sa/bookinfo-gateway-istio"}


def test_all_switches_together_never_delay_the_app() -> None:
    graph = run_stack(zero_trust_config(**ALL_ON))
    app = [r for r in graph if r.type in WORKLOADS and r.inputs["metadata"]["namespace"] == "default"
           and not r.name.startswith("ingress-")]
    assert len(app) == 20
    for workload in app:
        component = graph.component_of(workload)
        assert component is not None
        waited = graph.waits_for(workload.name) | graph.waits_for(component.name)
        assert not any(re.match(r"kubernetes:(helm\.sh|.*istio\.io|gateway\.networking)", graph.get(n).type)
                       for n in waited), workload.name
    assert {"allow-nothing", "productpage-l4", "details-l4", "reviews-l4", "ratings-l4", "productpage-l7",
            "details-waypoint", "reviews-waypoint", "ratings-waypoint"} == set(policies(graph))
    assert {r.type.rsplit(":", 1)[1] for r in gateway_api_objects(graph)} == {"Gateway", "HTTPRoute"}
    assert len(gateway_api_objects(graph)) == 3  # waypoint, ingress Gateway, HTTPRoute
