"""Ingress routing: the Gateway and VirtualService that expose productpage."""

from __future__ import annotations

from tests.conftest import base_config
from tools.testkit.mockgraph import Graph, Registration


def one(graph: Graph, kind: str) -> Registration:
    [found] = graph.of_type(f"kubernetes:networking.istio.io/v1:{kind}")
    return found


def test_gateway(graph: Graph) -> None:
    gateway = one(graph, "Gateway").inputs
    assert gateway["apiVersion"] == "networking.istio.io/v1"
    assert gateway["metadata"] == {"name": "bookinfo-gateway", "namespace": base_config().app.namespace}
    [server] = gateway["spec"]["servers"]
    assert server == {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}


def test_gateway_listens_on_a_port_the_gateway_service_exposes(graph: Graph) -> None:
    [release] = [r for r in graph.of_type("kubernetes:helm.sh/v3:Release")
                 if r.inputs["name"] == "istio-ingressgateway"]
    service_ports = {p["port"] for p in release.inputs["values"]["service"]["ports"]}
    assert one(graph, "Gateway").inputs["spec"]["servers"][0]["port"]["number"] in service_ports


def test_virtual_service_routes_the_five_productpage_paths(graph: Graph) -> None:
    vs = one(graph, "VirtualService").inputs
    assert vs["metadata"]["name"] == "bookinfo"
    assert vs["spec"]["gateways"] == [one(graph, "Gateway").inputs["metadata"]["name"]]
    assert vs["spec"]["hosts"] == ["*"]
    [http] = vs["spec"]["http"]
    assert http["match"] == [
        {"uri": {"exact": "/productpage"}},
        {"uri": {"prefix": "/static"}},
        {"uri": {"exact": "/login"}},
        {"uri": {"exact": "/logout"}},
        {"uri": {"prefix": "/api/v1/products"}},
    ]
    [route] = http["route"]
    assert route == {"destination": {"host": "productpage", "port": {"number": 9080}}}


def test_route_destination_is_a_real_service_port(graph: Graph) -> None:
    destination = one(graph, "VirtualService").inputs["spec"]["http"][0]["route"][0]["destination"]
    services = {s.inputs["metadata"]["name"]: s for s in graph.of_type("kubernetes:core/v1:Service")}
    ports = {p["port"] for p in services[destination["host"]].inputs["spec"]["ports"]}
    assert destination["port"]["number"] in ports
