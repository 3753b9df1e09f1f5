"""Traffic management (traffic.routes): the config's checks, each naming its key, and the objects — one Service per
named version and an HTTPRoute whose parent is the service's own Service — in the graph."""

from __future__ import annotations

from typing import Any

import pytest

from components.model import catalog
from components.model.config import ConfigError
from tests.conftest import base_config
from tools.testkit.mockgraph import run_stack

SPLIT = {"reviews": {"v1": 90, "v2": 10}}
WITH_WAYPOINT: dict[str, Any] = {"waypoint": {"mode": "namespace"}}


def split_config(routes: Any = None, **sections: dict[str, Any]) -> Any:
    return base_config(traffic={"routes": SPLIT if routes is None else routes}, **{**WITH_WAYPOINT, **sections})


@pytest.mark.parametrize(("routes", "key", "accepted"), [
    ({"reviewz": {"v1": 100}}, "traffic.routes.reviewz", "a Bookinfo service: details, ratings, reviews, productpage"),
    ({"reviews": {"v1": 90, "v4": 10}}, "traffic.routes.reviews.v4", "a version of reviews: v1, v2, v3"),
    ({"reviews": {"v1": 90.5, "v2": 9.5}}, "traffic.routes.reviews.v1", "an integer weight from 0 to 100"),
    ({"reviews": {"v1": True, "v2": 99}}, "traffic.routes.reviews.v1", "an integer weight from 0 to 100"),
    ({"reviews": {"v1": 80, "v2": 10}}, "traffic.routes.reviews", "weights that sum to 100 (these sum to 90)"),
    ({"reviews": {}}, "traffic.routes.reviews", "an object of reviews's versions"),
    (["reviews"], "traffic.routes", "an object of Bookinfo services to version weights"),
])
def test_a_bad_route_names_its_key(routes: Any, key: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as raised:
        split_config(routes)
    assert raised.value.key == key and raised.value.accepted.startswith(accepted), raised.value


def test_a_route_needs_a_waypoint_serving_the_service() -> None:
    with pytest.raises(ConfigError) as raised:
        split_config(waypoint={"mode": "none"})
    assert raised.value.key == "traffic.routes.reviews" and "a waypoint serves" in raised.value.accepted
    with pytest.raises(ConfigError):
        split_config(waypoint={"mode": "services", "services": ["productpage"]})
    assert split_config(waypoint={"mode": "services", "services": ["reviews"]}).traffic.routes


def test_the_route_and_each_versions_service_in_the_graph() -> None:
    config = split_config()
    graph = run_stack(config)
    [route] = config.traffic.routes
    [http_route] = [r for r in graph.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
                    if r.inputs["metadata"]["name"] == route.service]
    spec = http_route.inputs["spec"]
    assert spec["parentRefs"] == [{"group": "", "kind": "Service", "name": route.service,
                                   "port": catalog.BOOKINFO_PORT}]
    backends = spec["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [(route.version_service(v), w) for v, w in route.weights]
    services = {r.inputs["metadata"]["name"]: r.inputs for r in graph.of_type("kubernetes:core/v1:Service")}
    for version, _ in route.weights:
        selector = services[route.version_service(version)]["spec"]["selector"]
        assert selector == {"app": route.service, "version": version}
    # bookinfo-versions.yaml, as the guide applies it: every version of every service.
    assert {f"{s.name}-{v}" for s in catalog.BOOKINFO for v in s.versions} <= set(services)
    # An HTTPRoute before its CRD is "no matches for kind".
    crds = {r.name for r in graph.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")}
    assert crds <= graph.explicit(http_route.name)
    assert http_route.name in graph.waits_for("smoke-verify")  # the smoke check runs after the route exists


def test_no_route_no_objects(graph: Any) -> None:
    assert not graph.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute") or all(
        r.inputs["spec"]["parentRefs"][0].get("kind") != "Service"
        for r in graph.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"))
    assert not [r for r in graph if r.type == "ambient-mesh:traffic:TrafficRoutes"]
