"""The CrossGuard policy pack (policy/): each policy passes a good resource and fails a bad one, through the SDK's
own args types; and the real dev stack passes the whole pack.

The pack's PolicyPack is never constructed here (it starts a gRPC server and never returns): policy/__main__.py is
loaded under another module name, so only its `policies()` list is built.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.model import versions
from tests.conftest import L4_ZERO_TRUST, REPO, base_config, stack_config
from tools.testkit.mockgraph import Graph, run_stack

POLICY_DIR = REPO / "policy"
sys.path.insert(0, str(POLICY_DIR))  # as when Pulumi runs the pack: its directory is on the path
import mesh_policies as mp  # noqa: E402

NAMESPACE = "kubernetes:core/v1:Namespace"
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
PEER_AUTHN = "kubernetes:security.istio.io/v1:PeerAuthentication"
ZERO_TRUST = {"zeroTrust": True}
ZERO_TRUST_POLICIES = {"zero-trust-authorization-policy", "zero-trust-strict-mtls"}


def load_pack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ambient_mesh_policy_pack", POLICY_DIR / "__main__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PACK = load_pack()
POLICIES: dict[str, Policy] = {policy.name: policy for policy in PACK.policies()}

# --- running one policy the way the engine does ----------------------------------------------------------------


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def urn_of(type_: str, name: str) -> str:
    return f"urn:pulumi:dev::ambient-mesh::{type_}::{name}"


def check_resource(policy_name: str, type_: str, props: Mapping[str, Any],
                   config: Mapping[str, Any] | None = None) -> list[str]:
    """Messages the resource policy reports for one resource (props wrapped as the engine wraps them)."""
    policy = POLICIES[policy_name]
    assert isinstance(policy, ResourceValidationPolicy)
    reported: list[str] = []
    args = ResourceValidationArgs(type_, unknown_checking_proxy(dict(props)), urn_of(type_, "r"), "r", _options(),
                                  None, config)
    policy.validate(args, lambda message, urn: reported.append(message))
    return reported


Reported = list[tuple[str, str | None]]


def run_stack_policy(policy_name: str, resources: Sequence[tuple[str, str, Mapping[str, Any]]],
                     config: Mapping[str, Any] | None = None) -> Reported | None:
    """(message, urn) the stack policy reports for (type, name, props) resources; None when it is not applicable."""
    policy = POLICIES[policy_name]
    assert isinstance(policy, StackValidationPolicy)
    stack = [PolicyResource(type_, unknown_checking_proxy(dict(props)), urn_of(type_, name), name, _options(), None,
                            None, [], {}) for type_, name, props in resources]
    reported: Reported = []
    try:
        policy.validate(StackValidationArgs(stack, config), lambda message, urn: reported.append((message, urn)))
    except _NotApplicableError:
        return None
    return reported


def check_stack(policy_name: str, resources: Sequence[tuple[str, str, Mapping[str, Any]]],
                config: Mapping[str, Any] | None = None) -> Reported:
    reported = run_stack_policy(policy_name, resources, config)
    assert reported is not None, f"{policy_name} is not applicable"
    return reported


def meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata}


def deployment(name: str, namespace: str | None = "shop", image: str = "docker.io/istio/app:1.0.0",
               **pod: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": name, "image": image}], **pod}
    return {**meta(name, namespace), "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def release(chart: str = "gateway", version: Any = "1.31.1", repo: str | None = mp.DEFAULT_CHART_REPOSITORY,
            values: dict[str, Any] | None = None, name: str = "istio-ingressgateway") -> dict[str, Any]:
    props: dict[str, Any] = {"name": name, "chart": chart, "namespace": "istio-system", "values": values or {}}
    if version is not None:
        props["version"] = version
    if repo is not None:
        props["repositoryOpts"] = {"repo": repo}
    return props


AMBIENT = {mp.AMBIENT_LABEL: mp.AMBIENT_VALUE}
SIDECARS = {mp.INJECTION_LABEL: mp.INJECTION_VALUE}


# --- the pack itself -------------------------------------------------------------------------------------------

def test_pack_has_every_policy_mandatory_with_a_description() -> None:
    assert set(POLICIES) == {
        "namespace-single-dataplane", "namespace-single-dataplane-across-resources", "app-namespaces-enrolled",
        "container-images-pinned", "helm-release-version-pinned", "helm-release-chart-repository",
        "no-loadbalancer-on-kind", *ZERO_TRUST_POLICIES,
    }
    for policy in POLICIES.values():
        assert policy.enforcement_level == EnforcementLevel.MANDATORY, policy.name
        assert policy.description.endswith(".") and policy.remediation_steps, policy.name


def test_default_chart_repository_is_the_stacks_own() -> None:
    assert mp.DEFAULT_CHART_REPOSITORY == versions.ISTIO_CHART_REPOSITORY
    schema = POLICIES["helm-release-chart-repository"].config_schema
    assert schema is not None and schema.properties["chartRepository"]["default"] == versions.ISTIO_CHART_REPOSITORY


def test_pack_files_pin_the_sdk() -> None:
    requirements = (POLICY_DIR / "requirements.txt").read_text().split()
    assert "pulumi-policy==1.21.0" in requirements
    assert any(line.startswith("pulumi==") for line in requirements)
    assert "runtime:" in (POLICY_DIR / "PulumiPolicy.yaml").read_text()


# --- namespace-single-dataplane --------------------------------------------------------------------------------

def test_single_dataplane_passes_one_label_each() -> None:
    assert check_resource("namespace-single-dataplane", NAMESPACE, meta("shop", labels=AMBIENT)) == []
    assert check_resource("namespace-single-dataplane", NAMESPACE_PATCH, meta("legacy", labels=SIDECARS)) == []
    assert check_resource("namespace-single-dataplane", DEPLOYMENT, meta("x", labels={**AMBIENT, **SIDECARS})) == []


@pytest.mark.parametrize("type_", [NAMESPACE, NAMESPACE_PATCH])
def test_single_dataplane_fails_both_labels_on_one_namespace(type_: str) -> None:
    [message] = check_resource("namespace-single-dataplane", type_, meta("shop", labels={**AMBIENT, **SIDECARS}))
    assert "'shop'" in message and "istio.io/dataplane-mode=ambient" in message and "istio-injection" in message


def test_single_dataplane_ignores_injection_disabled() -> None:
    labels = {**AMBIENT, mp.INJECTION_LABEL: "disabled"}
    assert check_resource("namespace-single-dataplane", NAMESPACE, meta("shop", labels=labels)) == []


# --- namespace-single-dataplane-across-resources ---------------------------------------------------------------

def test_across_resources_passes_different_namespaces() -> None:
    resources = [(NAMESPACE, "shop", meta("shop", labels=AMBIENT)),
                 (NAMESPACE_PATCH, "legacy", meta("legacy", labels=SIDECARS))]
    assert check_stack("namespace-single-dataplane-across-resources", resources) == []


def test_across_resources_fails_labels_from_two_resources_on_one_namespace() -> None:
    resources = [(NAMESPACE, "shop-ns", meta("shop", labels=SIDECARS)),
                 (NAMESPACE_PATCH, "shop-ambient", meta("shop", labels=AMBIENT))]
    [(message, urn)] = check_stack("namespace-single-dataplane-across-resources", resources)
    assert "'shop'" in message and "NamespacePatch shop" in message and "Namespace shop" in message
    assert urn == urn_of(NAMESPACE, "shop-ns")


def test_across_resources_leaves_a_single_resource_conflict_to_the_resource_policy() -> None:
    resources = [(NAMESPACE, "shop", meta("shop", labels={**AMBIENT, **SIDECARS}))]
    assert check_stack("namespace-single-dataplane-across-resources", resources) == []


# --- app-namespaces-enrolled -----------------------------------------------------------------------------------

def test_enrolled_passes_an_ambient_namespace_and_system_namespaces() -> None:
    resources = [(NAMESPACE_PATCH, "ambient", meta("shop", labels=AMBIENT)),
                 (DEPLOYMENT, "app", deployment("app", "shop")),
                 (DEPLOYMENT, "dns", deployment("dns", "kube-system")),
                 ("kubernetes:apps/v1:DaemonSet", "agent", deployment("agent", "istio-system"))]
    assert check_stack("app-namespaces-enrolled", resources) == []


def test_enrolled_passes_sidecar_injection_too() -> None:
    resources = [(NAMESPACE, "legacy", meta("legacy", labels=SIDECARS)),
                 ("kubernetes:apps/v1:StatefulSet", "db", deployment("db", "legacy"))]
    assert check_stack("app-namespaces-enrolled", resources) == []


@pytest.mark.parametrize("type_", ["kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                                   "kubernetes:apps/v1:DaemonSet", "kubernetes:core/v1:Pod"])
def test_enrolled_fails_workloads_in_an_unlabelled_namespace(type_: str) -> None:
    resources = [(NAMESPACE, "shop", meta("shop", labels={"team": "a"})), (type_, "app", deployment("app", "shop"))]
    [(message, urn)] = check_stack("app-namespaces-enrolled", resources)
    assert "'shop'" in message and "not enrolled" in message and "exemptNamespaces" in message
    assert urn == urn_of(type_, "app")


def test_enrolled_counts_a_missing_namespace_as_default() -> None:
    resources = [(DEPLOYMENT, "app", deployment("app", namespace=None))]
    [(message, _)] = check_stack("app-namespaces-enrolled", resources)
    assert "'default'" in message


def test_enrolled_honours_the_exemption_list() -> None:
    resources = [(DEPLOYMENT, "app", deployment("app", "tools"))]
    assert check_stack("app-namespaces-enrolled", resources, {"exemptNamespaces": ["tools"]}) == []
    assert len(check_stack("app-namespaces-enrolled", resources, {"exemptNamespaces": ["other"]})) == 1


def test_enrolled_skips_a_namespace_unknown_during_preview() -> None:
    resources = [(DEPLOYMENT, "app", deployment("app", UNKNOWN_STRING_VALUE))]
    assert check_stack("app-namespaces-enrolled", resources) == []


# --- container-images-pinned -----------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [
    "docker.io/istio/examples-bookinfo-details-v1:1.20.3",
    "curlimages/curl:8.16.0",
    "localhost:5000/app:1.0",
    "docker.io/library/nginx@sha256:" + "a" * 64,
    "nginx:1.27@sha256:" + "0" * 64,
])
def test_images_pinned_passes(image: str) -> None:
    assert check_resource("container-images-pinned", DEPLOYMENT, deployment("app", image=image)) == []


@pytest.mark.parametrize(("image", "reason"), [
    ("docker.io/curlimages/curl", "no tag"),
    ("localhost:5000/app", "no tag"),
    ("nginx:latest", "latest"),
    ("nginx:", "empty"),
    ("nginx@sha256:abc", "digest"),
    ("", "no image"),
])
def test_images_pinned_fails_in_a_deployment_pod_template(image: str, reason: str) -> None:
    [message] = check_resource("container-images-pinned", DEPLOYMENT, deployment("app", image=image))
    assert "'app'" in message and reason in message


def test_images_pinned_checks_init_containers_pods_and_cronjobs() -> None:
    pod = {**meta("p", "shop"), "spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                                         "containers": [{"name": "main", "image": "app:1.0"}]}}
    [message] = check_resource("container-images-pinned", "kubernetes:core/v1:Pod", pod)
    assert "'init'" in message
    job_pod = {"containers": [{"name": "job", "image": "app:latest"}]}
    cronjob = {**meta("c", "shop"), "spec": {"jobTemplate": {"spec": {"template": {"spec": job_pod}}}}}
    assert len(check_resource("container-images-pinned", "kubernetes:batch/v1:CronJob", cronjob)) == 1


def test_images_pinned_accepts_istio_gateway_injection_auto_only_with_its_template() -> None:
    gateway = deployment("gw", image="auto")
    gateway["spec"]["template"]["metadata"]["annotations"] = {"inject.istio.io/templates": "gateway"}
    assert check_resource("container-images-pinned", DEPLOYMENT, gateway) == []
    assert len(check_resource("container-images-pinned", DEPLOYMENT, deployment("gw", image="auto"))) == 1


def test_images_pinned_skips_an_image_unknown_during_preview_and_patches_without_images() -> None:
    assert check_resource("container-images-pinned", DEPLOYMENT, deployment("app", image=UNKNOWN_STRING_VALUE)) == []
    patch = {**meta("app", "shop"), "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    assert check_resource("container-images-pinned", "kubernetes:apps/v1:DeploymentPatch", patch) == []


# --- helm-release-version-pinned -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.31.1", "v1.5.1", "1.32.0-beta.0"])
def test_release_version_passes_an_exact_version(version: str) -> None:
    assert check_resource("helm-release-version-pinned", RELEASE, release(version=version)) == []


@pytest.mark.parametrize(("version", "reason"), [
    (None, "no chart version"), ("", "no chart version"), ("^1.31.0", "not one exact"), ("1.31.x", "not one exact"),
    (">=1.30", "not one exact"), ("latest", "not one exact"), ("*", "not one exact"),
])
def test_release_version_fails_missing_or_floating(version: str | None, reason: str) -> None:
    [message] = check_resource("helm-release-version-pinned", RELEASE, release(version=version))
    assert "istio-ingressgateway" in message and reason in message


# --- helm-release-chart-repository -----------------------------------------------------------------------------

def test_chart_repository_passes_the_default_repository() -> None:
    assert check_resource("helm-release-chart-repository", RELEASE, release()) == []
    slash = release(repo=mp.DEFAULT_CHART_REPOSITORY + "/")
    assert check_resource("helm-release-chart-repository", RELEASE, slash) == []


def test_chart_repository_passes_configured_oci_and_local_sources() -> None:
    oci = {"chartRepository": "oci://registry.example/istio"}
    assert check_resource("helm-release-chart-repository", RELEASE,
                          release(chart="oci://registry.example/istio/gateway", repo=None), oci) == []
    local = {"localChartDirectories": ["/srv/charts"]}
    assert check_resource("helm-release-chart-repository", RELEASE,
                          release(chart="/srv/charts/gateway", repo=None), local) == []
    as_repository = {"chartRepository": "/srv/charts"}
    assert check_resource("helm-release-chart-repository", RELEASE,
                          release(chart="/srv/charts/base", repo=None), as_repository) == []


@pytest.mark.parametrize(("props", "source"), [
    (release(repo="https://charts.example.com/istio"), "charts.example.com"),
    (release(chart="oci://evil.example/istio/gateway", repo=None), "oci://evil.example/istio"),
    (release(chart="/tmp/charts/gateway", repo=None), "/tmp/charts/gateway"),
    (release(chart="/srv/charts/../other/gateway", repo=None), "/srv/charts/../other/gateway"),
    (release(chart="istio/gateway", repo=None), "istio/gateway"),
])
def test_chart_repository_fails_other_sources(props: dict[str, Any], source: str) -> None:
    config = {"localChartDirectories": ["/srv/charts"]}
    [message] = check_resource("helm-release-chart-repository", RELEASE, props, config)
    assert source in message and mp.DEFAULT_CHART_REPOSITORY in message


# --- no-loadbalancer-on-kind -----------------------------------------------------------------------------------

NODEPORT_VALUES = {"service": {"type": "NodePort"}}


def test_no_loadbalancer_passes_nodeport_services_and_gateway_values() -> None:
    service = {**meta("web", "shop"), "spec": {"type": "NodePort"}}
    assert check_resource("no-loadbalancer-on-kind", SERVICE, service) == []
    assert check_resource("no-loadbalancer-on-kind", RELEASE, release(values=NODEPORT_VALUES)) == []
    assert check_resource("no-loadbalancer-on-kind", RELEASE, release(chart="istiod", name="istiod")) == []


def test_no_loadbalancer_fails_a_loadbalancer_service_on_kind() -> None:
    service = {**meta("web", "shop"), "spec": {"type": "LoadBalancer"}}
    [message] = check_resource("no-loadbalancer-on-kind", SERVICE, service)
    assert "'web'" in message and "kind has no load balancer" in message


@pytest.mark.parametrize(("values", "reason"), [
    ({"service": {"type": "LoadBalancer"}}, "sets values.service.type LoadBalancer"),
    ({}, "leaves values.service.type unset"),
    ({"service": {"ports": []}}, "leaves values.service.type unset"),
])
def test_no_loadbalancer_fails_the_gateway_chart_service_type(values: dict[str, Any], reason: str) -> None:
    [message] = check_resource("no-loadbalancer-on-kind", RELEASE, release(values=values))
    assert reason in message


@pytest.mark.parametrize("chart", ["/srv/charts/gateway", "oci://registry.example/istio/gateway",
                                   "https://charts.example/gateway-1.31.1.tgz"])
def test_no_loadbalancer_recognises_the_gateway_chart_from_any_source(chart: str) -> None:
    [message] = check_resource("no-loadbalancer-on-kind", RELEASE, release(chart=chart, repo=None))
    assert "leaves values.service.type unset" in message
    assert check_resource("no-loadbalancer-on-kind", RELEASE, release(chart=chart + "x", repo=None)) == []


def test_no_loadbalancer_fails_an_istio_gateway_api_gateway_without_service_type() -> None:
    type_ = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
    gateway = {**meta("web", "shop"), "spec": {"gatewayClassName": "istio"}}
    assert len(check_resource("no-loadbalancer-on-kind", type_, gateway)) == 1
    annotated = {**meta("web", "shop", annotations={mp.SERVICE_TYPE_ANNOTATION: "NodePort"}),
                 "spec": {"gatewayClassName": "istio"}}
    assert check_resource("no-loadbalancer-on-kind", type_, annotated) == []


def test_no_loadbalancer_does_not_apply_to_an_existing_cluster() -> None:
    service = {**meta("web", "shop"), "spec": {"type": "LoadBalancer"}}
    assert check_resource("no-loadbalancer-on-kind", SERVICE, service, {"clusterProvider": "existing"}) == []
    assert len(check_resource("no-loadbalancer-on-kind", SERVICE, service, {"clusterProvider": "kind"})) == 1


def test_cluster_provider_comes_from_policy_config_then_stack_config_then_kind() -> None:
    assert mp.resolve_cluster_provider("existing", {"provider": "kind"}) == "existing"
    assert mp.resolve_cluster_provider(None, {"provider": "existing"}) == "existing"
    assert mp.resolve_cluster_provider(None, None) == "kind"
    assert mp.resolve_cluster_provider("k3s", {"provider": "bogus"}) == "kind"


# --- zero trust ------------------------------------------------------------------------------------------------

ENROLLED_SHOP = (NAMESPACE_PATCH, "ambient", meta("shop", labels=AMBIENT))
STRICT_MESH = (PEER_AUTHN, "strict", {**meta("default", "istio-system"), "spec": {"mtls": {"mode": "STRICT"}}})


@pytest.mark.parametrize("policy", sorted(ZERO_TRUST_POLICIES))
def test_zero_trust_policies_do_not_apply_until_zero_trust_is_on(policy: str) -> None:
    assert run_stack_policy(policy, [ENROLLED_SHOP]) is None
    assert run_stack_policy(policy, [ENROLLED_SHOP], {"zeroTrust": False}) is None


def test_authorization_passes_namespace_wide_or_mesh_wide_policies() -> None:
    in_namespace = (AUTHZ, "deny", {**meta("allow-nothing", "shop"), "spec": {}})
    assert check_stack("zero-trust-authorization-policy", [ENROLLED_SHOP, in_namespace], ZERO_TRUST) == []
    mesh_wide = (AUTHZ, "mesh", {**meta("allow-nothing", "istio-system")})
    assert check_stack("zero-trust-authorization-policy", [ENROLLED_SHOP, mesh_wide], ZERO_TRUST) == []


def test_authorization_fails_an_enrolled_namespace_without_a_namespace_wide_policy() -> None:
    workload_only = (AUTHZ, "one", {**meta("one", "shop"), "spec": {"selector": {"matchLabels": {"app": "a"}}}})
    other_namespace = (AUTHZ, "other", {**meta("allow-nothing", "elsewhere"), "spec": {}})
    [(message, urn)] = check_stack("zero-trust-authorization-policy",
                                   [ENROLLED_SHOP, workload_only, other_namespace], ZERO_TRUST)
    assert "'shop'" in message and "AuthorizationPolicy" in message
    assert urn == urn_of(NAMESPACE_PATCH, "ambient")


def test_strict_mtls_passes_mesh_wide_strict() -> None:
    assert check_stack("zero-trust-strict-mtls", [ENROLLED_SHOP, STRICT_MESH], ZERO_TRUST) == []


def test_strict_mtls_fails_without_a_mesh_wide_peer_authentication() -> None:
    strict_elsewhere = (PEER_AUTHN, "shop", {**meta("default", "shop"), "spec": {"mtls": {"mode": "STRICT"}}})
    [(message, urn)] = check_stack("zero-trust-strict-mtls", [ENROLLED_SHOP, strict_elsewhere], ZERO_TRUST)
    assert "no mesh-wide PeerAuthentication" in message and urn is None


@pytest.mark.parametrize("mode", ["PERMISSIVE", "DISABLE", "UNSET", None])
def test_strict_mtls_fails_a_mesh_wide_peer_authentication_that_is_not_strict(mode: str | None) -> None:
    spec = {"mtls": {"mode": mode}} if mode else {}
    mesh = (PEER_AUTHN, "mesh", {**meta("default", "istio-system"), "spec": spec})
    [(message, urn)] = check_stack("zero-trust-strict-mtls", [ENROLLED_SHOP, mesh], ZERO_TRUST)
    assert f"istio-system/default has mtls mode {mode or 'UNSET'}, not STRICT" in message
    assert urn == urn_of(PEER_AUTHN, "mesh")


@pytest.mark.parametrize("spec", [{"mtls": {"mode": "PERMISSIVE"}},
                                  {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}}])
def test_strict_mtls_fails_an_override_that_weakens_it(spec: dict[str, Any]) -> None:
    weak = (PEER_AUTHN, "weak", {**meta("legacy", "shop"), "spec": spec})
    [(message, urn)] = check_stack("zero-trust-strict-mtls", [STRICT_MESH, weak], ZERO_TRUST)
    assert "shop/legacy" in message and urn == urn_of(PEER_AUTHN, "weak")


# --- the real dev stack ----------------------------------------------------------------------------------------

def run_pack(graph: Graph, config: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[str]]:
    """Every policy of the pack over every registration of the graph: policy name -> messages."""
    config = config or {}
    found: dict[str, list[str]] = {}
    for name, policy in POLICIES.items():
        messages: list[str] = []
        if isinstance(policy, ResourceValidationPolicy):
            for r in graph:
                messages += check_resource(name, r.type, r.inputs, config.get(name))
        else:
            reported = run_stack_policy(name, [(r.type, r.name, r.inputs) for r in graph], config.get(name))
            messages += [message for message, _ in reported or []]
        if messages:
            found[name] = messages
    return found


def test_dev_stack_passes_every_policy(graph: Graph) -> None:
    # Not vacuous: the graph has what the policies look at.
    assert len(graph.of_type(DEPLOYMENT)) == 8 and len(graph.of_type(RELEASE)) == 5
    assert graph.of_type(NAMESPACE_PATCH) and graph.of_type(NAMESPACE)
    assert run_pack(graph) == {}


ZERO_TRUST_ON = {name: ZERO_TRUST for name in ZERO_TRUST_POLICIES}


def test_zero_trust_stack_passes_zero_trust_and_the_tutorial_does_not() -> None:
    """Pulumi.zero-trust.yaml: mTLS STRICT and a default-deny app namespace pass zero trust; the dev stack (the
    tutorial: no policy) leaves the namespace as a whole uncovered, and zero trust flags exactly that."""
    assert run_pack(run_stack(stack_config(REPO / "Pulumi.zero-trust.yaml"), "zero-trust"), ZERO_TRUST_ON) == {}
    found = run_pack(run_stack(base_config(security={"defaultDeny": False})), ZERO_TRUST_ON)
    assert list(found) == ["zero-trust-authorization-policy"]
    [message] = found["zero-trust-authorization-policy"]
    assert "enrolled namespace 'default' has no namespace-wide AuthorizationPolicy" in message


def test_sidecar_namespace_is_default_deny_too() -> None:
    graph = run_stack(base_config(sidecar={"enabled": True}, security=L4_ZERO_TRUST))
    assert run_pack(graph, ZERO_TRUST_ON) == {}


def test_dev_stack_with_permissive_mtls_fails_strict_mtls() -> None:
    found = run_pack(run_stack(base_config(security={"mtls": "permissive", "defaultDeny": True})), ZERO_TRUST_ON)
    assert list(found) == ["zero-trust-strict-mtls"]
    [message] = found["zero-trust-strict-mtls"]
    assert "istio-system/default has mtls mode PERMISSIVE" in message


def test_dev_stack_with_every_option_on_passes_every_policy() -> None:
    graph = run_stack(base_config(app={"namespace": "bookinfo", "ingress": "gateway-api"},
                                 sidecar={"enabled": True}, waypoint={"mode": "namespace"}))
    assert graph.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    assert run_pack(graph) == {}


def test_dev_stack_from_local_charts_needs_them_configured(tmp_path: Path) -> None:
    # A local chart directory (air-gapped use; the engine tier's extracted Istio charts): under mocks only each
    # chart's Chart.yaml matters (the config check).
    charts = tmp_path / "charts"
    for chart in ("base", "istiod", "cni", "ztunnel", "gateway"):
        (charts / chart).mkdir(parents=True)
        (charts / chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {chart}\nversion: 1.31.1\n")
    graph = run_stack(base_config(istio={"repository": str(charts)}))
    found = run_pack(graph)
    assert set(found) == {"helm-release-chart-repository"} and len(found["helm-release-chart-repository"]) == 5
    allowed = {"helm-release-chart-repository": {"localChartDirectories": [str(Path(charts).resolve())]}}
    assert run_pack(graph, allowed) == {}


def test_getting_started_stack_passes_every_policy_and_the_pack_reads_its_addons(tmp_path: Path) -> None:
    """Istio's getting-started (the add-ons, the version Services, the HTTPRoutes, the waypoint) passes the pack; the
    add-ons' Deployments are what the image policy reads: an add-on image on a floating tag fails it."""
    graph = run_stack(stack_config(REPO / "Pulumi.getting-started.yaml"), "getting-started")
    addons = [d for d in graph.of_type(DEPLOYMENT) if d.inputs["metadata"].get("namespace") == "istio-system"]
    assert {d.inputs["metadata"]["name"] for d in addons} == {"prometheus", "kiali", "grafana"}
    assert graph.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
    assert run_pack(graph) == {}
    floating = tmp_path / "addons"
    floating.mkdir()
    for source in (REPO / "tests" / "fixtures" / "addons").glob("*.yaml"):
        text = source.read_text(encoding="utf-8").replace("prom/prometheus:v3.10.0", "prom/prometheus")
        (floating / source.name).write_text(text, encoding="utf-8")
    found = run_pack(run_stack(stack_config(REPO / "Pulumi.getting-started.yaml",
                                            observability={"source": str(floating)}), "getting-started"))
    assert list(found) == ["container-images-pinned"]
    assert any("docker.io/prom/prometheus" in m for m in found["container-images-pinned"]), found
