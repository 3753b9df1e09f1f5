"""Every object the stack creates, under every config switch, validates offline against published schemas.

Core kinds: kubernetes-validate's strict schemas for Kubernetes tools.testkit.schemas.KUBERNETES_VERSION. Istio and
Gateway API kinds: the CRDs of the pinned istio.io/api and sigs.k8s.io/gateway-api modules, made strict (unknown
fields are errors). A kind without a published schema fails: nothing is waved through.

Istio's add-ons: every object of Istio's own samples/addons files (the pinned istio.io/istio snapshot, fetched with
the schema modules), as the stack's observability code path applies them, under each resource profile.

Config switches: every Literal or bool key of every config section is picked up by itself (each value other than
Pulumi.dev.yaml's is rendered once); add to EXTRA_KEYS what such a value needs to parse, and to VARIANTS any other
value or combination worth rendering.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pulumi.runtime import rpc

from components.model import addons, versions
from components.model.config import RESOURCE_PROFILES, SECTIONS, StackConfig
from tests.conftest import (
    GATEWAY_API_FIXTURE,
    STACK_FILES,
    base_config,
    base_raw_config,
    stack_config,
    stack_name,
)
from tests.engine import upstream
from tools import render
from tools.testkit import schemas
from tools.testkit.mockgraph import Graph

# Without the pinned schema modules (no Go to fetch them) this tier says so instead of failing on a traceback.
pytestmark = [pytest.mark.schema,
              pytest.mark.skipif(bool(schemas.missing_modules()),
                                 reason=f"{schemas.NEEDS_GO}: missing {', '.join(schemas.missing_modules())}")]

# --- the configurations rendered ----------------------------------------------------------------------------------

# Keys that a switch value needs beside itself to be a valid config: (section, key, value) -> per-section overrides.
# Sections the config does not have (yet) are left out.
EXTRA_KEYS: dict[tuple[str, str, Any], dict[str, dict[str, Any]]] = {
    ("cluster", "provider", "existing"): {"cluster": {"context": "minikube"}},
    ("app", "ingress", "none"): {"security": {"productpageClients": ["sleep"]}},
    ("waypoint", "mode", "services"): {"waypoint": {"services": ["productpage"]}},
}

# Values that are not Literal/bool switches but change what is created (id -> per-section overrides).
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "dev": {},
    "app.namespace=bookinfo": {"app": {"namespace": "bookinfo"}},  # creates the Namespace
    # The L7 AuthorizationPolicy (targetRefs at the waypoint) exists only with l7Clients and a waypoint.
    "zero-trust-all-on": {"app": {"namespace": "bookinfo", "ingress": "gateway-api"},
                          "waypoint": {"mode": "namespace"}, "security": {"l7Clients": ["sleep"]},
                          "sidecar": {"enabled": True}},
    # The traffic split: version Services and an HTTPRoute whose parent is a Service (GAMMA).
    "traffic.routes": {"waypoint": {"mode": "namespace"}, "traffic": {"routes": {"reviews": {"v1": 90, "v2": 10}}}},
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def switch_values() -> list[tuple[str, str, Any]]:
    """(section, key, value) for every Literal or bool config value other than the dev stack's own."""
    dev = base_config()
    found: list[tuple[str, str, Any]] = []
    for stack_field in fields(StackConfig):
        section = _camel(stack_field.name)
        if section not in SECTIONS:
            continue
        current = getattr(dev, stack_field.name)
        hints = typing.get_type_hints(type(current))
        for f in fields(current):
            key = _camel(f.name)
            if key not in SECTIONS[section]:
                continue
            hint = hints[f.name]
            choices: tuple[Any, ...] = (True, False) if hint is bool else (
                typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ())
            found += [(section, key, value) for value in choices if value != getattr(current, f.name)]
    return found


