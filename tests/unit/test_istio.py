"""Istio releases: charts, pins, exact values, and the laptop resource profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.istio import IstioAmbient, IstioArgs
from components.model import charts, versions
from components.model.config import StackConfig
from tests.conftest import base_config, local_charts
from tools.testkit.mockgraph import Graph, Registration, build_component

RELEASE = "kubernetes:helm.sh/v3:Release"



def releases(graph: Graph) -> dict[str, Registration]:
    return {r.inputs["name"]: r for r in graph.of_type(RELEASE)}


def test_every_chart_comes_from_the_configured_repository_at_one_pinned_version(graph: Graph) -> None:
    config = base_config()
    charts = {name: (r.inputs["chart"], r.inputs["version"], r.inputs["repositoryOpts"]["repo"])
              for name, r in releases(graph).items()}
    assert {chart for chart, _, _ in charts.values()} == {"base", "istiod", "cni", "ztunnel", "gateway"}
    assert {version for _, version, _ in charts.values()} == {config.istio.version}
    assert {repo for _, _, repo in charts.values()} == {config.istio.repository}
    assert config.istio.version == versions.ISTIO_VERSION


def test_istiod_and_cni_use_the_ambient_profile(graph: Graph) -> None:
    r = releases(graph)
    assert r["istiod"].inputs["values"]["profile"] == "ambient"
    assert r["istio-cni"].inputs["values"]["profile"] == "ambient"
    assert r["istiod"].inputs["values"]["autoscaleEnabled"] is False
    assert r["istiod"].inputs["values"]["replicaCount"] == 1


def test_ingress_gateway_is_a_nodeport_on_the_port_kind_maps(graph: Graph) -> None:
    config = base_config()
    gateway = releases(graph)["istio-ingressgateway"].inputs["values"]
    assert gateway["service"]["type"] == "NodePort"
    ports = {p["name"]: p for p in gateway["service"]["ports"]}
    assert ports["http2"]["port"] == 80
    assert ports["http2"]["nodePort"] == config.cluster.ingress_node_port
    assert {p["port"] for p in ports.values()} == {15021, 80, 443}
    assert gateway["autoscaling"] == {"enabled": False}


def test_ingress_gateway_pods_carry_the_tutorial_selector(graph: Graph) -> None:
    """The gateway chart labels pods istio=<release name without "istio-">; the Gateway selects that label."""
    release_name = releases(graph)["istio-ingressgateway"].inputs["name"]
    [gateway] = graph.of_type("kubernetes:networking.istio.io/v1:Gateway")
    assert gateway.inputs["spec"]["selector"] == {"istio": release_name.removeprefix("istio-")}
    assert gateway.inputs["spec"]["selector"] == {"istio": "ingressgateway"}


@pytest.mark.parametrize("key", [key for key, chart in charts.CHARTS.items() if chart.requests["laptop"]])
def test_laptop_profile_sets_requests_on_each_chart(graph: Graph, key: str) -> None:
    requests = releases(graph)[charts.CHARTS[key].release].inputs["values"]["resources"]["requests"]
    expected = charts.requests("laptop", key)
    assert requests == {"cpu": f"{expected.cpu_millicores}m", "memory": f"{expected.memory_mib}Mi"}


def test_every_chart_with_pods_has_laptop_requests() -> None:
    assert {k for k, c in charts.CHARTS.items() if c.requests["laptop"]} == set(charts.CHART_DEFAULTS)


def test_laptop_profile_fits_half_a_cpu_and_one_gib_on_three_nodes() -> None:
    total = charts.totals("laptop", nodes=3)
    assert total.cpu_millicores <= 500
    assert total.memory_mib <= 1024


def test_chart_defaults_total_what_the_charts_request() -> None:
    total = charts.totals("chart-defaults", nodes=3)
    # istiod 500m/2Gi + 3 x cni 100m/100Mi + 3 x ztunnel 200m/512Mi + gateway 100m/128Mi
    assert (total.cpu_millicores, total.memory_mib) == (500 + 300 + 600 + 100, 2048 + 300 + 1536 + 128)


def istio_alone(config: StackConfig) -> Graph:
    """The IstioAmbient component alone, from the config's Istio slice (cheaper than the whole stack)."""
    return build_component(lambda: IstioAmbient("istio", IstioArgs(charts.istio_releases(
        config.istio, config.cluster.ingress_node_port))))


def test_chart_defaults_profile_leaves_resources_to_the_charts() -> None:
    graph = istio_alone(base_config(istio={"resourceProfile": "chart-defaults"}))
    for release in graph.of_type(RELEASE):
        assert "resources" not in release.inputs["values"], release.inputs["name"]


def test_local_chart_directory(tmp_path: Path) -> None:
    graph = istio_alone(base_config(istio={"repository": str(local_charts(tmp_path))}))
    for release in graph.of_type(RELEASE):
        assert release.inputs["chart"].startswith(f"{tmp_path.resolve()}/")
        assert "repositoryOpts" not in release.inputs
        assert release.inputs["version"] == versions.ISTIO_VERSION


def test_oci_repository() -> None:
    graph = istio_alone(base_config(istio={"repository": "oci://ghcr.io/istio/release/charts/"}))
    charts = {r.inputs["chart"] for r in graph.of_type(RELEASE)}
    assert "oci://ghcr.io/istio/release/charts/istiod" in charts
