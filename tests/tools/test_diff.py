"""The offline plan diff (tools/diff): each kind of change a pull request makes gives the expected summary and field
lines, and nothing else; a no-op says "no changes".

Config changes are rendered from modified copies of the repository's stack files; code changes by patching the
model in this process (the end-to-end test in test_diff_git.py makes both as a real commit). Both sides render the
test stand-in Gateway API bundle, so only what the fixture changes can differ.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.model import charts, specs
from components.model.addons import requests as addon_requests
from tests.conftest import GATEWAY_API_FIXTURE, STACK_FILES, stack_name
from tools import render
from tools.diff import report as formats
from tools.diff.compare import Item, Report, diff_stack, field_changes
from tools.diff.snapshot import Snapshot, build_report, from_render
from tools.testkit import mockgraph

pytestmark = pytest.mark.tools

Overrides = dict[str, dict[str, dict[str, Any]]]  # stack -> section -> key -> value


def render_all(tmp_path: Path, overrides: Overrides | None = None) -> dict[str, Snapshot]:
    """Every stack file, with per-stack config overrides, rendered here."""
    found = {}
    for stack_file in STACK_FILES:
        stack = stack_name(stack_file)
        document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
        for section, values in (overrides or {}).get(stack, {}).items():
            document["config"][f"ambient-mesh:{section}"].update(values)
        path = tmp_path / stack_file.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        found[stack] = from_render(render.render_stack(path, gateway_api_crds=str(GATEWAY_API_FIXTURE)))
    return found


_base: dict[str, Snapshot] = {}


@pytest.fixture
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snapshot]:
    if not _base:
        _base.update(render_all(tmp_path_factory.mktemp("base")))
    return _base


@pytest.fixture
def fresh_graphs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A code change: graphs evaluated again (mockgraph caches them by config)."""
    monkeypatch.setattr(mockgraph, "_graphs", {})
    yield


def diff(base: dict[str, Snapshot], tmp_path: Path, overrides: Overrides | None = None) -> Report:
    return build_report(base, render_all(tmp_path / "head", overrides), "base", "head")


def lines(report: Report, stack: str, title: str) -> list[str]:
    [change] = [c for s in report.stacks if s.stack == stack for c in s.changes if c.title == title]
    return [line for f in change.fields for line in formats.field_lines(f)]


def ops(report: Report, stack: str) -> dict[str, str]:
    """title -> op of every object with a change of its own (not merely recreated with the cluster)."""
    [found] = [s for s in report.stacks if s.stack == stack]
    return {c.title: c.op for c in found.changes if not c.cascade or c.fields}


GATEWAY = "Helm release istio-system/istio-ingressgateway (chart gateway)"
ISTIOD = "Helm release istio-system/istiod (chart istiod)"
SMOKE = "command smoke-verify"
VIRTUAL_SERVICE = "VirtualService default/bookinfo"


def test_no_op_says_no_changes(base: dict[str, Snapshot], tmp_path: Path) -> None:
    report = diff(base, tmp_path)
    assert not report.changed and report.counts == {"create": 0, "update": 0, "replace": 0, "delete": 0}
    text = formats.text(report)
    assert "dev (Istio 1.31.1): no changes" in text and "zero-trust (Istio 1.31.1): no changes" in text
    assert "No changes" in text and "**No changes**" in formats.markdown(report)
    assert "<details>" not in formats.markdown(report)


