"""The mesh's invariants as plain functions over plain data.

Every check takes a resource's type token and its properties (a dict, as Pulumi records them: camelCase keys), or a
list of `Resource` for the checks that need the whole stack, and returns what is wrong: a list of messages (resource
checks) or of `Violation` (stack checks, which name the offending resource). Nothing here imports the policy SDK, so
the checks run in unit tests on recorded graphs; `__main__.py` wires them into the CrossGuard policy pack.

During `pulumi preview` some values are not known yet (e.g. a name computed from another resource's output). A
check never guesses about an unknown value: it skips what it cannot see, and the same check runs again with the
real values during `pulumi up`.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- labels and types ------------------------------------------------------------------------------------------

AMBIENT_LABEL, AMBIENT_VALUE = "istio.io/dataplane-mode", "ambient"
INJECTION_LABEL, INJECTION_VALUE = "istio-injection", "enabled"

ISTIO_NAMESPACE = "istio-system"  # Istio's root namespace: policies here without a selector apply mesh-wide
DEFAULT_NAMESPACE = "default"  # what a namespaced object without metadata.namespace lands in (provider default)
# The Istio charts' home (same value as components/model/versions.py; a unit test keeps the two equal).
DEFAULT_CHART_REPOSITORY = "https://blob.istio.io/istio-release/charts"
CLUSTER_PROVIDERS = ("kind", "existing")
WEAK_MTLS_MODES = ("PERMISSIVE", "DISABLE")  # PeerAuthentication modes that accept plaintext

NAMESPACE = "kubernetes:core/v1:Namespace"
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
NAMESPACE_TYPES = (NAMESPACE, NAMESPACE_PATCH)
RELEASE_TYPES = ("kubernetes:helm.sh/v3:Release",)
SERVICE_TYPES = ("kubernetes:core/v1:Service", "kubernetes:core/v1:ServicePatch")
GATEWAY_API_GATEWAY_TYPES = (
    "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    "kubernetes:gateway.networking.k8s.io/v1beta1:Gateway",
)
AUTHORIZATION_POLICY_TYPES = (
    "kubernetes:security.istio.io/v1:AuthorizationPolicy",
    "kubernetes:security.istio.io/v1beta1:AuthorizationPolicy",
)
PEER_AUTHENTICATION_TYPES = (
    "kubernetes:security.istio.io/v1:PeerAuthentication",
    "kubernetes:security.istio.io/v1beta1:PeerAuthentication",
)

_TEMPLATE = ("spec", "template", "spec")
# Where each kind of workload keeps its pod spec.
WORKLOAD_POD_SPECS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:core/v1:ReplicationController": _TEMPLATE,
    "kubernetes:apps/v1:Deployment": _TEMPLATE,
    "kubernetes:apps/v1:StatefulSet": _TEMPLATE,
    "kubernetes:apps/v1:DaemonSet": _TEMPLATE,
    "kubernetes:apps/v1:ReplicaSet": _TEMPLATE,
    "kubernetes:batch/v1:Job": _TEMPLATE,
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Server-side patches of workloads: they may change images, but create no workload of their own.
PATCH_POD_SPECS = {f"{type_}Patch": path for type_, path in WORKLOAD_POD_SPECS.items()}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# Pulumi's wire sentinels for values not known during preview (they are part of the engine's protocol).
_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})

_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_DIGEST = re.compile(r"^[a-z0-9]+([+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_URL = re.compile(r"^(https?|oci)://", re.IGNORECASE)


@dataclass(frozen=True)
class Resource:
    """One resource of the stack, as a stack check sees it."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str = ""
    name: str = ""


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None


# --- plain-data helpers ----------------------------------------------------------------------------------------

def is_unknown(value: Any) -> bool:
    """A value that preview cannot know yet: the engine's sentinel string, or the Python SDK's Unknown marker."""
    if isinstance(value, str):
        return value in _UNKNOWN_SENTINELS
    return type(value).__name__ == "Unknown"


def dig(props: Any, *path: str) -> Any:
    """props[path[0]][path[1]]..., or None when a step is missing, unknown or not an object."""
    value = props
    for key in path:
        if not isinstance(value, Mapping) or is_unknown(value):
            return None
        value = value.get(key)
    return None if is_unknown(value) else value


def known_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def _labels(props: Mapping[str, Any], *path: str) -> dict[str, str]:
    labels = dig(props, *path)
    if not isinstance(labels, Mapping):
        return {}
    return {key: value for key, value in labels.items() if isinstance(value, str) and not is_unknown(value)}


