"""Bookinfo and the curl clients: the tutorial's facts, and that the pieces fit together."""

from __future__ import annotations

import pytest

from components.bookinfo import Bookinfo, BookinfoArgs
from components.model import versions
from tests.conftest import base_config
from tools.testkit.mockgraph import Graph, Registration, build_component, run_stack

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"



def by_name(graph: Graph, type_: str) -> dict[str, Registration]:
    return {r.inputs["metadata"]["name"]: r for r in graph.of_type(type_)}


def pod(deployment: Registration) -> dict:
    return deployment.inputs["spec"]["template"]["spec"]


def test_bookinfo_objects(graph: Graph) -> None:
    assert set(by_name(graph, ACCOUNT)) == {"bookinfo-details", "bookinfo-ratings", "bookinfo-reviews",
                                            "bookinfo-productpage", "sleep", "notsleep"}
    assert set(by_name(graph, SERVICE)) == {"details", "ratings", "reviews", "productpage", "sleep", "notsleep"}
    assert set(by_name(graph, DEPLOYMENT)) == {"details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3",
                                               "productpage-v1", "sleep", "notsleep"}


def test_everything_lands_in_the_app_namespace(graph: Graph) -> None:
    namespace = base_config().app.namespace
    for type_ in (DEPLOYMENT, SERVICE, ACCOUNT):
        for resource in graph.of_type(type_):
            assert resource.inputs["metadata"]["namespace"] == namespace


@pytest.mark.parametrize("service", ["details", "ratings", "reviews", "productpage"])
def test_bookinfo_service(graph: Graph, service: str) -> None:
    svc = by_name(graph, SERVICE)[service].inputs
    assert svc["metadata"]["labels"] == {"app": service, "service": service}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9080, "targetPort": 9080}]
    assert svc["spec"]["selector"] == {"app": service}
    assert by_name(graph, ACCOUNT)[f"bookinfo-{service}"].inputs["metadata"]["labels"] == {"account": service}