def test_a_resource_request(base: dict[str, Snapshot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            fresh_graphs: None) -> None:
    istiod = charts.CHARTS["istiod"]
    monkeypatch.setitem(charts.CHARTS, "istiod", dataclasses.replace(
        istiod, requests={**istiod.requests, "laptop": charts.Requests(150, 256)}))
    report = diff(base, tmp_path)
    for stack in ("dev", "zero-trust"):
        assert ops(report, stack) == {ISTIOD: "update"}
        assert lines(report, stack, ISTIOD) == ["~ values.resources.requests.cpu: 100m → 150m"]
    assert "dev (Istio 1.31.1): 1 to update" in formats.text(report)
    assert "istio-system/istiod: update, chart istiod 1.31.1, 1 value changed" in formats.text(report)


def test_a_virtual_service_match_added(base: dict[str, Snapshot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       fresh_graphs: None) -> None:
    routes = list(specs.PRODUCTPAGE_ROUTES)
    routes.insert(2, ("prefix", "/api/v1/ratings"))
    monkeypatch.setattr(specs, "PRODUCTPAGE_ROUTES", tuple(routes))
    report = diff(base, tmp_path)
    for stack in ("dev", "zero-trust"):
        assert ops(report, stack) == {VIRTUAL_SERVICE: "update"}
        # The entry added, not the shift of the three after it.
        assert lines(report, stack, VIRTUAL_SERVICE) == ["+ spec.http[0].match[2]: {uri: {prefix: /api/v1/ratings}}"]


def test_the_ingress_node_port(base: dict[str, Snapshot], tmp_path: Path) -> None:
    report = diff(base, tmp_path, {"dev": {"cluster": {"ingressNodePort": 30081}}})
    assert ops(report, "zero-trust") == {}
    assert ops(report, "dev") == {"kind cluster ambient": "replace", GATEWAY: "replace", SMOKE: "replace"}
    assert lines(report, "dev", GATEWAY) == ["~ values.service.ports[name=http2].nodePort: 30080 → 30081"]
    assert lines(report, "dev", "kind cluster ambient") == [
        "~ nodes[0].extraPortMappings[containerPort=30081].containerPort: 30080 → 30081"]
    assert lines(report, "dev", SMOKE) == ["~ triggers.cluster.ingress_node_port: 30080 → 30081"]
    text = formats.text(report)
    # The kind cluster is replaced: flagged first, with everything that goes with it.
    flags = text.split("REPLACED OR DELETED (check these first):\n", 1)[1].split("\n\n", 1)[0]
    assert flags.splitlines()[0].startswith("  dev: REPLACE kind cluster ambient: the kind cluster's config changed")
    assert "objects replaced with it" in flags and SMOKE not in flags  # the smoke check only runs again
    assert "Run again: dev: command smoke-verify" in text
    [dev] = [s for s in report.stacks if s.stack == "dev"]
    everything_in_the_cluster = sum(1 for item in base["dev"].items.values() if item.role in ("object", "patch",
                                                                                             "helmrelease"))
    # ... and the commands that run on the new cluster: the kind cluster, the smoke check, reading the kubeconfig,
    # loading the images (the mesh's and the app's).
    assert dev.counts == {"create": 0, "update": 0, "replace": everything_in_the_cluster + 5, "delete": 0}
    reruns = {c.title for c in dev.changes if c.rerun}
    assert reruns == {SMOKE, "command cluster-kubeconfig", "command images-load-mesh", "command images-load-app"}


def test_the_istio_version(base: dict[str, Snapshot], tmp_path: Path) -> None:
    both = {"istio": {"version": "1.31.2"}}
    report = diff(base, tmp_path, {"dev": both, "zero-trust": both})
    for stack in ("dev", "zero-trust"):
        releases = {title for title, op in ops(report, stack).items() if title.startswith("Helm release")}
        assert len(releases) == 5 and all(ops(report, stack)[title] == "update" for title in releases)
        assert lines(report, stack, ISTIOD) == ["~ values.global.tag: 1.31.1 → 1.31.2",
                                                "~ version: 1.31.1 → 1.31.2"]
        assert ops(report, stack)[SMOKE] == "replace"
    # The preflight checks the new version; the new images are pulled, and loaded by the mesh's load (the app's
    # images do not change).
    for stack in ("dev", "zero-trust"):
        assert {title for title, op in ops(report, stack).items() if title.startswith("command")} == {
            SMOKE, "command cluster-preflight", "command images-pull", "command images-load-mesh"}
    text = formats.text(report)
    assert "dev (Istio 1.31.1 → 1.31.2): 8 to update, 1 to replace" in text
    assert "istio-system/istiod: update, chart istiod 1.31.1 → 1.31.2" in text
    assert "| `dev` | 1.31.1 → 1.31.2 | 0 | 8 | **1** | 0 |" in formats.markdown(report)


def test_a_change_that_forces_a_replacement(base: dict[str, Snapshot], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, fresh_graphs: None) -> None:
    """A Helm release renamed: the same Pulumi resource, another release: Helm uninstalls and installs."""
    istiod = charts.CHARTS["istiod"]
    monkeypatch.setitem(charts.CHARTS, "istiod", dataclasses.replace(istiod, release="istiod-main"))
    report = diff(base, tmp_path)
    [dev] = [s for s in report.stacks if s.stack == "dev"]
    [change] = [c for c in dev.changes if c.op == "replace"]
    assert change.title == "Helm release istio-system/istiod-main (chart istiod)"
    assert change.old_filename == "helmrelease-istio-system-istiod.yaml"
    assert change.reasons == ["the release name changes: Helm uninstalls it and installs the new one (name)"]
    assert [line for f in change.fields for line in formats.field_lines(f)] == ["~ name: istiod → istiod-main"]
    assert dev.counts == {"create": 0, "update": 0, "replace": 1, "delete": 0}
    assert "dev: REPLACE Helm release istio-system/istiod-main (chart istiod)" in formats.text(report)
    assert "**replace** `Helm release istio-system/istiod-main (chart istiod)`" in formats.markdown(report)


def test_the_kind_cluster_workers_replace_the_cluster(base: dict[str, Snapshot], tmp_path: Path) -> None:
    report = diff(base, tmp_path, {"dev": {"cluster": {"workers": 3}}})
    # The preflight checks one more node; the images go to one more node, and again to all on the new cluster.
    assert ops(report, "dev") == {"kind cluster ambient": "replace", SMOKE: "replace",
                                  "command cluster-preflight": "update", "command images-load-mesh": "replace",
                                  "command images-load-app": "replace"}
    assert lines(report, "dev", "kind cluster ambient") == ["+ nodes[3]: {role: worker}"]


def test_a_change_in_only_the_zero_trust_stack(base: dict[str, Snapshot], tmp_path: Path) -> None:
    report = diff(base, tmp_path, {"zero-trust": {"security": {"l7Methods": ["GET", "HEAD"]}}})
    assert ops(report, "dev") == {}
    assert ops(report, "zero-trust") == {"AuthorizationPolicy default/productpage-l7": "update", SMOKE: "replace"}
    assert lines(report, "zero-trust", "AuthorizationPolicy default/productpage-l7") == [
        "+ spec.rules[0].to[0].operation.methods[1]: HEAD"]
    assert lines(report, "zero-trust", SMOKE) == ["+ triggers.security.l7_methods[1]: HEAD"]
    text = formats.text(report)
    assert "dev (Istio 1.31.1): no changes" in text
    assert "zero-trust (Istio 1.31.1): 1 to update, 1 to replace" in text
    assert "== dev" not in text and "REPLACED OR DELETED" not in text



# --- the getting-started stack's own objects: the traffic split and the add-ons ---------------------------------

GETTING_STARTED = "getting-started"


def unchanged_elsewhere(report: Report, stack: str) -> None:
    """Every stack but `stack` says "no changes": the change is that stack's config alone."""
    others = [s for s in report.stacks if s.stack != stack]
    assert others and all(not s.changes and not any(s.counts.values()) for s in others)


def test_a_traffic_weight_on_the_getting_started_stack(base: dict[str, Snapshot], tmp_path: Path) -> None:
    """reviews 90/10 becomes 80/20: the HTTPRoute the program registers for reviews is updated, its two weights and
    nothing else; the check that counts the split runs again."""
    before = base[GETTING_STARTED]
    routes = {r.service: dict(r.weights) for r in before.config.traffic.routes}
    shifted = {"v1": 80, "v2": 20}
    assert routes["reviews"].keys() == shifted.keys() and routes["reviews"] != shifted  # the change is a real one
    report = diff(base, tmp_path, {GETTING_STARTED: {"traffic": {"routes": {**routes, "reviews": shifted}}}})
    # The route as the base registered it: its title, and its backends' weights, which are the stack file's.
    [route] = [r for r in before.config.traffic.routes if r.service == "reviews"]
    [component] = before.graph.of_type("ambient-mesh:traffic:TrafficRoutes")
    children = {r.name for r in before.graph.children(component.name)}
    [registered] = [i for i in before.items.values()
                    if i.resource_name in children and i.kind == "HTTPRoute"
                    and i.body["metadata"]["name"] == route.service]
    version_of = {route.version_service(version): version for version in routes["reviews"]}
    backends = [(n, ref) for n, rule in enumerate(registered.body["spec"]["rules"]) for ref in rule["backendRefs"]]
    assert {version_of[ref["name"]]: ref["weight"] for _, ref in backends} == routes["reviews"]
    expected = [f"~ spec.rules[{n}].backendRefs[name={ref['name']}].weight: {ref['weight']} → "
                f"{shifted[version_of[ref['name']]]}" for n, ref in backends
                if ref["weight"] != shifted[version_of[ref["name"]]]]
    assert len(expected) == 2
    assert ops(report, GETTING_STARTED) == {registered.title: "update", SMOKE: "replace"}
    assert lines(report, GETTING_STARTED, registered.title) == expected
    # The smoke check's triggers hold the split (verify checks it): it runs again, it deletes nothing.
    assert all(line.startswith("~ triggers.traffic.routes[") for line in lines(report, GETTING_STARTED, SMOKE))
    unchanged_elsewhere(report, GETTING_STARTED)
    text = formats.text(report)
    assert f"{GETTING_STARTED} (Istio {before.config.istio.version}): 1 to update, 1 to replace" in text
    assert "REPLACED OR DELETED" not in text


def images_of(body: dict[str, Any]) -> set[str]:
    pod = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {c["image"] for key in ("containers", "initContainers") for c in pod.get(key) or []}


def test_an_add_on_switched_off_on_the_getting_started_stack(base: dict[str, Snapshot], tmp_path: Path) -> None:
    """grafana dropped from observability.addons: every object the Observability component registered for grafana
    is deleted, nothing else of the cluster's changes; its image leaves the pull and the load, its requests leave
    the preflight's memory need."""
    before = base[GETTING_STARTED]
    addons = list(before.config.observability.addons)
    assert "grafana" in addons
    # What the program registered for grafana: the component's children it names <component>-grafana-<kind>-<name>.
    [component] = before.graph.of_type("ambient-mesh:observability:Observability")
    names = {r.name for r in before.graph.children(component.name) if r.name.startswith(f"{component.name}-grafana-")}
    grafana = [i for i in before.items.values() if i.resource_name in names]
    assert grafana and {i.resource_name for i in grafana} == names  # each registration rendered, as one file
    without = [addon for addon in addons if addon != "grafana"]
    report = diff(base, tmp_path, {GETTING_STARTED: {"observability": {"addons": without}}})
    [stack] = [s for s in report.stacks if s.stack == GETTING_STARTED]
    found = ops(report, GETTING_STARTED)
    assert {title for title, op in found.items() if op == "delete"} == {i.title for i in grafana}
    assert stack.counts["delete"] == len(grafana) and stack.counts["create"] == 0
    # Besides the deletes, only what runs around the cluster: the check runs again (its triggers name the add-ons),
    # the preflight, the pull and the load of the app's images.
    assert {title: op for title, op in found.items() if op != "delete"} == {
        SMOKE: "replace", "command cluster-preflight": "update", "command images-pull": "update",
        "command images-load-app": "update"}
    assert lines(report, GETTING_STARTED, SMOKE) == [
        f"- triggers.observability.addons[{addons.index('grafana')}]: grafana"]
    changes = {c.title: c for c in stack.changes}
    images = set().union(*(images_of(i.body) for i in grafana))
    assert images
    for title in ("command images-pull", "command images-load-app"):
        [field] = changes[title].fields
        old, new = set(field.old.split()), set(field.new.split())
        assert new < old and old - new == images
    [field] = changes["command cluster-preflight"].fields
    old_mib, new_mib = (int(re.findall(r"--need-memory-mib (\d+)", side)[0]) for side in (field.old, field.new))
    assert old_mib - new_mib == addon_requests({"grafana": [i.body for i in grafana]})[1] > 0
    unchanged_elsewhere(report, GETTING_STARTED)
    text = formats.text(report)
    for item_ in grafana:
        assert f"{GETTING_STARTED}: DELETE {item_.title}" in text


# --- the differ's rules on small objects ------------------------------------------------------------------------

def item(body: dict[str, Any], filename: str = "deployment-default-app.yaml", role: str = "object") -> Item:
    return Item(filename, role, "kubernetes:apps/v1:Deployment", "app", body)


DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": "default"},
    "spec": {"selector": {"matchLabels": {"app": "app"}}, "template": {"spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "proxy", "image": "proxy:1"}]}}},
}


def changed(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(DEPLOYMENT)
    edit(body)
    return body


def test_an_immutable_selector_forces_a_replacement() -> None:
    new = changed(lambda b: b["spec"]["selector"]["matchLabels"].update(app="app2"))
    result = diff_stack("s", {"a": item(DEPLOYMENT, "a")}, {"a": item(new, "a")})
    [change] = result.changes
    assert change.op == "replace" and "spec.selector is immutable" in change.reasons[0]


def test_named_entries_pair_by_name() -> None:
    def edit(body: dict[str, Any]) -> None:
        containers = body["spec"]["template"]["spec"]["containers"]
        containers.insert(0, {"name": "init", "image": "init:1"})
        containers[2]["image"] = "proxy:2"
    found = [line for f in field_changes(item(DEPLOYMENT), item(changed(edit))) for line in formats.field_lines(f)]
    assert found == ["+ spec.template.spec.containers[name=init]: {name: init, image: 'init:1'}",
                     "~ spec.template.spec.containers[name=proxy].image: proxy:1 → proxy:2"]


def test_secrets_are_redacted_and_their_change_still_shown() -> None:
    def edit(body: dict[str, Any]) -> None:
        body["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
        body["spec"]["template"]["spec"]["containers"][0]["token"] = "hunter2"  # noqa: S105 - a fake, to be redacted
    old = item(changed(lambda b: b["spec"]["template"]["spec"]["containers"][0].update(token="swordfish")))  # noqa: S106
    found = [line for f in field_changes(old, item(changed(edit))) for line in formats.field_lines(f)]
    assert found == ["~ spec.template.spec.containers[name=app].env[name=A].value: '1' → '2'",
                     "~ spec.template.spec.containers[name=app].token: [secret] (changed)"]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"key": "c2VjcmV0"}}
    rotated = {**secret, "data": {"key": "bmV3"}}
    result = diff_stack("s", {"s": Item("s", "object", "kubernetes:core/v1:Secret", "s", secret)},
                        {"s": Item("s", "object", "kubernetes:core/v1:Secret", "s", rotated)})
    text = "\n".join(formats.detail_lines(result.changes[0]))
    assert "c2VjcmV0" not in text and "bmV3" not in text and "[secret] (changed)" in text
    assert result.changes[0].op == "replace"


def test_multi_line_and_long_strings_show_what_changed() -> None:
    old = item({**DEPLOYMENT, "script": "set -eu\nkind create cluster\necho done\n",
                "command": "verify " + " ".join(f"--flag{i}" for i in range(30)) + " --host-url http://x:8080/"})
    new = item({**DEPLOYMENT, "script": "set -eu\nkind create cluster --wait 60s\necho done\n",
                "command": "verify " + " ".join(f"--flag{i}" for i in range(30)) + " --host-url http://x:8081/"})
    found = [line for f in field_changes(old, new) for line in formats.field_lines(f)]
    assert found == ["~ command: … --host-url http://x:8080/ … → … --host-url http://x:8081/ …",
                     "~ script:", "    @@ -1,3 +1,3 @@", "     set -eu", "    -kind create cluster",
                     "    +kind create cluster --wait 60s", "     echo done"]


def test_a_deleted_object_is_flagged_and_a_stack_file_added_is_all_creates() -> None:
    result = diff_stack("s", {"a": item(DEPLOYMENT, "a")}, {})
    assert result.counts["delete"] == 1 and result.changes[0].flagged
    report = Report("b", "h", [result, diff_stack("new", None, {"a": item(DEPLOYMENT, "a")})])
    text = formats.text(report)
    assert "s: DELETE Deployment default/app" in text and "new (new stack) (no Istio): 1 to create" in text


def test_report_survives_json() -> None:
    new = changed(lambda b: b["spec"]["selector"]["matchLabels"].update(app="app2"))
    report = Report("b", "h", [diff_stack("s", {"a": item(DEPLOYMENT, "a")}, {"a": item(new, "a")})])
    again = Report.from_json(yaml.safe_load(yaml.safe_dump(report.to_json())))
    assert formats.text(again) == formats.text(report) and formats.markdown(again) == formats.markdown(report)


def test_a_removed_stack_is_one_flag_not_one_per_object() -> None:
    items = {"a": item(DEPLOYMENT, "a"), "b": item(DEPLOYMENT, "b")}
    report = Report("b", "h", [diff_stack("old", items, None), diff_stack("dev", items, items)])
    text = formats.text(report)
    assert "old (stack removed) (no Istio): 2 to delete" in text
    flags = text.split("REPLACED OR DELETED (check these first):\n", 1)[1].split("\n\n", 1)[0]
    assert flags.splitlines() == [
        "  old: its stack file is gone: `pulumi destroy` of that stack would delete 2 objects (nothing deletes them by "
        "itself)"]


def test_the_policy_pack_runs_on_the_heads_graph_with_the_stacks_own_config() -> None:
    from tests.conftest import base_config
    from tools.diff.policy import run_pack

    graph = mockgraph.run_stack(base_config())
    assert run_pack("dev", graph).passed
    # policy/config.zero-trust.json turns zero trust on: the tutorial's graph (no AuthorizationPolicy) fails it.
    zero_trust = run_pack("zero-trust", graph)
    assert zero_trust.config_file == "policy/config.zero-trust.json"
    assert list(zero_trust.violations) == ["zero-trust-authorization-policy"]