def is_ambient(labels: Mapping[str, str]) -> bool:
    return labels.get(AMBIENT_LABEL) == AMBIENT_VALUE


def is_sidecar_injected(labels: Mapping[str, str]) -> bool:
    return labels.get(INJECTION_LABEL) == INJECTION_VALUE


def is_enrolled(labels: Mapping[str, str]) -> bool:
    return is_ambient(labels) or is_sidecar_injected(labels)


def is_system_namespace(namespace: str) -> bool:
    return namespace == ISTIO_NAMESPACE or namespace.startswith("kube-")


def object_namespace(props: Mapping[str, Any]) -> str | None:
    """metadata.namespace of a namespaced object; `default` when absent; None when not known yet."""
    metadata = props.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if is_unknown(metadata) or is_unknown(namespace):
        return None
    if namespace is None or namespace == "":
        return DEFAULT_NAMESPACE
    return namespace if isinstance(namespace, str) else None


def _object_name(resource: Resource) -> str:
    return known_str(dig(resource.props, "metadata", "name")) or resource.name or "(unnamed)"


def _display(resource: Resource) -> str:
    return f"{resource.resource_type.rsplit(':', 1)[-1]} {_object_name(resource)}"


def namespace_labels(resources: Iterable[Resource]) -> dict[str, list[tuple[Resource, dict[str, str]]]]:
    """Namespace name -> every Namespace/NamespacePatch of the stack that sets its labels, with those labels."""
    found: dict[str, list[tuple[Resource, dict[str, str]]]] = defaultdict(list)
    for resource in resources:
        if resource.resource_type in NAMESPACE_TYPES:
            name = known_str(dig(resource.props, "metadata", "name"))
            if name is not None:
                found[name].append((resource, _labels(resource.props, "metadata", "labels")))
    return found


def enrolled_namespaces(resources: Iterable[Resource]) -> set[str]:
    return {name for name, sources in namespace_labels(resources).items()
            if any(is_enrolled(labels) for _, labels in sources)}


def normalize_repository(url: str) -> str:
    return url.strip().rstrip("/")


def chart_basename(chart: str) -> str:
    """`gateway` for gateway, /charts/gateway, oci://host/charts/gateway or .../gateway-1.31.1.tgz."""
    base = chart.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"(-v?\d+\.\d+\.\d+\S*)?\.tgz$", "", base)


# --- resource checks: (type, props) -> messages -----------------------------------------------------------------

def check_namespace_single_dataplane(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A Namespace or NamespacePatch must not carry both the ambient label and the sidecar-injection label."""
    if resource_type not in NAMESPACE_TYPES:
        return []
    labels = _labels(props, "metadata", "labels")
    if not (is_ambient(labels) and is_sidecar_injected(labels)):
        return []
    name = known_str(dig(props, "metadata", "name")) or "(unnamed)"
    return [f"namespace {name!r} is labelled both {AMBIENT_LABEL}={AMBIENT_VALUE} and "
            f"{INJECTION_LABEL}={INJECTION_VALUE}: its pods would get a sidecar and ztunnel capture at once. Keep one "
            f"data plane: remove {INJECTION_LABEL} (ambient) or {AMBIENT_LABEL} (sidecars)."]


def image_problem(image: Any, pod_annotations: Mapping[str, str] | None = None) -> str | None:
    """Why an image reference is not pinned, or None when it is (an explicit tag other than latest, or a digest)."""
    if not isinstance(image, str) or not image.strip():
        return "it has no image"
    if image == "auto" and "gateway" in (pod_annotations or {}).get("inject.istio.io/templates", "").split(","):
        return None  # Istio's gateway injection replaces `auto` with istiod's own pinned proxy image
    if "@" in image:
        digest = image.split("@", 1)[1]
        return None if _DIGEST.match(digest) else f"its digest {digest!r} is not of the form sha256:<hex>"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "it has no tag, so it means :latest"
    tag = last.split(":", 1)[1]
    if not tag:
        return "its tag is empty"
    if tag.lower() == "latest":
        return "its tag is latest, which moves"
    return None


def check_images_pinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every container of a workload (pod templates included) names its image by a fixed tag or a digest."""
    is_patch = resource_type in PATCH_POD_SPECS
    path = WORKLOAD_POD_SPECS.get(resource_type) or PATCH_POD_SPECS.get(resource_type)
    if path is None:
        return []
    pod_spec = dig(props, *path)
    if not isinstance(pod_spec, Mapping):
        return []
    annotations = _labels(props, *path[:-1], "metadata", "annotations")
    messages = []
    for list_name in CONTAINER_LISTS:
        containers = pod_spec.get(list_name)
        if not isinstance(containers, Sequence) or isinstance(containers, str):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, Mapping):
                continue
            image = container.get("image")
            if is_unknown(image) or (image is None and is_patch):
                continue
            problem = image_problem(image, annotations)
            if problem is not None:
                name = known_str(container.get("name")) or f"{list_name}[{index}]"
                messages.append(f"container {name!r} image {image!r} is not pinned: {problem}. Use an explicit "
                                f"version tag (e.g. :1.20.3) or a digest (@sha256:...).")
    return messages


