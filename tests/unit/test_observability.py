"""Observability (observability.addons): Istio's add-on files read at start-up, their objects in the graph, each
workload after its ServiceAccount and its images, laptop-sized requests, and the add-ons counted in what is preloaded
and in Docker's need. The files are the test stand-ins in tests/fixtures/addons (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.model import addons, images, preflight
from components.model.config import ConfigError
from tests.conftest import REPO, base_config
from tools.testkit.mockgraph import run_stack

FIXTURES = REPO / "tests" / "fixtures" / "addons"
ALL = ["prometheus", "kiali", "grafana"]


def with_addons(names: list[str] = ALL, **sections: dict[str, Any]) -> Any:
    return base_config(observability={"addons": names, "source": str(FIXTURES)}, **sections)


def file_objects(addon: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((FIXTURES / f"{addon}.yaml").read_text()) if doc]


@pytest.mark.parametrize(("section", "key", "accepted"), [
    ({"addons": ["jaeger"]}, "observability.addons", "Istio's add-ons: prometheus, kiali, grafana"),
    ({"addons": ["kiali"]}, "observability.addons", "a list with prometheus too: kiali reads its metrics"),
    ({"addons": ["grafana"]}, "observability.addons", "a list with prometheus too: grafana"),
    ({"addons": ["prometheus"], "source": "/nonexistent"}, "observability.source", "a local directory with"),
])
def test_a_bad_value_names_its_key(section: dict[str, Any], key: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as raised:
        base_config(observability=section)
    assert raised.value.key == key and raised.value.accepted.startswith(accepted), raised.value


def test_a_file_that_is_not_the_addon_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(ConfigError) as raised:
        addons.addon_objects(base_config(observability={"addons": ["prometheus"], "source": str(tmp_path)}))
    assert raised.value.key == "observability.source" and "Deployment" in raised.value.accepted


def test_the_addons_are_in_docs_order_and_their_default_source_is_the_release_branch() -> None:
    config = with_addons(["grafana", "kiali", "prometheus"])
    assert config.observability.addons == tuple(ALL)
    url = addons.addon_source(base_config().observability, "1.31.1", "kiali")
    assert url == "https://raw.githubusercontent.com/istio/istio/release-1.31/samples/addons/kiali.yaml"


def test_every_object_of_each_file_is_in_the_graph_after_what_it_needs() -> None:
    graph = run_stack(with_addons())
    made = {(r.type.rsplit(":", 1)[-1], r.inputs["metadata"]["name"]): r for r in graph
            if r.name.startswith("observability-")}
    for addon in ALL:
        for doc in file_objects(addon):
            assert (doc["kind"], doc["metadata"]["name"]) in made, (addon, doc["kind"], doc["metadata"]["name"])
    deployment = made[("Deployment", "prometheus")]
    waits = graph.explicit(deployment.name)
    assert made[("ServiceAccount", "prometheus")].name in waits and "istio-namespace" in waits
    assert "images-load-app" in waits and "images-load-mesh" not in graph.waits_for(deployment.name)
    # Nothing of Istio's or of the app waits for the add-ons.
    for release in graph.of_type("kubernetes:helm.sh/v3:Release"):
        assert not {r.name for r in made.values()} & graph.waits_for(release.name)


def test_laptop_requests_only_where_the_addon_requests_nothing() -> None:
    laptop = addons.addon_objects(with_addons())
    containers = {c["name"]: c for docs in laptop.values() for d in docs if d["kind"] == "Deployment"
                  for c in d["spec"]["template"]["spec"]["containers"]}
    cpu, memory = addons.LAPTOP_REQUESTS["prometheus-server"]
    assert containers["prometheus-server"]["resources"]["requests"] == {"cpu": f"{cpu}m", "memory": f"{memory}Mi"}
    kiali = next(c for d in file_objects("kiali") if d["kind"] == "Deployment"
                 for c in d["spec"]["template"]["spec"]["containers"])
    assert containers["kiali"]["resources"] == kiali["resources"]  # its own, kept
    defaults = addons.addon_objects(with_addons(istio={"resourceProfile": "chart-defaults"}))
    assert defaults == {a: file_objects(a) for a in ALL}  # the files as Istio ships them


def test_the_addons_images_are_preloaded_and_counted_in_dockers_need() -> None:
    config = with_addons()
    wanted = {c["image"] for a in ALL for d in file_objects(a) if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert wanted <= set(images.images(config)) and not wanted & set(images.images(base_config()))
    assert wanted <= set(images.preload(config, "app").images)
    with_them, without = preflight.need(config), preflight.need(base_config())
    cpu, memory = addons.requests(addons.addon_objects(config))
    assert with_them.memory_mib - without.memory_mib == memory and memory > 0
    assert with_them.cpu_millicores - without.cpu_millicores == cpu