def switch_variants() -> dict[str, dict[str, dict[str, Any]]]:
    """Every switch value at least once, in as few configs as possible: config k takes each key's k-th other value.

    Each graph takes a fifth of a second to build; one config per value would be a dozen of them.
    """
    by_key: dict[tuple[str, str], list[Any]] = {}
    for section, key, value in switch_values():
        by_key.setdefault((section, key), []).append(value)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for index in range(max(len(values) for values in by_key.values())):
        overrides: dict[str, dict[str, Any]] = {}
        for (section, key), values in by_key.items():
            if index < len(values):
                overrides.setdefault(section, {})[key] = values[index]
                for extra_section, extra in EXTRA_KEYS.get((section, key, values[index]), {}).items():
                    if extra_section in SECTIONS:
                        overrides.setdefault(extra_section, {}).update(extra)
        found[f"switches-{index + 1}"] = overrides
    return found


def variant_with(section: str, key: str, value: Any) -> str:
    """The rendered variant that sets section.key to value."""
    [found] = [name for name, overrides in ALL_VARIANTS.items() if overrides.get(section, {}).get(key) == value
               and name.startswith("switches-")]
    return found


ALL_VARIANTS = {**VARIANTS, **switch_variants()}

_renders: dict[str, list[render.Rendered]] = {}


def rendered(variant: str, graph: Graph) -> list[render.Rendered]:
    if variant not in _renders:
        if variant == "dev":
            _renders[variant] = render.render_graph(graph)  # the session's dev graph: evaluated once
        else:
            _renders[variant] = render.render_config(base_config(**ALL_VARIANTS[variant]))
    return _renders[variant]


_verdicts: dict[str, list[str]] = {}


def verdict(item: render.Rendered, kubernetes_version: str) -> list[str]:
    """Schema errors of one rendered object; identical objects (most, across variants) are checked once."""
    key = kubernetes_version + item.role + json.dumps(item.body, sort_keys=True)
    if key not in _verdicts:
        try:
            _verdicts[key] = schemas.errors(item.body, kubernetes_version, partial=item.role == "patch")
        except schemas.SchemaNotFound as missing:
            _verdicts[key] = [f"no published schema: {missing}"]
    return _verdicts[key]


def test_every_config_switch_is_rendered() -> None:
    values = switch_values()
    assert {("cluster", "provider", "existing"), ("istio", "resourceProfile", "chart-defaults"),
            ("gatewayApi", "mode", "skip"), ("app", "ingress", "none"), ("app", "ingress", "gateway-api"),
            ("waypoint", "mode", "services")} <= set(values)
    for section, key, value in values:
        variant = variant_with(section, key, value)
        assert dataclasses.asdict(base_config(**ALL_VARIANTS[variant]))[
            {"gatewayApi": "gateway_api"}.get(section, section)][re.sub(r"([A-Z])", r"_\1", key).lower()] == value


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_every_object_validates(variant: str, graph: Graph) -> None:
    objects = [item for item in rendered(variant, graph) if item.is_object]
    assert objects
    # The Kubernetes the cluster runs: kind's default node image unless cluster.nodeImage names another.
    version = schemas.kubernetes_version(base_config(**ALL_VARIANTS[variant]).cluster.node_image)
    problems = {item.filename: verdict(item, version) for item in objects}
    assert not {name: errs for name, errs in problems.items() if errs}


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=stack_name)
def test_every_stack_file_renders_and_validates(stack_file: Path) -> None:
    config = stack_config(stack_file)
    objects = [item for item in render.render_config(config, stack_name(stack_file)) if item.is_object]
    assert objects
    version = schemas.kubernetes_version(config.cluster.node_image)
    problems = {item.filename: verdict(item, version) for item in objects}
    assert not {name: errs for name, errs in problems.items() if errs}


# --- Istio's add-ons ------------------------------------------------------------------------------------------------

# Istio's own add-on files come from the istio.io/istio module, fetched beside the schema modules; without it (a cache
# filled before the pin existed) these tests say so instead of failing. `fetch --required` (CI) never leaves it out.
_ADDONS_MISSING = schemas.missing_modules(schemas.SAMPLE_MODULES)
needs_istio_addons = pytest.mark.skipif(
    bool(_ADDONS_MISSING), reason=f"Istio's add-on files ({schemas.ADDONS_DIR} of {', '.join(_ADDONS_MISSING)}) are "
    f"not in Go's module cache ({schemas.gomodcache()}): run python -m tools.testkit.schemas fetch")


