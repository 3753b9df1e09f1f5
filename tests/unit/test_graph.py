"""The dependency graph: each step waits for what it really needs, and nothing else."""

from __future__ import annotations

import re

from components.model.config import PROJECT
from components.model.gateway_api import load_bundle
from tests.conftest import GATEWAY_API_FIXTURE, L4_ZERO_TRUST, base_config
from tools.testkit.mockgraph import Graph, run_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
WORKLOAD_TYPES = ("kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service", "kubernetes:core/v1:ServiceAccount")



def release_named(graph: Graph, helm_name: str) -> str:
    """Pulumi name of the release whose Helm release name is `helm_name`."""
    [found] = [r.name for r in graph.of_type(RELEASE) if r.inputs["name"] == helm_name]
    return found


def test_istiod_waits_for_base_crds(graph: Graph) -> None:
    assert release_named(graph, "istio-base") in graph.explicit(release_named(graph, "istiod"))


def test_ztunnel_waits_for_istiod(graph: Graph) -> None:
    assert release_named(graph, "istiod") in graph.explicit(release_named(graph, "ztunnel"))


def test_ingress_gateway_waits_for_istiod_injector(graph: Graph) -> None:
    assert release_named(graph, "istiod") in graph.explicit(release_named(graph, "istio-ingressgateway"))


def test_base_starts_at_once(graph: Graph) -> None:
    waits = graph.waits_for(release_named(graph, "istio-base"))
    assert not any(graph.get(n).type == RELEASE for n in waits) and "istio-namespace" in waits


def test_upgrades_follow_istios_order(graph: Graph) -> None:
    """base → istiod → cni, ztunnel, gateway: the data plane and the gateway never run newer than istiod (Pulumi
    updates in dependency order, as it creates)."""
    istiod = release_named(graph, "istiod")
    assert release_named(graph, "istio-base") in graph.explicit(istiod)
    for helm_name in ("istio-cni", "ztunnel", "istio-ingressgateway"):
        assert istiod in graph.explicit(release_named(graph, helm_name)), helm_name


def longest_release_chain(graph: Graph) -> list[str]:
    """The longest chain of Helm releases, each waiting for the one before: the install's critical path."""
    releases = {r.name for r in graph.of_type(RELEASE)}
    best: dict[str, list[str]] = {}

    def chain(name: str) -> list[str]:
        if name not in best:
            before = [chain(d) for d in graph.explicit(name) & releases]
            best[name] = max(before, key=len, default=[]) + [name]
        return best[name]

    return max((chain(r) for r in releases), key=len)


def test_the_order_does_not_lengthen_the_install(graph: Graph) -> None:
    """cni waits for istiod beside ztunnel, not after it: still three releases deep, as base → istiod → ztunnel was."""
    chain = longest_release_chain(graph)
    assert len(chain) == 3 and chain[:2] == [release_named(graph, "istio-base"), release_named(graph, "istiod")]


def test_every_release_is_in_istio_system_and_waits_for_it(graph: Graph) -> None:
    releases = graph.of_type(RELEASE)
    assert {r.inputs["name"] for r in releases} == {"istio-base", "istiod", "istio-cni", "ztunnel",
                                                   "istio-ingressgateway"}
    namespace = graph.get("istio-namespace")
    for release in releases:
        assert release.inputs["namespace"] == namespace.inputs["metadata"]["name"] == "istio-system"
        assert namespace.urn in release.property_dependencies["namespace"]
        assert release.inputs["skipAwait"] is False  # each release waits for its workloads


def test_enrolment_waits_for_ztunnel_cni_and_the_running_app_only(graph: Graph) -> None:
    """As in the tutorial: the app runs, then the namespace is labelled and ambient captures its pods."""
    [patch] = graph.of_type("kubernetes:core/v1:NamespacePatch")
    app = {r.name for r in graph if r.custom and (c := graph.component_of(r)) is not None
           and c.type.rsplit(":", 1)[1] in ("Bookinfo", "CurlClients")}
    assert graph.explicit(patch.name) == {release_named(graph, "ztunnel"), release_named(graph, "istio-cni")} | app
    assert {d.name for d in graph.of_type("kubernetes:apps/v1:Deployment")} <= app