def test_every_service_selects_pods_that_listen_on_its_port(graph: Graph) -> None:
    deployments = by_name(graph, DEPLOYMENT).values()
    for name, svc in by_name(graph, SERVICE).items():
        selector = svc.inputs["spec"]["selector"].items()
        selected = [d for d in deployments if selector <= d.inputs["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, name
        for deployment in selected:
            containers = pod(deployment)["containers"]
            container_ports = {p.get("containerPort") for c in containers for p in c.get("ports", [])}
            target = svc.inputs["spec"]["ports"][0].get("targetPort", svc.inputs["spec"]["ports"][0]["port"])
            assert target in container_ports or name in ("sleep", "notsleep"), name


def test_bookinfo_deployments(graph: Graph) -> None:
    tag = base_config().app.bookinfo_tag
    accounts = set(by_name(graph, ACCOUNT))
    for name, deployment in by_name(graph, DEPLOYMENT).items():
        if name in ("sleep", "notsleep"):
            continue
        app, version = name.rsplit("-", 1)
        labels = {"app": app, "version": version}
        assert deployment.inputs["metadata"]["labels"] == labels
        assert deployment.inputs["spec"]["selector"]["matchLabels"] == labels
        assert deployment.inputs["spec"]["template"]["metadata"]["labels"] == labels
        assert deployment.inputs["spec"]["replicas"] == 1
        [container] = pod(deployment)["containers"]
        assert container["image"] == f"docker.io/istio/examples-bookinfo-{app}-{version}:{tag}"
        assert container["ports"] == [{"containerPort": 9080}]
        assert pod(deployment)["serviceAccountName"] == f"bookinfo-{app}"
        assert pod(deployment)["serviceAccountName"] in accounts


def mounts(deployment: Registration) -> dict[str, str]:
    """Mount path -> volume kind."""
    [container] = pod(deployment)["containers"]
    volumes = {v["name"]: v for v in pod(deployment).get("volumes", [])}
    return {m["mountPath"]: next(k for k in volumes[m["name"]] if k != "name")
            for m in container.get("volumeMounts", [])}


def test_reviews_log_dir_and_scratch_volumes(graph: Graph) -> None:
    for version in ("v1", "v2", "v3"):
        reviews = by_name(graph, DEPLOYMENT)[f"reviews-{version}"]
        [container] = pod(reviews)["containers"]
        assert container["env"] == [{"name": "LOG_DIR", "value": "/tmp/logs"}]
        assert mounts(reviews) == {"/tmp": "emptyDir", "/opt/ibm/wlp/output": "emptyDir"}


def test_productpage_scratch_volume(graph: Graph) -> None:
    assert mounts(by_name(graph, DEPLOYMENT)["productpage-v1"]) == {"/tmp": "emptyDir"}


@pytest.mark.parametrize("client", ["sleep", "notsleep"])
def test_curl_clients(graph: Graph, client: str) -> None:
    deployment = by_name(graph, DEPLOYMENT)[client]
    [container] = pod(deployment)["containers"]
    assert container["image"] == versions.CURL_IMAGE
    assert ":" in container["image"].rsplit("/", 1)[1] and not container["image"].endswith(":latest")
    assert container["command"][0].endswith("sleep")
    assert pod(deployment)["serviceAccountName"] == client
    assert pod(deployment)["terminationGracePeriodSeconds"] == 0
    service = by_name(graph, SERVICE)[client].inputs["spec"]
    assert service["ports"] == [{"name": "http", "port": 80}]
    assert service["selector"] == deployment.inputs["spec"]["template"]["metadata"]["labels"]


def test_notsleep_prefers_nodes_away_from_productpage(graph: Graph) -> None:
    notsleep = pod(by_name(graph, DEPLOYMENT)["notsleep"])
    [term] = notsleep["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    productpage_labels = by_name(graph, DEPLOYMENT)["productpage-v1"].inputs["spec"]["template"]["metadata"]["labels"]
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector.items() <= productpage_labels.items()
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert "affinity" not in pod(by_name(graph, DEPLOYMENT)["sleep"])


def test_image_tag_follows_config() -> None:
    config = base_config(app={"bookinfoTag": "1.19.1"})
    graph = build_component(lambda: Bookinfo("bookinfo", BookinfoArgs(
        "default", versions.BOOKINFO_IMAGE_REGISTRY, config.app.bookinfo_tag)))
    images = {pod(d)["containers"][0]["image"] for d in graph.of_type(DEPLOYMENT)}
    assert {i.rsplit(":", 1)[1] for i in images if "bookinfo" in i} == {"1.19.1"}


def test_default_namespace_is_patched_not_created(graph: Graph) -> None:
    assert not [n for n in graph.of_type("kubernetes:core/v1:Namespace") if n.inputs["metadata"]["name"] == "default"]
    [patch] = graph.of_type("kubernetes:core/v1:NamespacePatch")
    assert patch.inputs["metadata"]["name"] == "default"
    assert patch.inputs["metadata"]["labels"] == {"istio.io/dataplane-mode": "ambient"}


def test_own_namespace_is_created_and_then_enrolled() -> None:
    graph = run_stack(base_config(app={"namespace": "bookinfo"}))
    [namespace] = [n for n in graph.of_type("kubernetes:core/v1:Namespace")
                   if n.inputs["metadata"]["name"] == "bookinfo"]
    assert "labels" not in namespace.inputs["metadata"]  # the label is the enrolment's, applied after ztunnel
    [patch] = graph.of_type("kubernetes:core/v1:NamespacePatch")
    assert namespace.name in graph.depends_on(patch.name)
    for deployment in graph.of_type(DEPLOYMENT):
        assert deployment.inputs["metadata"]["namespace"] == "bookinfo"
        assert namespace.name in graph.depends_on(deployment.name)
    assert graph.outputs["appNamespace"] == "bookinfo"