def _identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"]


def istio_addons_config(profile: str) -> StackConfig:
    """Every add-on, read from Istio's own files (observability.source), under one resource profile."""
    return base_config(observability={"addons": list(addons.ADDONS), "source": str(schemas.addons_dir())},
                       istio={"resourceProfile": profile})


def istio_addon_documents(addon: str) -> list[dict[str, Any]]:
    """The objects of Istio's file for `addon`, read here, apart from the code under test."""
    with (schemas.addons_dir() / f"{addon}.yaml").open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


_addon_renders: dict[str, list[render.Rendered]] = {}


def istio_addons_rendered(profile: str) -> list[render.Rendered]:
    if profile not in _addon_renders:
        _addon_renders[profile] = render.render_config(istio_addons_config(profile))
    return _addon_renders[profile]


@needs_istio_addons
@pytest.mark.parametrize("profile", RESOURCE_PROFILES)
def test_every_object_of_istios_addons_validates(profile: str) -> None:
    """Each object of Istio's prometheus.yaml, kiali.yaml and grafana.yaml, as the program creates it, validates."""
    config = istio_addons_config(profile)
    objects = {_identity(item.body): item for item in istio_addons_rendered(profile) if item.role == "object"}
    version = schemas.kubernetes_version(config.cluster.node_image)
    for addon in config.observability.addons:
        wanted = [_identity(doc) for doc in istio_addon_documents(addon)]
        assert wanted, f"{addon}.yaml has no objects"
        assert not [key for key in wanted if key not in objects], f"{addon}.yaml objects the program did not create"
        problems = {objects[key].filename: verdict(objects[key], version) for key in wanted}
        assert not {name: errs for name, errs in problems.items() if errs}, addon


def _without_nulls(value: Any) -> Any:
    """A mapping's null fields left out, as the API server stores them (Istio's prometheus.yaml has some)."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


@needs_istio_addons
def test_istios_addons_reach_the_program_as_the_stack_applies_them() -> None:
    """What the program creates is the file's object (laptop requests aside, nulls left out), not a copy that lost
    fields: the validation above saw everything the file says."""
    for profile in RESOURCE_PROFILES:
        config = istio_addons_config(profile)
        objects = {_identity(item.body): item.body for item in istio_addons_rendered(profile) if item.role == "object"}
        for addon in config.observability.addons:
            for doc in addons.with_requests(istio_addon_documents(addon), profile):
                assert objects[_identity(doc)] == _without_nulls(doc), (profile, addon, _identity(doc))


@needs_istio_addons
def test_every_kind_of_istios_addons_has_a_strict_schema() -> None:
    """An unknown field in any add-on kind is an error: no add-on object is validated by an open schema."""
    by_kind = {item.body["kind"]: item.body for item in istio_addons_rendered(RESOURCE_PROFILES[0])
               if item.role == "object" and _identity(item.body) in
               {_identity(doc) for addon in addons.ADDONS for doc in istio_addon_documents(addon)}}
    assert by_kind
    for kind, body in by_kind.items():
        broken = {**copy.deepcopy(body), "unknownField": 1}
        assert any("unknownField" in error for error in schemas.errors(broken)), kind


def test_istios_addons_are_the_engine_tiers_snapshot() -> None:
    """The add-on files the schema tier validates are the ones the engine tier applies (one module in Go's cache)."""
    engine = upstream.ISTIO_SNAPSHOTS[versions.ISTIO_VERSION].module
    assert (schemas.ISTIO_ADDONS.path, schemas.ISTIO_ADDONS.version, schemas.ISTIO_ADDONS.sum) == (
        engine.path, engine.version, engine.sum)
    assert f"{schemas.ADDONS_DIR}/*.yaml" in schemas.ISTIO_ADDONS.sample_files
    assert upstream.ADDONS == schemas.ADDONS_DIR


def test_switches_change_what_is_created(graph: Graph) -> None:
    def files(variant: str) -> set[str]:
        return {item.filename for item in rendered(variant, graph)}

    dev = files("dev")
    assert "gateway-default-bookinfo-gateway.yaml" in dev
    assert "gateway-default-bookinfo-gateway.yaml" not in files(variant_with("app", "ingress", "none"))
    assert "namespace-_-bookinfo.yaml" in files("app.namespace=bookinfo")
    assert not any(name.startswith("customresourcedefinition-")
                   for name in files(variant_with("gatewayApi", "mode", "skip")))
    kinds = {item.body["kind"] for v in ALL_VARIANTS for item in rendered(v, graph) if item.is_object}
    assert {"Deployment", "Service", "ServiceAccount", "Namespace", "CustomResourceDefinition", "Gateway",
            "VirtualService"} <= kinds


# --- validation bites -------------------------------------------------------------------------------------------

# Objects of kinds the stack does not create yet (zero trust will): used only when no rendered one exists, to prove
# that their schemas load and bite. Test data, not schemas.
SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("security.istio.io/v1", "AuthorizationPolicy"): {
        "metadata": {"name": "productpage-viewer", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "productpage"}}, "action": "ALLOW",
                 "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}],
                            "to": [{"operation": {"methods": ["GET"]}}]}]},
    },
    ("security.istio.io/v1", "PeerAuthentication"): {
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICT"}},
    },
    ("gateway.networking.k8s.io/v1", "Gateway"): {
        "metadata": {"name": "waypoint", "namespace": "default"},
        "spec": {"gatewayClassName": "istio-waypoint",
                 "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
    },
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): {
        "metadata": {"name": "bookinfo", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "bookinfo-gateway"}],
                 "rules": [{"matches": [{"path": {"type": "Exact", "value": "/productpage"}}],
                            "backendRefs": [{"name": "productpage", "port": 9080}]}]},
    },
}