def test_app_workloads_do_not_wait_for_istio(graph: Graph) -> None:
    """Ambient captures running pods when the namespace is enrolled: the app deploys in parallel with the mesh."""
    app = [r for r in graph if r.type in WORKLOAD_TYPES]
    assert len(app) == 4 + 4 + 6 + 3 * 2  # bookinfo SAs, Services, Deployments; sleep/notsleep SA+Service+Deployment
    for workload in app:
        # A depends_on given to an enclosing component counts too.
        component = graph.component_of(workload)
        assert component is not None
        waited = {graph.get(n).type for n in graph.waits_for(workload.name) | graph.waits_for(component.name)}
        assert RELEASE not in waited, workload.name
        assert "kubernetes:core/v1:NamespacePatch" not in waited, workload.name


def test_istio_config_waits_for_crds_and_webhook() -> None:
    graph = run_stack(base_config(security=L4_ZERO_TRUST))
    istio_kinds = [r for r in graph if re.match(r"kubernetes:(networking|security)\.istio\.io/", r.type)]
    assert {r.type.rsplit(":", 1)[1] for r in istio_kinds} == {"Gateway", "VirtualService", "PeerAuthentication",
                                                               "AuthorizationPolicy"}
    for resource in istio_kinds:
        assert {release_named(graph, "istio-base"), release_named(graph, "istiod")} <= graph.explicit(resource.name)


def test_kubeconfig_is_read_after_kind_creates_the_cluster(graph: Graph) -> None:
    assert graph.depends_on("cluster-kubeconfig") == {"cluster-kind"}
    assert graph.get("cluster-kubeconfig").inputs["logging"] == "none"
    assert graph.get("cluster-kubeconfig").additional_secret_outputs == ["stdout"]


def test_gateway_api_crds_wait_for_nothing_but_the_cluster(graph: Graph) -> None:
    crds = graph.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")
    assert {c.inputs["metadata"]["name"] for c in crds} >= {"gateways.gateway.networking.k8s.io",
                                                              "httproutes.gateway.networking.k8s.io"}
    for crd in crds:
        assert graph.waits_for(crd.name) == set()


def test_only_documented_depends_on(graph: Graph) -> None:
    """Every explicit depends_on in the graph is one of the real needs listed here."""
    explicit = {(r.name, dep) for r in graph for dep in graph.explicit(r.name)
                if r.custom and graph.get(dep).custom}
    expected = {
        (release_named(graph, "istiod"), release_named(graph, "istio-base")),
        (release_named(graph, "ztunnel"), release_named(graph, "istiod")),
        (release_named(graph, "istio-cni"), release_named(graph, "istiod")),
        (release_named(graph, "istio-ingressgateway"), release_named(graph, "istiod")),
    }
    expected |= {(p.name, release_named(graph, n)) for p in graph.of_type("kubernetes:core/v1:NamespacePatch")
                 for n in ("ztunnel", "istio-cni")}
    # ... and once the app runs (the tutorial labels after deploying it: ambient captures running pods).
    expected |= {(p.name, r.name) for p in graph.of_type("kubernetes:core/v1:NamespacePatch") for r in graph
                 if r.custom and (c := graph.component_of(r)) is not None
                 and c.type.rsplit(":", 1)[1] in ("Bookinfo", "CurlClients")}
    expected |= {(r.name, release_named(graph, n)) for r in graph
                 if re.match(r"kubernetes:(networking|security)\.istio\.io/", r.type) for n in ("istio-base", "istiod")}
    # A pod whose ServiceAccount does not exist yet is refused by admission: each Deployment waits for its own.
    accounts = {sa.inputs["metadata"]["name"]: sa.name for sa in graph.of_type("kubernetes:core/v1:ServiceAccount")}
    expected |= {(d.name, accounts[d.inputs["spec"]["template"]["spec"]["serviceAccountName"]])
                 for d in graph.of_type("kubernetes:apps/v1:Deployment")}
    # Images are loaded into the nodes once they are pulled (and the cluster exists: its id is the load's trigger);
    # whatever runs them waits.
    expected |= {("images-load-mesh", "images-pull"), ("images-load-app", "images-pull")}
    # The preflight comes first: neither the cluster nor the pull starts before it passes.
    expected |= {("cluster-kind", "cluster-preflight"), ("images-pull", "cluster-preflight")}
    # Istio's releases wait for the mesh's images only, the app's Deployments for the app's only.
    expected |= {(release_named(graph, n), "images-load-mesh") for n in ("istiod", "istio-cni", "ztunnel",
                                                                        "istio-ingressgateway")}
    expected |= {(d.name, "images-load-app") for d in graph.of_type("kubernetes:apps/v1:Deployment")}
    # The smoke check runs last, after every resource of the app, its enrolment, security and ingress.
    last = {"IstioAmbient", "AmbientEnrolment", "Bookinfo", "CurlClients", "MeshSecurity", "BookinfoIngress"}
    expected |= {("smoke-verify", r.name) for r in graph
                 if r.custom and (c := graph.component_of(r)) is not None and c.type.rsplit(":", 1)[1] in last}
    assert explicit == expected


