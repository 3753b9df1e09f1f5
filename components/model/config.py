"""Typed stack configuration and the reading of each section.

Every key is read and checked before any resource is registered: a bad value stops the program with one message
naming the key, the value received and what is accepted. Rules that need the stack's topology (identities) are
in validate.py, which is what callers use: `validate.parse_config(raw)`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from components.model import versions
from components.model.catalog import BOOKINFO, GUIDE_CLIENTS, ISTIO_NAMESPACE, PROJECT

ClusterProvider = Literal["kind", "existing"]
ResourceProfile = Literal["laptop", "chart-defaults"]
IngressMode = Literal["istio", "gateway-api", "none"]
MtlsMode = Literal["strict", "permissive"]
WaypointMode = Literal["none", "namespace", "services"]
Guide = Literal["90daysofdevops", "istio-getting-started"]

GatewayApiMode = Literal["install", "skip"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# The accepted values, read off the types above so that each list is written once.
CLUSTER_PROVIDERS: tuple[ClusterProvider, ...] = get_args(ClusterProvider)
RESOURCE_PROFILES: tuple[ResourceProfile, ...] = get_args(ResourceProfile)
INGRESS_MODES: tuple[IngressMode, ...] = get_args(IngressMode)
MTLS_MODES: tuple[MtlsMode, ...] = get_args(MtlsMode)
WAYPOINT_MODES: tuple[WaypointMode, ...] = get_args(WaypointMode)
GUIDES: tuple[Guide, ...] = get_args(Guide)
GATEWAY_API_MODES: tuple[GatewayApiMode, ...] = get_args(GatewayApiMode)
HTTP_METHODS: tuple[HttpMethod, ...] = get_args(HttpMethod)
MAX_WORKERS = 10
NODE_PORT_RANGE = (30000, 32767)

_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_VSEMVER = re.compile(r"^v\d+\.\d+\.\d+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_URL = re.compile(r"^(https?|oci)://\S+$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


class ConfigError(ValueError):
    """A configuration value that the stack cannot use (the program turns it into one line, no traceback)."""

    def __init__(self, key: str, value: Any, accepted: str) -> None:
        self.key = key
        self.value = value
        self.accepted = accepted
        super().__init__(f"invalid config {PROJECT}:{key}: got {value!r}; accepted: {accepted}")


@dataclass(frozen=True)
class ClusterConfig:
    provider: ClusterProvider = "kind"
    name: str = "ambient"
    workers: int = 2
    node_image: str | None = None
    # Host port that kind maps to the ingress gateway's NodePort: http://localhost:<port>/productpage.
    ingress_host_port: int = 8080
    ingress_node_port: int = 30080
    kubeconfig: str | None = None
    context: str | None = None
    # kind only: pull each image once on the host and load it into the nodes (components/model/images.py).
    preload_images: bool = True
    # kind only: let kubelet run on a cgroup v1 host (its failCgroupV1: false); kubelet 1.35+ refuses otherwise.
    allow_cgroup_v1: bool = False

    @property
    def nodes(self) -> int:
        return 1 + self.workers


@dataclass(frozen=True)
class IstioConfig:
    version: str = versions.ISTIO_VERSION
    # A Helm repository URL, or a local directory holding one sub-directory per chart (air-gapped use, tests).
    repository: str = versions.ISTIO_CHART_REPOSITORY
    resource_profile: ResourceProfile = "laptop"

    @property
    def local_charts(self) -> bool:
        return not _URL.match(self.repository)


@dataclass(frozen=True)
class GatewayApiConfig:
    mode: GatewayApiMode = "install"
    version: str = versions.GATEWAY_API_VERSION
    # URL or local file of the CRD bundle; empty means the official release of `version`.
    source: str = ""

    @property
    def install(self) -> bool:
        return self.mode == "install"

    @property
    def local_source(self) -> bool:
        """A configured local file (read at start-up), not a URL or the release's default download."""
        return bool(self.source) and not _URL.match(self.source)

    @property
    def resolved_source(self) -> str:
        return self.source or versions.GATEWAY_API_RELEASE_URL.format(version=self.version)