def find(graph: Graph, api_version: str, kind: str) -> dict[str, Any]:
    """The fullest rendered object of this kind from any variant (an empty allow-nothing policy has no field to
    break), else the sample."""
    def of(variants: list[str]) -> list[dict[str, Any]]:
        return [item.body for variant in variants for item in rendered(variant, graph)
                if item.is_object and item.body["apiVersion"] == api_version and item.body["kind"] == kind]
    candidates = of(sorted(ALL_VARIANTS))
    if candidates:
        return copy.deepcopy(max(candidates, key=lambda body: len(repr(body))))
    return {"apiVersion": api_version, "kind": kind, **copy.deepcopy(SAMPLES[(api_version, kind)])}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets obj[path] (dotted, [i] for list items), creating the last key."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]

    def mutate(obj: dict[str, Any]) -> None:
        target: Any = obj
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value
    return mutate


def _rename(path: str, new_key: str) -> Callable[[dict[str, Any]], None]:
    """A typo: the key at `path` moved to `new_key` in the same mapping."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]

    def mutate(obj: dict[str, Any]) -> None:
        target: Any = obj
        for part in parts[:-1]:
            target = target[part]
        target[new_key] = target.pop(parts[-1])
    return mutate


BITES = [
    # core (kubernetes-validate)
    ("apps/v1", "Deployment", _rename("spec.template.spec.containers[0].imagePullPolicy", "imagePullPolicyy"),
     "imagePullPolicyy"),
    ("apps/v1", "Deployment", _set("spec.replicas", "one"), "spec.replicas"),
    ("apps/v1", "Deployment", _set("spec.template.spec.containers[0].resources", {"request": {"cpu": "1"}}),
     "request"),
    ("v1", "Service", _set("spec.ports[0].protocl", "TCP"), "protocl"),
    ("v1", "Namespace", _set("metadata.label", {"a": "b"}), "label"),
    # Istio (istio.io/api CRDs)
    ("networking.istio.io/v1", "Gateway", _rename("spec.servers[0].port.number", "numbr"), "numbr"),
    ("networking.istio.io/v1", "Gateway", _set("spec.servers[0].port.number", "eighty"), "number"),
    ("networking.istio.io/v1", "Gateway", _set("specs", {}), "specs"),
    ("networking.istio.io/v1", "Gateway", _set("metadata.namespce", "default"), "namespce"),
    ("networking.istio.io/v1", "VirtualService", _set("spec.http[0].route[0].destination.hots", "x"), "hots"),
    ("networking.istio.io/v1", "VirtualService", _set("spec.http[0].match[0].uri", {"exact": "/a", "prefix": "/b"}),
     "spec.http[0].match[0].uri"),
    ("security.istio.io/v1", "AuthorizationPolicy", _set("spec.action", "PERMIT"), "PERMIT"),
    ("security.istio.io/v1", "AuthorizationPolicy", _set("spec.rules[0].from[0].source.principal", ["x"]),
     "principal"),
    ("security.istio.io/v1", "PeerAuthentication", _set("spec.mtls.mode", "ON"), "ON"),
    # Gateway API (sigs.k8s.io/gateway-api CRDs)
    ("gateway.networking.k8s.io/v1", "Gateway", _set("spec.listeners[0].protocl", "HBONE"), "protocl"),
    ("gateway.networking.k8s.io/v1", "Gateway", _set("spec.listeners[0].port", 70000), "port"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", _rename("spec.rules[0].matches", "matchs"), "matchs"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", _set("spec.rules[0].matches[0].path.type", "Glob"), "Glob"),
]


@pytest.mark.parametrize(("api_version", "kind", "mutate", "mentions"), BITES,
                         ids=[f"{kind}-{mentions}" for _, kind, _, mentions in BITES])
def test_a_wrong_field_is_rejected(api_version: str, kind: str, mutate: Callable[[dict[str, Any]], None],
                                   mentions: str, graph: Graph) -> None:
    obj = find(graph, api_version, kind)
    assert schemas.errors(obj) == [], "the unmodified object must be valid"
    mutate(obj)
    found = schemas.errors(obj)
    assert found and any(mentions in error for error in found), found


def test_a_wrong_field_in_a_patch_is_rejected(graph: Graph) -> None:
    patch = next(item for item in rendered("dev", graph) if item.role == "patch")
    obj = copy.deepcopy(patch.body)
    assert schemas.errors(obj, partial=True) == []
    obj["metadata"]["lables"] = obj["metadata"].pop("labels")
    assert any("lables" in error for error in schemas.errors(obj, partial=True))


def test_kinds_without_a_published_schema_fail() -> None:
    with pytest.raises(schemas.SchemaNotFound):
        schemas.errors({"apiVersion": "networking.istio.io/v1", "kind": "Gatewy", "metadata": {"name": "x"}})
    with pytest.raises(schemas.SchemaNotFound):
        schemas.errors({"apiVersion": "apps/v1", "kind": "Deploymnt", "metadata": {"name": "x"}})


def test_kubernetes_validate_itself_agrees(graph: Graph) -> None:
    """Our cached loading of kubernetes-validate's schemas gives its own validate()'s verdicts (one object a kind)."""
    by_kind = {item.body["kind"]: item.body for item in rendered("dev", graph)
               if item.role == "object" and schemas.group_of(item.body["apiVersion"]) not in schemas.GROUPS}
    assert {"Deployment", "Service", "ServiceAccount", "Namespace", "CustomResourceDefinition"} <= set(by_kind)
    for obj in by_kind.values():
        kubernetes_validate.validate(obj, schemas.KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(by_kind["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, schemas.KUBERNETES_VERSION, strict=True)


# --- sources and pins ---------------------------------------------------------------------------------------------

def test_schemas_are_for_the_versions_the_stack_installs() -> None:
    assert schemas.ISTIO_API.version == f"v{versions.ISTIO_VERSION}"
    assert schemas.GATEWAY_API.version == versions.GATEWAY_API_VERSION
    for module, version in schemas.TRACKS.items():
        assert module.version == version
        schemas.module_dir(module)  # present and matching the pinned hash


def test_target_kubernetes_version() -> None:
    assert schemas.kubernetes_version(None) == schemas.kubernetes_version("") == schemas.KUBERNETES_VERSION
    assert schemas.kubernetes_version("kindest/node:v1.34.2@sha256:0123") == "1.34"


def test_kubernetes_validate_has_the_target_version_itself() -> None:
    """No silent fallback to an older Kubernetes: the exact minor's strict schemas are bundled."""
    assert schemas._schema_dir(schemas.KUBERNETES_VERSION).endswith(f"v{schemas.KUBERNETES_VERSION}.0-local-strict")