def _release_label(props: Mapping[str, Any]) -> str:
    name = known_str(props.get("name"))
    chart = known_str(props.get("chart"))
    return f"{name or '(unnamed)'} (chart {chart or '?'})"


def check_release_version_pinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A Helm release names one exact chart version: never empty (the repository's newest) nor a range."""
    if resource_type not in RELEASE_TYPES:
        return []
    version = props.get("version")
    if is_unknown(version):
        return []
    if not isinstance(version, str) or not version.strip():
        return [f"Helm release {_release_label(props)} has no chart version: Helm would install whatever is newest "
                f"in the repository. Set version to an exact chart version, e.g. 1.31.1."]
    if not _EXACT_VERSION.match(version.strip()):
        return [f"Helm release {_release_label(props)} has chart version {version!r}, which is not one exact "
                f"version (x.y.z): ranges and wildcards move. Set an exact chart version, e.g. 1.31.1."]
    return []


def _within(path: str, directory: str) -> bool:
    path, directory = posixpath.normpath(path), posixpath.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def check_release_chart_repository(resource_type: str, props: Mapping[str, Any],
                                   chart_repository: str = DEFAULT_CHART_REPOSITORY,
                                   local_chart_directories: Sequence[str] = ()) -> list[str]:
    """A Helm release takes its chart from the configured repository (http(s) or oci) or an allowed local directory.

    `chart_repository` may itself be a local directory (air-gapped use): it is then accepted as one.
    """
    if resource_type not in RELEASE_TYPES:
        return []
    chart, repo = props.get("chart"), dig(props, "repositoryOpts", "repo")
    if is_unknown(chart) or is_unknown(dig(props, "repositoryOpts")) or is_unknown(repo):
        return []
    allowed_urls = [normalize_repository(chart_repository)] if _URL.match(chart_repository) else []
    allowed_dirs = [d for d in (*local_chart_directories, *([] if allowed_urls else [chart_repository])) if d]
    chart = chart if isinstance(chart, str) else ""
    repo = repo.strip() if isinstance(repo, str) else ""

    if repo:
        source, ok = repo, normalize_repository(repo) in allowed_urls
    elif _URL.match(chart):
        # oci://registry/charts/<chart>, or the URL of a packaged chart: the repository is everything before the name.
        source = chart.rstrip("/").rsplit("/", 1)[0]
        ok = any(chart.startswith(url + "/") for url in allowed_urls)
    else:
        # No repository: Helm reads a local directory (or a `repo/chart` alias of this machine's helm config).
        source = chart
        ok = bool(chart) and any(_within(chart, directory) for directory in allowed_dirs)
    if ok:
        return []
    accepted = " or ".join(repr(x) for x in [*allowed_urls, *allowed_dirs]) or "(nothing configured)"
    return [f"Helm release {_release_label(props)} takes its chart from {source or '(nowhere)'!r}, not from the "
            f"configured chart repository: accepted {accepted}. Take the chart from there, or change this policy's "
            f"chartRepository / localChartDirectories."]


SERVICE_TYPE_ANNOTATION = "networking.istio.io/service-type"
_KIND_NO_LB = ("kind has no load balancer: a LoadBalancer Service never gets an external address (and Helm's wait "
               "for the release never ends). Use NodePort (kind maps it to the host) or ClusterIP")


def check_no_loadbalancer_on_kind(resource_type: str, props: Mapping[str, Any],
                                  cluster_provider: str = "kind") -> list[str]:
    """On kind: no Service of type LoadBalancer, whether written directly, set in a Helm release's values
    (`service.type`, which the Istio gateway chart defaults to LoadBalancer) or deployed by Istio for a Gateway API
    Gateway (LoadBalancer unless annotated `networking.istio.io/service-type`)."""
    if cluster_provider != "kind":
        return []
    if resource_type in SERVICE_TYPES:
        if dig(props, "spec", "type") == "LoadBalancer":
            name = known_str(dig(props, "metadata", "name")) or "(unnamed)"
            return [f"Service {name!r} has type LoadBalancer. {_KIND_NO_LB}."]
        return []
    if resource_type in RELEASE_TYPES:
        values = props.get("values")
        service = values.get("service") if isinstance(values, Mapping) else None
        service_type = service.get("type") if isinstance(service, Mapping) else None
        if is_unknown(values) or is_unknown(service) or is_unknown(service_type):
            return []
        if service_type == "LoadBalancer":
            return [f"Helm release {_release_label(props)} sets values.service.type LoadBalancer. {_KIND_NO_LB}."]
        chart = known_str(props.get("chart"))
        if service_type is None and chart is not None and chart_basename(chart) == "gateway":
            return [f"Helm release {_release_label(props)} leaves values.service.type unset: the Istio gateway chart "
                    f"then creates a LoadBalancer Service. {_KIND_NO_LB} (values.service.type: NodePort)."]
        return []
    if resource_type in GATEWAY_API_GATEWAY_TYPES:
        if dig(props, "spec", "gatewayClassName") != "istio":
            return []
        annotations = dig(props, "metadata", "annotations")
        service_type = annotations.get(SERVICE_TYPE_ANNOTATION) if isinstance(annotations, Mapping) else None
        if is_unknown(annotations) or is_unknown(service_type):
            return []
        if service_type in (None, "LoadBalancer"):
            name = known_str(dig(props, "metadata", "name")) or "(unnamed)"
            return [f"Gateway {name!r} (class istio) makes Istio deploy a LoadBalancer Service. {_KIND_NO_LB}: "
                    f"annotate it {SERVICE_TYPE_ANNOTATION}: NodePort or ClusterIP."]
    return []


# --- stack checks: [Resource] -> [Violation] --------------------------------------------------------------------

def check_single_dataplane_across_resources(resources: Sequence[Resource]) -> list[Violation]:
    """The stack view of the single-data-plane rule: the two labels of one namespace may come from different
    resources (a Namespace with one, a NamespacePatch adding the other). A resource that carries both itself is
    left to the resource check, so each conflict is reported once."""
    violations = []
    for name, sources in sorted(namespace_labels(resources).items()):
        ambient = [r for r, labels in sources if is_ambient(labels)]
        injected = [r for r, labels in sources if is_sidecar_injected(labels)]
        if ambient and injected and not {r.urn for r in ambient} & {r.urn for r in injected}:
            violations.append(Violation(
                f"namespace {name!r} gets {AMBIENT_LABEL}={AMBIENT_VALUE} from "
                f"{', '.join(_display(r) for r in ambient)} and {INJECTION_LABEL}={INJECTION_VALUE} from "
                f"{', '.join(_display(r) for r in injected)}: its pods would get a sidecar and ztunnel capture at "
                f"once. Keep one data plane.",
                injected[0].urn or None))
    return violations


def check_app_namespaces_enrolled(resources: Sequence[Resource],
                                  exempt_namespaces: Iterable[str] = ()) -> list[Violation]:
    """Every namespace where the stack runs app workloads (outside istio-system and kube-*) is enrolled in the mesh
    by a Namespace/NamespacePatch of the stack: ambient or sidecar injection, unless exempted."""
    exempt = set(exempt_namespaces)
    workloads: dict[str, list[Resource]] = defaultdict(list)
    for resource in resources:
        if resource.resource_type in WORKLOAD_POD_SPECS:
            namespace = object_namespace(resource.props)
            if namespace is not None and not is_system_namespace(namespace) and namespace not in exempt:
                workloads[namespace].append(resource)
    enrolled = enrolled_namespaces(resources)
    violations = []
    for namespace, found in sorted(workloads.items()):
        if namespace in enrolled:
            continue
        names = ", ".join(_display(r) for r in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        violations.append(Violation(
            f"namespace {namespace!r} runs app workloads ({names}) but is not enrolled in the mesh: no Namespace or "
            f"NamespacePatch of this stack labels it {AMBIENT_LABEL}={AMBIENT_VALUE} (or "
            f"{INJECTION_LABEL}={INJECTION_VALUE}), so its traffic bypasses mTLS and policy. Enrol it, or list it in "
            f"this policy's exemptNamespaces.",
            found[0].urn or None))
    return violations


def _namespace_wide(props: Mapping[str, Any]) -> bool:
    spec = dig(props, "spec")
    if not isinstance(spec, Mapping):
        return True  # an empty AuthorizationPolicy: allow-nothing for the whole namespace
    return not any(spec.get(key) for key in ("selector", "targetRef", "targetRefs"))


def check_zero_trust_authorization(resources: Sequence[Resource], zero_trust: bool = False) -> list[Violation]:
    """With zero trust on, every enrolled namespace is covered by a namespace-wide AuthorizationPolicy (one without a
    selector or targetRefs), in the namespace itself or mesh-wide in istio-system."""
    if not zero_trust:
        return []
    covered: set[str] = set()
    for resource in resources:
        if resource.resource_type in AUTHORIZATION_POLICY_TYPES and _namespace_wide(resource.props):
            namespace = object_namespace(resource.props)
            if namespace is not None:
                covered.add(namespace)
    if ISTIO_NAMESPACE in covered:
        return []
    urns = {name: next((r.urn for r, _ in sources if r.urn), None)
            for name, sources in namespace_labels(resources).items()}
    return [Violation(f"zero trust: enrolled namespace {namespace!r} has no namespace-wide AuthorizationPolicy "
                      f"(security.istio.io/v1, no selector), so any caller reaches its workloads. Add one (an empty "
                      f"spec denies everything; then ALLOW what is needed), or a mesh-wide one in {ISTIO_NAMESPACE}.",
                      urns.get(namespace))
            for namespace in sorted(enrolled_namespaces(resources) - covered)]


def check_zero_trust_strict_mtls(resources: Sequence[Resource], zero_trust: bool = False) -> list[Violation]:
    """With zero trust on, the mesh-wide PeerAuthentication (istio-system, no selector) has mtls.mode STRICT, and no
    other PeerAuthentication weakens it (PERMISSIVE or DISABLE, for its workloads or one port)."""
    if not zero_trust:
        return []
    mesh_wide: list[Resource] = []
    violations = []
    for resource in resources:
        if resource.resource_type not in PEER_AUTHENTICATION_TYPES:
            continue
        props = resource.props
        if object_namespace(props) == ISTIO_NAMESPACE and not dig(props, "spec", "selector"):
            mesh_wide.append(resource)
            continue
        mode = dig(props, "spec", "mtls", "mode")
        weak = [str(mode)] if mode in WEAK_MTLS_MODES else []
        port_modes = dig(props, "spec", "portLevelMtls")
        if isinstance(port_modes, Mapping):
            weak += [f"{dig(v, 'mode')} on port {port}" for port, v in port_modes.items()
                     if dig(v, "mode") in WEAK_MTLS_MODES]
        if weak:
            violations.append(Violation(
                f"zero trust: PeerAuthentication {object_namespace(props)}/{_object_name(resource)} sets mtls mode "
                f"{', '.join(weak)}: plaintext is accepted there. Use STRICT, or leave the mode UNSET to inherit the "
                f"mesh-wide STRICT.",
                resource.urn or None))
    if not any(dig(r.props, "spec", "mtls", "mode") == "STRICT" for r in mesh_wide):
        fix = f"Set spec.mtls.mode: STRICT on a PeerAuthentication in {ISTIO_NAMESPACE} without a selector."
        if mesh_wide:
            found = mesh_wide[0]
            mode = dig(found.props, "spec", "mtls", "mode") or "UNSET"
            violations.insert(0, Violation(
                f"zero trust: the mesh-wide PeerAuthentication {ISTIO_NAMESPACE}/{_object_name(found)} has mtls mode "
                f"{mode}, not STRICT, so workloads still accept plaintext. {fix}", found.urn or None))
        else:
            violations.insert(0, Violation(
                f"zero trust: no mesh-wide PeerAuthentication in {ISTIO_NAMESPACE}, so workloads still accept "
                f"plaintext. {fix}"))
    return violations


# --- configuration ---------------------------------------------------------------------------------------------

def resolve_cluster_provider(configured: Any, stack_cluster: Any = None) -> str:
    """The policy's clusterProvider if set; else the stack's own `ambient-mesh:cluster.provider`; else kind."""
    if configured in CLUSTER_PROVIDERS:
        return str(configured)
    if isinstance(stack_cluster, Mapping) and stack_cluster.get("provider") in CLUSTER_PROVIDERS:
        return str(stack_cluster["provider"])
    return "kind"


def string_list(value: Any) -> list[str]:
    """A config list of strings (the CLI validates the schema; this also tolerates a single string or nothing)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Sequence):
        return [v for v in value if isinstance(v, str) and v]
    return []