@dataclass(frozen=True)
class AppConfig:
    namespace: str = "default"
    bookinfo_tag: str = versions.BOOKINFO_TAG
    ingress: IngressMode = "istio"
    # Which guide the stack codifies: its tryIt commands, in its order, and its curl clients.
    guide: Guide = "90daysofdevops"

    @property
    def clients(self) -> tuple[str, ...]:
        return GUIDE_CLIENTS[self.guide]

    @property
    def create_namespace(self) -> bool:
        # `default` always exists; any other namespace is ours to create (and to delete on destroy).
        return self.namespace != "default"


@dataclass(frozen=True)
class SecurityConfig:
    mtls: MtlsMode = "strict"
    # Identities allowed to reach productpage, enforced by ztunnel (L4): `ingress`, a ServiceAccount of the app
    # namespace (`sleep`), or `<namespace>/<serviceaccount>`. Empty: no L4 policy.
    productpage_clients: tuple[str, ...] = ()
    default_deny: bool = False
    # L7 rule enforced by the waypoint: these identities, these HTTP methods. Empty: no L7 policy.
    l7_clients: tuple[str, ...] = ()
    l7_methods: tuple[str, ...] = ("GET",)


@dataclass(frozen=True)
class WaypointConfig:
    mode: WaypointMode = "none"
    name: str = "waypoint"
    services: tuple[str, ...] = ()

    def covers(self, service: str) -> bool:
        return self.mode == "namespace" or (self.mode == "services" and service in self.services)


@dataclass(frozen=True)
class SidecarConfig:
    enabled: bool = False
    namespace: str = "sidecar"


@dataclass(frozen=True)
class Route:
    """One service's traffic split by version (Istio's getting-started: reviews 90 % v1, 10 % v2)."""

    service: str
    weights: tuple[tuple[str, int], ...]  # (version, weight), in the stack file's order; the weights sum to 100

    def version_service(self, version: str) -> str:
        """The Service of one version (bookinfo-versions.yaml's `reviews-v1`), which the route's backends name."""
        return f"{self.service}-{version}"


@dataclass(frozen=True)
class TrafficConfig:
    # Weighted routes through the waypoint: an HTTPRoute whose parent is the service's own Service.
    routes: tuple[Route, ...] = ()


ADDON_NAMES = ("prometheus", "kiali", "grafana")


@dataclass(frozen=True)
class ObservabilityConfig:
    # Istio's add-ons (samples/addons of istio.version's release): prometheus, kiali, grafana.
    addons: tuple[str, ...] = ()
    # A local directory holding <addon>.yaml (air-gapped use, tests); empty: the release branch's own files.
    source: str = ""


@dataclass(frozen=True)
class VerifyConfig:
    # Run verify's core checks as the last step of `pulumi up` (re-run only when the config changes).
    smoke_check: bool = True


@dataclass(frozen=True)
class StackConfig:
    cluster: ClusterConfig
    istio: IstioConfig
    gateway_api: GatewayApiConfig
    app: AppConfig
    security: SecurityConfig = SecurityConfig()
    waypoint: WaypointConfig = WaypointConfig()
    sidecar: SidecarConfig = SidecarConfig()
    verify: VerifyConfig = VerifyConfig()
    traffic: TrafficConfig = TrafficConfig()
    observability: ObservabilityConfig = ObservabilityConfig()


# --- parsing -------------------------------------------------------------------------------------------------

SECTIONS = {
    "cluster": ("provider", "name", "workers", "nodeImage", "ingressHostPort", "ingressNodePort", "kubeconfig",
                "context", "preloadImages", "allowCgroupV1"),
    "istio": ("version", "repository", "resourceProfile"),
    "gatewayApi": ("mode", "version", "source"),
    "app": ("namespace", "bookinfoTag", "ingress", "guide"),
    "security": ("mtls", "productpageClients", "defaultDeny", "l7Clients", "l7Methods"),
    "waypoint": ("mode", "name", "services"),
    "sidecar": ("enabled", "namespace"),
    "verify": ("smokeCheck",),
    "traffic": ("routes",),
    "observability": ("addons", "source"),
}