def test_strict_schema_closes_objects_but_keeps_free_form_ones_open() -> None:
    crd_schema = {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"b": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"c": {}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"d": {}}}},
        "n": {"type": "integer", "nullable": True},
    }}
    strict = schemas.strict_schema(crd_schema)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in strict["properties"]["free"]
    assert strict["properties"]["map"]["additionalProperties"]["additionalProperties"] is False
    assert strict["properties"]["n"]["type"] == ["integer", "null"]
    assert "additionalProperties" not in crd_schema  # the published schema is left untouched


# --- render -------------------------------------------------------------------------------------------------------

def test_render_files(graph: Graph) -> None:
    files = {item.filename: item for item in rendered("dev", graph)}
    deployment = files["deployment-default-reviews-v2.yaml"]
    assert list(deployment.body)[:3] == ["apiVersion", "kind", "metadata"]
    assert deployment.body["apiVersion"] == "apps/v1" and deployment.body["spec"]["replicas"] == 1
    assert deployment.text.startswith("# kubernetes:apps/v1:Deployment bookinfo-reviews-v2\napiVersion: apps/v1\n")
    assert "9080.0" not in "".join(item.text for item in files.values())
    assert files["namespace-_-istio-system.yaml"].body["apiVersion"] == "v1"
    assert "customresourcedefinition-_-httproutes.gateway.networking.k8s.io.yaml" in files
    patch = files["namespacepatch-_-default@ambient-label.yaml"]
    assert patch.role == "patch" and patch.body["kind"] == "Namespace"
    assert patch.body["metadata"]["labels"] == {"istio.io/dataplane-mode": "ambient"}
    istiod = files["helmrelease-istio-system-istiod.yaml"].body
    assert istiod["chart"] == "istiod" and istiod["version"] == versions.ISTIO_VERSION
    assert istiod["repository"] == versions.ISTIO_CHART_REPOSITORY
    assert istiod["values"]["profile"] == "ambient"
    assert {name for name in files if name.startswith("helmrelease-")} == {
        f"helmrelease-istio-system-{n}.yaml" for n in ("istio-base", "istiod", "istio-cni", "ztunnel",
                                                        "istio-ingressgateway")}