def test_smoke_check_is_the_end_of_the_graph(graph: Graph) -> None:
    waited = graph.waits_for("smoke-verify")
    custom = {r.name for r in graph if r.custom and r.type != "pulumi:providers:kubernetes"}
    # The Gateway API bundle is waited for only through what uses it (waypoint, Gateway API ingress).
    bundle = {r.name for r in graph.children("gateway-api")}
    assert waited == custom - {"smoke-verify"} - bundle
    assert not any("smoke-verify" in graph.depends_on(r.name) for r in graph)


def test_every_kubernetes_resource_uses_the_cluster_provider(graph: Graph) -> None:
    provider = graph.get("cluster-provider")
    reference = f"{provider.urn}::{provider.name}-id"
    kubernetes = [r for r in graph if r.type.startswith("kubernetes:")]
    assert len(kubernetes) > 30
    for resource in kubernetes:
        assert resource.provider == reference, resource.name


def test_provider_is_built_from_the_kind_kubeconfig_as_a_secret(graph: Graph) -> None:
    provider = graph.get("cluster-provider")
    assert graph.names(provider.property_dependencies["kubeconfig"]) == {"cluster-kubeconfig"}
    assert set(provider.inputs["kubeconfig"]) == {"4dabf18193072939515e22adb298388d", "value"}  # a secret


def test_every_resource_belongs_to_a_component_and_is_named_after_it(graph: Graph) -> None:
    for resource in graph:
        if resource.type.startswith(f"{PROJECT}:"):
            assert "::pulumi:pulumi:Stack::" in resource.parent, resource.name  # components sit at the top
            assert not resource.custom
            continue
        component = graph.component_of(resource)
        assert component is not None, resource.name
        assert resource.name.startswith(f"{component.name}-"), (resource.name, component.name)


def test_component_tokens_are_consistent(graph: Graph) -> None:
    tokens = [r.type for r in graph if not r.custom]
    assert tokens and all(t.startswith(f"{PROJECT}:") and len(t.split(":")) == 3 for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_ingress_off_removes_gateway_release_and_routing() -> None:
    graph = run_stack(base_config(app={"ingress": "none"}, security={"productpageClients": ["sleep"]}))
    assert "istio-ingressgateway" not in {r.inputs["name"] for r in graph.of_type(RELEASE)}
    assert not [r for r in graph if r.type.startswith("kubernetes:networking.istio.io/")]
    assert graph.outputs["ingressUrl"] is None


def test_gateway_api_bundle_policy_and_binding_are_typed(graph: Graph) -> None:
    """The bundle's safe-upgrades policy and binding are the typed admissionregistration kinds, spec as shipped."""
    shipped = {d["kind"]: d for d in load_bundle(str(GATEWAY_API_FIXTURE)) if d["kind"] != "CustomResourceDefinition"}
    assert set(shipped) == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for kind, doc in shipped.items():
        [made] = graph.of_type(f"kubernetes:admissionregistration.k8s.io/v1:{kind}")
        assert made.inputs["spec"] == doc["spec"] and made.inputs["metadata"] == doc["metadata"]
        assert made.inputs["apiVersion"] == "admissionregistration.k8s.io/v1" and made.inputs["kind"] == kind
        assert graph.component_of(made) == graph.get("gateway-api")


def test_gateway_api_skip_installs_no_crd() -> None:
    graph = run_stack(base_config(gatewayApi={"mode": "skip"}))
    assert not graph.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")
    assert not graph.children("gateway-api")