class _Section:
    """Typed reads of one config object, each naming its full key in errors."""

    def __init__(self, name: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(name, raw, f"an object with keys {', '.join(SECTIONS[name])}")
        unknown = sorted(set(raw) - set(SECTIONS[name]))
        if unknown:
            raise ConfigError(f"{name}.{unknown[0]}", raw[unknown[0]],
                              f"one of the keys {', '.join(SECTIONS[name])} (unknown key"
                              f"{_did_you_mean(unknown[0], SECTIONS[name])})")
        self.name = name
        self.raw = raw

    def key(self, field: str) -> str:
        return f"{self.name}.{field}"

    def string(self, field: str, default: str, pattern: re.Pattern[str] | None = None,
               accepted: str = "a non-empty string") -> str:
        value = self.raw.get(field, default)
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
            raise ConfigError(self.key(field), value, accepted)
        return value

    def optional_string(self, field: str, accepted: str = "a non-empty string or nothing",
                        pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.raw.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise ConfigError(self.key(field), value, accepted)
        return value

    def choice(self, field: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw.get(field, default)
        if value not in choices:
            raise ConfigError(self.key(field), value, "one of " + ", ".join(choices))
        return cast(str, value)

    def boolean(self, field: str, default: bool) -> bool:
        value = self.raw.get(field, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(field), value, "true or false")
        return value

    def strings(self, field: str, default: tuple[str, ...], accepted: str,
                pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self.raw.get(field, list(default))
        if value is None:
            value = []
        if not isinstance(value, list | tuple):
            raise ConfigError(self.key(field), value, f"a list of {accepted}")
        for item in value:
            if (not isinstance(item, str) or (pattern is not None and not pattern.match(item))
                    or (choices is not None and item not in choices)):
                raise ConfigError(self.key(field), item, accepted)
        if len(set(value)) != len(value):
            raise ConfigError(self.key(field), value, f"a list of {accepted}, each once")
        return tuple(value)

    def integer(self, field: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(field, default)
        # YAML `workers: "2"` arrives as a string; bool is an int in Python and never a count or a port.
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(self.key(field), value, f"an integer from {low} to {high}")
        return value


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _unknown_section(name: str, value: Any) -> str:
    """What to write instead of an unknown top-level key: a flat `section.key` or a misspelled section."""
    section, _, key = name.partition(".")
    if key and section in SECTIONS:
        shown = value if isinstance(value, str) else json.dumps(value)
        return (f"a key inside the {section} object, which a flat key `{PROJECT}:{name}` is not: set it with "
                f"`pulumi config set --path '{name}' {shown}`"
                + ("" if key in SECTIONS[section] else _did_you_mean(key, SECTIONS[section])))
    return "one of the sections " + ", ".join(SECTIONS) + _did_you_mean(name, SECTIONS)


def read_sections(raw: Mapping[str, Any]) -> StackConfig:
    """The typed config from plain data (the `ambient-mesh:*` objects of a stack file), every section checked, and
    the rules across sections that need no topology; validate.parse_config adds the rest."""
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], _unknown_section(unknown[0], raw[unknown[0]]))
    config = StackConfig(
        cluster=_parse_cluster(_Section("cluster", raw.get("cluster"))),
        istio=_parse_istio(_Section("istio", raw.get("istio"))),
        gateway_api=_parse_gateway_api(_Section("gatewayApi", raw.get("gatewayApi"))),
        app=_parse_app(_Section("app", raw.get("app"))),
        security=_parse_security(_Section("security", raw.get("security"))),
        waypoint=_parse_waypoint(_Section("waypoint", raw.get("waypoint"))),
        sidecar=_parse_sidecar(_Section("sidecar", raw.get("sidecar"))),
        verify=VerifyConfig(smoke_check=_Section("verify", raw.get("verify")).boolean("smokeCheck", True)),
        traffic=_parse_traffic(_Section("traffic", raw.get("traffic"))),
        observability=_parse_observability(_Section("observability", raw.get("observability"))),
    )
    _check_versions(config)
    return config


def _parse_cluster(s: _Section) -> ClusterConfig:
    d = ClusterConfig()
    provider = s.raw.get("provider", d.provider)
    if provider not in CLUSTER_PROVIDERS:
        hint = " (K3s does not work with Istio ambient's CNI; use kind, or existing for minikube and others)"
        raise ConfigError(s.key("provider"), provider,
                          "one of " + ", ".join(CLUSTER_PROVIDERS) + (hint if provider in ("k3s", "k3d") else ""))
    name = s.string("name", d.name, _DNS_LABEL, "a lower-case DNS label of at most 40 characters, e.g. ambient")
    if len(name) > 40:
        raise ConfigError(s.key("name"), name, "a lower-case DNS label of at most 40 characters, e.g. ambient")
    kubeconfig = s.optional_string("kubeconfig", "a path to a kubeconfig file")
    context = s.optional_string("context", "a kubeconfig context name")
    if provider == "existing":
        if kubeconfig is None and context is None:
            raise ConfigError(s.key("kubeconfig"), None,
                              "for provider existing, a kubeconfig path and/or a context (e.g. context: minikube)")
        if kubeconfig is not None and not Path(os.path.expanduser(kubeconfig)).is_file():
            raise ConfigError(s.key("kubeconfig"), kubeconfig, "the path of an existing kubeconfig file")
    elif kubeconfig is not None or context is not None:
        field = "kubeconfig" if kubeconfig is not None else "context"
        raise ConfigError(s.key(field), kubeconfig or context,
                          "nothing for provider kind (the stack reads the kind cluster's own kubeconfig)")
    # Images are side-loaded into kind's nodes; an existing cluster pulls its own (the key means nothing there).
    preload_images = s.boolean("preloadImages", d.preload_images) and provider == "kind"
    # Read on kind only (the kind config, the preflight): an existing cluster's kubelets are not the stack's.
    allow_cgroup_v1 = s.boolean("allowCgroupV1", d.allow_cgroup_v1)
    return ClusterConfig(
        provider=cast(ClusterProvider, provider),
        name=name,
        workers=s.integer("workers", d.workers, 0, MAX_WORKERS),
        node_image=s.optional_string("nodeImage", "a kind node image reference such as kindest/node:v1.35.0",
                                     _IMAGE),
        ingress_host_port=s.integer("ingressHostPort", d.ingress_host_port, 1, 65535),
        ingress_node_port=s.integer("ingressNodePort", d.ingress_node_port, *NODE_PORT_RANGE),
        kubeconfig=os.path.expanduser(kubeconfig) if kubeconfig else None,
        context=context,
        preload_images=preload_images,
        allow_cgroup_v1=allow_cgroup_v1,
    )


def _parse_istio(s: _Section) -> IstioConfig:
    d = IstioConfig()
    version = s.string("version", d.version, _SEMVER, f"an Istio release as x.y.z, e.g. {versions.ISTIO_VERSION}")
    repository = s.string("repository", d.repository,
                          accepted="an http(s):// or oci:// chart repository, or a local directory of charts")
    if not _URL.match(repository):
        charts = Path(os.path.expanduser(repository))
        if not charts.is_dir():
            raise ConfigError(s.key("repository"), repository,
                              "an http(s):// or oci:// chart repository, or an existing local directory of charts")
        # Absolute, symlinks kept: a link the user re-points (say, at another version's charts) stays one path.
        repository = os.path.abspath(charts)
    return IstioConfig(
        version=version,
        repository=repository,
        resource_profile=cast(ResourceProfile, s.choice("resourceProfile", d.resource_profile, RESOURCE_PROFILES)),
    )


def _parse_gateway_api(s: _Section) -> GatewayApiConfig:
    d = GatewayApiConfig()
    mode = s.choice("mode", d.mode, GATEWAY_API_MODES)
    version = s.string("version", d.version, _VSEMVER,
                       f"a Gateway API release as vX.Y.Z, e.g. {versions.GATEWAY_API_VERSION}")
    source = s.optional_string("source", "an http(s):// URL or a local YAML file") or ""
    if source and not _URL.match(source):
        path = Path(os.path.expanduser(source))
        if not path.is_file():
            raise ConfigError(s.key("source"), source, "an http(s):// URL or an existing local YAML file")
        source = os.path.abspath(path)
    return GatewayApiConfig(mode=cast(GatewayApiMode, mode), version=version, source=source)


def _own_namespace(s: _Section, field: str, default: str) -> str:
    """A namespace for the stack's workloads: never Istio's own or a system one."""
    accepted = "a namespace of your own (not istio-system or kube-*), lower-case DNS label, at most 63 characters"
    namespace = s.string(field, default, _DNS_LABEL, accepted)
    if len(namespace) > 63 or namespace.startswith("kube-") or namespace == ISTIO_NAMESPACE:
        raise ConfigError(s.key(field), namespace, accepted)
    return namespace


def _parse_app(s: _Section) -> AppConfig:
    d = AppConfig()
    return AppConfig(
        namespace=_own_namespace(s, "namespace", d.namespace),
        bookinfo_tag=s.string("bookinfoTag", d.bookinfo_tag, _SEMVER, "a Bookinfo image tag as x.y.z, e.g. 1.20.3"),
        ingress=cast(IngressMode, s.choice("ingress", d.ingress, INGRESS_MODES)),
        guide=cast(Guide, s.choice("guide", d.guide, GUIDES)),
    )


_IDENTITY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


def _parse_security(s: _Section) -> SecurityConfig:
    d = SecurityConfig()
    identity = "identities: ingress, a ServiceAccount name of the app namespace, or <namespace>/<serviceaccount>"
    return SecurityConfig(
        mtls=cast(MtlsMode, s.choice("mtls", d.mtls, MTLS_MODES)),
        productpage_clients=s.strings("productpageClients", d.productpage_clients, identity, _IDENTITY),
        default_deny=s.boolean("defaultDeny", d.default_deny),
        l7_clients=s.strings("l7Clients", d.l7_clients, identity, _IDENTITY),
        l7_methods=s.strings("l7Methods", d.l7_methods, "HTTP methods: " + ", ".join(HTTP_METHODS),
                             choices=HTTP_METHODS),
    )


def _parse_waypoint(s: _Section) -> WaypointConfig:
    d = WaypointConfig()
    mode = cast(WaypointMode, s.choice("mode", d.mode, WAYPOINT_MODES))
    services = s.strings("services", d.services, "Bookinfo service names", _DNS_LABEL)
    if mode == "services" and not services:
        raise ConfigError(s.key("services"), [], "for mode services, at least one service, e.g. [productpage]")
    if mode != "services" and services:
        raise ConfigError(s.key("services"), list(services), "nothing unless mode is services")
    return WaypointConfig(mode=mode, name=s.string("name", d.name, _DNS_LABEL, "a DNS label, e.g. waypoint"),
                          services=services)


def _parse_sidecar(s: _Section) -> SidecarConfig:
    d = SidecarConfig()
    return SidecarConfig(
        enabled=s.boolean("enabled", d.enabled),
        namespace=_own_namespace(s, "namespace", d.namespace),
    )


def _parse_traffic(s: _Section) -> TrafficConfig:
    """`routes: {reviews: {v1: 90, v2: 10}}`: per Bookinfo service, integer weights of its versions summing to 100."""
    raw = s.raw.get("routes") or {}
    example = "e.g. {reviews: {v1: 90, v2: 10}}"
    if not isinstance(raw, Mapping):
        raise ConfigError(s.key("routes"), raw, f"an object of Bookinfo services to version weights, {example}")
    known = {service.name: service.versions for service in BOOKINFO}
    routes = []
    for service, weights in raw.items():
        key = f"{s.key('routes')}.{service}"
        if service not in known:
            raise ConfigError(key, weights, "a Bookinfo service: " + ", ".join(known) + _did_you_mean(service, known))
        versions_of = known[service]
        if not isinstance(weights, Mapping) or not weights:
            raise ConfigError(key, weights, f"an object of {service}'s versions ({', '.join(versions_of)}) to "
                                            f"weights, {example}")
        for version, weight in weights.items():
            if version not in versions_of:
                raise ConfigError(f"{key}.{version}", weight, f"a version of {service}: " + ", ".join(versions_of))
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                raise ConfigError(f"{key}.{version}", weight, "an integer weight from 0 to 100")
        total = sum(weights.values())
        if total != 100:
            raise ConfigError(key, dict(weights), f"weights that sum to 100 (these sum to {total})")
        routes.append(Route(service, tuple((str(v), int(w)) for v, w in weights.items())))
    return TrafficConfig(routes=tuple(routes))


def _parse_observability(s: _Section) -> ObservabilityConfig:
    addons = s.strings("addons", (), "Istio's add-ons: " + ", ".join(ADDON_NAMES), choices=ADDON_NAMES)
    for needs_prometheus in ("kiali", "grafana"):
        if needs_prometheus in addons and "prometheus" not in addons:
            raise ConfigError(s.key("addons"), list(addons),
                              f"a list with prometheus too: {needs_prometheus} reads its metrics from Prometheus")
    source = s.optional_string("source", "a local directory of Istio's samples/addons files, or nothing") or ""
    if source:
        path = Path(os.path.expanduser(source))
        missing = [a for a in addons if not (path / f"{a}.yaml").is_file()]
        if not path.is_dir() or missing:
            raise ConfigError(s.key("source"), source, "a local directory with " + ", ".join(
                f"{a}.yaml" for a in addons or ADDON_NAMES) + " (Istio's samples/addons), or nothing")
        source = os.path.abspath(path)
    # In the order Istio's docs apply them: Prometheus first.
    return ObservabilityConfig(addons=tuple(a for a in ADDON_NAMES if a in addons), source=source)


def _check_versions(config: StackConfig) -> None:
    """Versions that belong together (versions.COMPATIBILITY), each mismatch named by the key to change."""
    istio_minor = versions.minor(config.istio.version)
    compat = versions.compatibility(config.istio.version)
    if compat is None:
        raise ConfigError("istio.version", config.istio.version,
                          "a release of an Istio minor this stack knows: " + ", ".join(versions.COMPATIBILITY)
                          + " (components/model/versions.py)")
    # Enforced in skip mode too: the version then names the bundle the stack expects the cluster to have.
    if versions.minor(config.gateway_api.version) != compat.gateway_api:
        example = versions.GATEWAY_API_VERSION
        raise ConfigError("gatewayApi.version", config.gateway_api.version,
                          f"a Gateway API v{compat.gateway_api}.x release, the minor Istio {istio_minor} is built "
                          "against" + (f", e.g. {example}" if versions.minor(example) == compat.gateway_api else ""))
    image = config.cluster.node_image
    if image:
        low, high = compat.kubernetes
        tag, digest = versions.image_tag_and_digest(image)
        kubernetes = versions.node_image_kubernetes(image)
        # A digest alone pins the image exactly but hides its version: accepted unchecked.
        if (tag is None and digest is None) or (tag is not None and kubernetes is None) or (
                kubernetes is not None and not versions.supports_kubernetes(compat, kubernetes)):
            raise ConfigError("cluster.nodeImage", image,
                              f"a kind node image tagged vX.Y.Z with Kubernetes {low} to {high} (what Istio "
                              f"{istio_minor} supports), e.g. kindest/node:v{high}.<patch>, optionally @sha256:...; "
                              "or one pinned by digest alone (its version is then not checked)")


def read_stack_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `ambient-mesh:*` objects of a Pulumi.<stack>.yaml, keyed by section (for tools that run without Pulumi)."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    prefix = f"{PROJECT}:"
    return {key[len(prefix):]: value for key, value in (document.get("config") or {}).items()
            if key.startswith(prefix)}
