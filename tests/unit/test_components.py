"""Each component alone under mocks, with a small slice of its own (not the stack's config): it names its children
after itself, parents them, hands them the provider it was given once, and orders them as the real system needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pytest

from components.bookinfo import Bookinfo, BookinfoArgs
from components.clients import CurlClients, CurlClientsArgs
from components.cluster import Cluster, ClusterArgs
from components.gateway_api import GatewayApiArgs, GatewayApiCrds
from components.images import ImagePreload, ImagePreloadArgs
from components.ingress import BookinfoGatewayApiIngress, BookinfoIngress, BookinfoIngressArgs, GatewayApiIngressArgs
from components.istio import IstioAmbient, IstioArgs
from components.model import catalog
from components.model.charts import istio_releases
from components.model.config import ClusterConfig, IstioConfig, SidecarConfig, WaypointConfig
from components.model.images import Lane
from components.model.kind import kind_config
from components.namespace import AmbientEnrolment, AmbientEnrolmentArgs, AppNamespace, AppNamespaceArgs
from components.security import MeshSecurity, MeshSecurityArgs
from components.sidecar import SidecarNamespace, SidecarNamespaceArgs
from components.waypoint import Waypoint, WaypointArgs
from tools.testkit.mockgraph import Graph, build_component

PROVIDER = "k8s"
UPSTREAM = "upstream"


def alone(make: Callable[[pulumi.ResourceOptions, list[pulumi.Resource]], Any]) -> Graph:
    """Build one component with a provider of its own handed over through its options, and an upstream resource to
    wait for."""
    def program() -> None:
        provider = k8s.Provider(PROVIDER, kubeconfig="apiVersion: v1")
        upstream = command.local.Command(UPSTREAM, create="true")
        make(pulumi.ResourceOptions(providers=[provider]), [upstream])
    return build_component(program)


def kubernetes_children(graph: Graph) -> list[Any]:
    return [r for r in graph if r.type.startswith("kubernetes:") and r.name != PROVIDER]


def assert_well_formed(graph: Graph, name: str) -> None:
    """Children named after the component, under it, on the provider it was given."""
    top = graph.get(name)
    reference = f"{graph.get(PROVIDER).urn}::{PROVIDER}-id"
    children = [r for r in graph if r.name not in (name, PROVIDER, UPSTREAM)]
    assert children
    for child in children:
        assert child.name.startswith(f"{name}-"), child.name
        assert graph.component_of(child) is not None and (child.parent == top.urn or graph.by_urn(child.parent).name
                                                          .startswith(f"{name}-")), child.name
    for child in kubernetes_children(graph):
        assert child.provider == reference, child.name


def test_istio_alone() -> None:
    releases = istio_releases(IstioConfig(resource_profile="chart-defaults"), ingress_node_port=31000)
    graph = alone(lambda opts, _: IstioAmbient("mesh", IstioArgs(releases), opts))
    assert_well_formed(graph, "mesh")
    by_release = {r.inputs["name"]: r.name for r in graph.of_type("kubernetes:helm.sh/v3:Release")}
    assert graph.explicit(by_release["istiod"]) == {by_release["istio-base"]}
    assert graph.explicit(by_release["ztunnel"]) == {by_release["istiod"]}
    assert graph.explicit(by_release["istio-ingressgateway"]) == {by_release["istiod"]}
    assert graph.explicit(by_release["istio-cni"]) == {by_release["istiod"]}
    assert graph.explicit(by_release["istio-base"]) == set()
    gateway = graph.get(by_release["istio-ingressgateway"]).inputs["values"]
    assert {p["name"]: p.get("nodePort") for p in gateway["service"]["ports"]}["http2"] == 31000
    assert all("resources" not in graph.get(n).inputs["values"] for n in by_release.values())
    without = alone(lambda opts, _: IstioAmbient("mesh", IstioArgs(istio_releases(IstioConfig(), None)), opts))
    assert "istio-ingressgateway" not in {r.inputs["name"] for r in without.of_type("kubernetes:helm.sh/v3:Release")}


def test_bookinfo_alone() -> None:
    graph = alone(lambda opts, _: Bookinfo("shop", BookinfoArgs("store", "registry.test/istio", "9.9.9"), opts))
    assert_well_formed(graph, "shop")
    deployments = graph.of_type("kubernetes:apps/v1:Deployment")
    assert len(deployments) == sum(len(s.versions) for s in catalog.BOOKINFO)
    for d in deployments:
        [container] = d.inputs["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith("registry.test/istio/examples-bookinfo-")
        assert container["image"].endswith(":9.9.9")
        assert d.inputs["metadata"]["namespace"] == "store"
        [account] = [sa for sa in graph.of_type("kubernetes:core/v1:ServiceAccount")
                     if sa.inputs["metadata"]["name"] == d.inputs["spec"]["template"]["spec"]["serviceAccountName"]]
        assert graph.explicit(d.name) == {account.name}


def test_curl_clients_alone() -> None:
    graph = alone(lambda opts, after: CurlClients("c", CurlClientsArgs(
        "ns", "curl.test/curl:1", ("one", "two"), avoid={"two": "web"}, wait_for=after), opts))
    assert_well_formed(graph, "c")
    deployments = {d.inputs["metadata"]["name"]: d for d in graph.of_type("kubernetes:apps/v1:Deployment")}
    assert set(deployments) == {"one", "two"}
    assert "affinity" not in deployments["one"].inputs["spec"]["template"]["spec"]
    [term] = deployments["two"].inputs["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {"app": "web"}
    for d in deployments.values():
        assert UPSTREAM in graph.explicit(d.name)


def test_mesh_security_alone() -> None:
    policies = {"only-a": {"action": "ALLOW", "rules": []}}
    graph = alone(lambda opts, after: MeshSecurity("sec", MeshSecurityArgs(
        {"mtls": {"mode": "STRICT"}}, policies, "ns", after, deny_by_default=["other"]), opts))
    assert_well_formed(graph, "sec")
    made = {(r.inputs["kind"], r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r for r in graph
            if r.type.startswith("kubernetes:security.istio.io/")}
    assert set(made) == {("PeerAuthentication", catalog.ISTIO_NAMESPACE, "default"),
                         ("AuthorizationPolicy", "ns", "only-a"), ("AuthorizationPolicy", "other", "allow-nothing")}
    assert all(graph.explicit(r.name) == {UPSTREAM} for r in made.values())


def test_waypoint_alone() -> None:
    config = WaypointConfig(mode="services", name="wp", services=("productpage",))
    graph = alone(lambda opts, after: Waypoint("way", WaypointArgs(
        config, "ns", after, {"productpage": pulumi.Output.from_input("productpage")}), opts))
    assert_well_formed(graph, "way")
    [gateway] = [r for r in graph if r.type.endswith(":Gateway")]
    [patch] = graph.of_type("kubernetes:core/v1:ServicePatch")
    assert gateway.inputs["metadata"]["name"] == "wp" and graph.explicit(gateway.name) == {UPSTREAM}
    assert graph.explicit(patch.name) == {gateway.name}
    assert patch.inputs["metadata"]["labels"] == {catalog.USE_WAYPOINT_LABEL: "wp"}


@pytest.mark.parametrize("create", [True, False])
def test_app_namespace_and_enrolment_alone(create: bool) -> None:
    def make(opts: pulumi.ResourceOptions, after: list[pulumi.Resource]) -> None:
        namespace = AppNamespace("app", AppNamespaceArgs("shop", create), opts)
        AmbientEnrolment("app-ambient", AmbientEnrolmentArgs(namespace.name, after), opts)
    graph = alone(make)
    assert len(graph.of_type("kubernetes:core/v1:Namespace")) == int(create)
    [patch] = graph.of_type("kubernetes:core/v1:NamespacePatch")
    assert patch.inputs["metadata"]["labels"] == catalog.AMBIENT_LABEL
    assert UPSTREAM in graph.explicit(patch.name)


def test_gateway_api_crds_alone() -> None:
    objects = [
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "things.test.io"}, "spec": {"group": "test.io"}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "guard"}, "spec": {"validations": []}},
    ]
    graph = alone(lambda opts, _: GatewayApiCrds("crds", GatewayApiArgs(objects), opts))
    assert_well_formed(graph, "crds")
    assert {r.type for r in kubernetes_children(graph)} == {
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"}


def test_ingresses_alone() -> None:
    istio = alone(lambda opts, after: BookinfoIngress("in", BookinfoIngressArgs("ns", after), opts))
    assert_well_formed(istio, "in")
    assert all(istio.explicit(r.name) == {UPSTREAM} for r in kubernetes_children(istio))
    api = alone(lambda opts, after: BookinfoGatewayApiIngress("gw", GatewayApiIngressArgs("ns", after, 31001), opts))
    assert_well_formed(api, "gw")
    [service] = api.of_type("kubernetes:core/v1:Service")
    assert service.inputs["spec"]["ports"][0]["nodePort"] == 31001


def test_sidecar_namespace_alone_hands_the_provider_down_two_levels() -> None:
    graph = alone(lambda opts, after: SidecarNamespace("side", SidecarNamespaceArgs(
        SidecarConfig(enabled=True, namespace="legacy"), "curl.test/curl:1", after), opts))
    assert_well_formed(graph, "side")
    [deployment] = graph.of_type("kubernetes:apps/v1:Deployment")
    assert UPSTREAM in graph.explicit(deployment.name)  # no pod before the injector serves


def test_cluster_alone() -> None:
    config = ClusterConfig(name="tiny", workers=1, ingress_host_port=9999)
    graph = build_component(lambda: Cluster("k", ClusterArgs(config)))
    create = graph.get("k-kind")
    assert create.inputs["stdin"] == kind_config(config)
    assert graph.depends_on("k-kubeconfig") == {"k-kind"}
    assert graph.get("k-provider").type == "pulumi:providers:kubernetes"


def test_image_preload_alone() -> None:
    def program() -> None:
        cluster = command.local.Command("nodes", create="true")
        gate = command.local.Command("gate", create="true")
        lanes: dict[Lane, dict[str, str]] = {
            "mesh": {"CLUSTER_NAME": "c", "EVERY_NODE_IMAGES": "a:1", "WORKER_IMAGES": ""},
            "app": {"CLUSTER_NAME": "c", "EVERY_NODE_IMAGES": "", "WORKER_IMAGES": ""},  # nothing to load
        }
        ImagePreload("img", ImagePreloadArgs({"IMAGES": "a:1 b:2"}, lanes, [cluster], after=[gate]))
    graph = build_component(program)
    assert graph.get("img-pull").parent == graph.get("img").urn == graph.get("img-load-mesh").parent
    assert graph.explicit("img-pull") == {"gate"}
    assert graph.depends_on("img-load-mesh") == {"img-pull", "nodes"}
    assert graph.get("img-load-mesh").inputs["triggers"] == ["nodes-id"]
    assert not [r for r in graph if r.name == "img-load-app"]