def test_render_helm_release_repositories(graph: Graph) -> None:
    """Repository URL, OCI registry or local directory: chart is the chart's name, repository where it comes from."""
    istiod = graph.get("istio-istiod")
    cases = {
        "oci://ghcr.io/istio/release/charts/istiod": "oci://ghcr.io/istio/release/charts",
        str(GATEWAY_API_FIXTURE.parent / "charts" / "istiod"): "tests/fixtures/charts",
    }
    for chart, repository in cases.items():
        inputs = {key: value for key, value in istiod.inputs.items() if key != "repositoryOpts"}
        body = render.render_release(dataclasses.replace(istiod, inputs={**inputs, "chart": chart})).body
        assert (body["repository"], body["chart"], body["version"]) == (repository, "istiod", versions.ISTIO_VERSION)


def test_render_cli_is_stable_and_writes_a_clean_directory(tmp_path: Path, graph: Graph) -> None:
    out = tmp_path / "render"
    out.mkdir()
    (out / "deployment-default-gone.yaml").write_text("stale\n", encoding="utf-8")
    # cluster.workers changes no Kubernetes object, only the kind cluster and the smoke check's trigger (which also
    # carries the configured Gateway API source, not the file rendered): the other files are the dev render's, from a
    # second evaluation.
    code = render.main(["--out", str(out), "--set", "cluster.workers=1",
                        "--gateway-api-crds", str(GATEWAY_API_FIXTURE)])
    assert code == 0
    expected = {item.filename: item.text for item in rendered("dev", graph)}
    written = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir() if p.name != render.INDEX}
    assert list(expected) == sorted(expected) and set(written) == set(expected)
    differing = {name for name in expected if written[name] != expected[name]}
    # (and the commands that count or address its nodes: the preflight, loading the images)
    assert differing == {"kindcluster-_-ambient.yaml", "command-_-smoke-verify.yaml",
                         "command-_-cluster-preflight.yaml", "command-_-images-load-mesh.yaml",
                         "command-_-images-load-app.yaml"}
    assert written["kindcluster-_-ambient.yaml"].count("- role: worker") == 1
    assert "workers: 1" in written["command-_-smoke-verify.yaml"]
    assert str(GATEWAY_API_FIXTURE) not in written["command-_-smoke-verify.yaml"]
    index = (out / render.INDEX).read_text(encoding="utf-8")
    assert "cluster.workers=1" in index and "tests/fixtures/gateway-api-crds.yaml" in index
    assert str(tmp_path) not in index


def test_render_refuses_a_directory_that_is_not_a_render(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        render.write([], tmp_path)
    assert (tmp_path / "notes.txt").exists()


def test_render_offline_gateway_api_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMBIENT_MESH_CACHE_DIR", str(tmp_path))  # nothing downloaded there
    official = base_raw_config(gatewayApi={"source": ""})
    # Not downloaded: the same objects from the pinned module (standard-install.yaml is its CRD files concatenated).
    source = render.gateway_api_source(official)
    assert not source.stand_in and schemas.GATEWAY_API.ref in source.label
    text = Path(source.source).read_text(encoding="utf-8")
    assert "  name: httproutes.gateway.networking.k8s.io\n" in text and "\nkind: ValidatingAdmissionPolicy\n" in text
    # Another version than the pinned module's (the next patch: the minor is fixed by Istio's): the stand-in.
    major_minor, patch = versions.GATEWAY_API_VERSION.rsplit(".", 1)
    other = base_raw_config(gatewayApi={"source": "", "version": f"{major_minor}.{int(patch) + 1}"})
    assert render.gateway_api_source(other).stand_in
    assert "stand-in" in render.gateway_api_source(other).label
    # A configured local file is used as it is.
    assert render.gateway_api_source(base_raw_config()).source == str(GATEWAY_API_FIXTURE)


def test_set_parses_values() -> None:
    raw = render.apply_sets({"cluster": {"workers": 2}}, ["cluster.workers=0", "app.ingress=none",
                                                          "gatewayApi.source="])
    assert raw == {"cluster": {"workers": 0}, "app": {"ingress": "none"}, "gatewayApi": {"source": ""}}
    with pytest.raises(SystemExit):
        render.apply_sets({}, ["workers=1"])


def test_render_names_kinds_of_two_groups_apart(graph: Graph) -> None:
    istio_gateway = graph.get("ingress-gateway")
    api_gateway = dataclasses.replace(
        istio_gateway, name="other", type="kubernetes:gateway.networking.k8s.io/v1:Gateway",
        inputs={**istio_gateway.inputs, "apiVersion": "gateway.networking.k8s.io/v1"})
    names = {item.filename for item in render.render_graph([istio_gateway, api_gateway])}
    assert names == {"gateway.networking.istio.io-default-bookinfo-gateway.yaml",
                     "gateway.gateway.networking.k8s.io-default-bookinfo-gateway.yaml"}
    with pytest.raises(ValueError, match="same object"):
        render.render_graph([istio_gateway, dataclasses.replace(istio_gateway, name="again")])


def test_render_never_writes_a_secret(graph: Graph) -> None:
    sleep = graph.get("clients-sleep")
    env = [{"name": "TOKEN", "value": rpc.wrap_rpc_secret("hunter2")}]
    inputs = copy.deepcopy(sleep.inputs)
    inputs["spec"]["template"]["spec"]["containers"][0]["env"] = env
    item = render.render_object(dataclasses.replace(sleep, inputs=inputs))
    assert "hunter2" not in item.text and render.REDACTED in item.text
