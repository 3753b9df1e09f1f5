"""The whole stack: the only code that takes the StackConfig apart, handing each component the slice it uses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.bookinfo import Bookinfo, BookinfoArgs
from components.clients import CurlClients, CurlClientsArgs
from components.cluster import Cluster, ClusterArgs
from components.gateway_api import GatewayApiArgs, GatewayApiCrds
from components.images import ImagePreload, ImagePreloadArgs
from components.ingress import (
    BookinfoGatewayApiIngress,
    BookinfoIngress,
    BookinfoIngressArgs,
    GatewayApiIngressArgs,
)
from components.istio import IstioAmbient, IstioArgs
from components.model import catalog, versions
from components.model.addons import addon_objects
from components.model.charts import istio_releases
from components.model.config import ConfigError, StackConfig
from components.model.gateway_api import ClusterUnreadable, DownloadFailed, Reader, bundle, decide
from components.model.images import LANES, load_environment, preload, pull_environment
from components.model.outputs import more_checks, smoke_triggers, try_it, verify_hints
from components.model.policy import app_policies, peer_authentication_spec
from components.model.preflight import doctor_argv, doctor_script
from components.model.topology import ingress_url
from components.model.validate import parse_config
from components.namespace import AmbientEnrolment, AmbientEnrolmentArgs, AppNamespace, AppNamespaceArgs
from components.observability import Observability, ObservabilityArgs
from components.security import MeshSecurity, MeshSecurityArgs
from components.sidecar import SidecarNamespace, SidecarNamespaceArgs
from components.smoke import SmokeCheck, SmokeCheckArgs
from components.traffic import TrafficRoutes, TrafficRoutesArgs
from components.waypoint import Waypoint, WaypointArgs


def _stack_config_entries() -> dict[str, Any]:
    """Every `ambient-mesh:*` key Pulumi has for this stack, sections and stray flat keys alike, values decoded."""
    prefix = f"{catalog.PROJECT}:"
    keys = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    entries: dict[str, Any] = {}
    for key in sorted(k for k in keys if k.startswith(prefix)):
        value = runtime_config.get_config(key)
        try:
            entries[key[len(prefix):]] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            entries[key[len(prefix):]] = value  # a plain string, e.g. a flat key set without --path
    return entries


def load_config() -> StackConfig:
    """Read and validate the running stack's `ambient-mesh:*` config: every key, known or not."""
    return parse_config(_stack_config_entries())


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A bad config value stops the program with one line (Pulumi prints a RunError's message, no traceback)."""
    try:
        yield
    except (ConfigError, DownloadFailed) as error:
        raise pulumi.RunError(str(error)) from None


def check_existing_cluster(config: StackConfig, reader: Reader | None) -> None:
    """Before any resource: stop if the stack would fight the Gateway API CRDs an existing cluster already has."""
    if reader is None or config.cluster.provider != "existing":
        return
    try:
        installed = reader(config.cluster)
    except ClusterUnreadable as error:
        pulumi.log.warn(f"could not read the cluster's Gateway API CRDs ({error}); not checked against "
                        f"{catalog.PROJECT}:gatewayApi.version")
        return
    problem = decide(installed, config)
    if problem:
        raise pulumi.RunError(problem)


@dataclass
class AmbientMeshStack:
    config: StackConfig
    cluster: Cluster
    images: ImagePreload | None
    gateway_api: GatewayApiCrds
    istio: IstioAmbient
    namespace: AppNamespace
    bookinfo: Bookinfo
    clients: CurlClients
    enrolment: AmbientEnrolment
    ingress: BookinfoIngress | BookinfoGatewayApiIngress | None
    security: MeshSecurity
    waypoint: Waypoint | None
    sidecar: SidecarNamespace | None
    smoke: SmokeCheck | None
    traffic: TrafficRoutes | None = None
    observability: Observability | None = None


def build_stack(config: StackConfig, gateway_api_reader: Reader | None = None) -> AmbientMeshStack:
    """`gateway_api_reader` reads an existing cluster's Gateway API CRDs (kubectl); None: no check (tools, mocks)."""
    check_existing_cluster(config, gateway_api_reader)
    # Read before any resource: a bundle that is not Gateway API's stops the program with nothing registered.
    objects = bundle(config.gateway_api) if config.gateway_api.install else []
    addons = addon_objects(config)  # read before any resource too
    app, cluster_config = config.app, config.cluster

    # On kind the preflight (tools/doctor.py) is the graph's first step: `pulumi up` run without make checks too.
    preflight = (doctor_script(doctor_argv(config, pulumi.get_stack(), in_graph=True))
                 if cluster_config.provider == "kind" else None)
    cluster = Cluster("cluster", ClusterArgs(cluster_config, preflight))
    images = None
    mesh_loaded: list[pulumi.Resource] = []
    app_loaded: list[pulumi.Resource] = []
    if cluster_config.preload_images:
        images = ImagePreload("images", ImagePreloadArgs(
            pull_environment(preload(config)),
            {lane: load_environment(cluster_config, preload(config, lane)) for lane in LANES},
            cluster=cluster.created, after=cluster.preflight))
        # Whatever runs these images waits for them to be in the nodes: no node pulls from a registry.
        mesh_loaded, app_loaded = images.loaded("mesh"), images.loaded("app")
    # Every Kubernetes resource below uses the cluster's provider, handed to each component once.
    on_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
    gateway_api = GatewayApiCrds("gateway-api", GatewayApiArgs(objects), on_cluster)
    istio = IstioAmbient("istio", IstioArgs(istio_releases(
        config.istio, cluster_config.ingress_node_port if app.ingress == "istio" else None), images=mesh_loaded),
        on_cluster)
    # Gateway API objects need their CRDs, and istiod to deploy a proxy for them.
    gateway_api_ready: list[pulumi.Resource] = [*gateway_api.resources, istio.istiod]
    namespace = AppNamespace("app", AppNamespaceArgs(app.namespace, create=app.namespace != "default"), on_cluster)
    # The app does not wait for Istio: enrolling the namespace later captures pods that are already running.
    bookinfo = Bookinfo("bookinfo", BookinfoArgs(namespace.name, versions.BOOKINFO_IMAGE_REGISTRY, app.bookinfo_tag,
                                                 wait_for=app_loaded), on_cluster)
    clients = CurlClients("clients", CurlClientsArgs(
        namespace.name, versions.CURL_IMAGE, app.clients,
        avoid={catalog.CLIENT_AVOIDING_PRODUCTPAGE: catalog.PRODUCTPAGE}, wait_for=app_loaded), on_cluster)
    enrolment = AmbientEnrolment("ambient", AmbientEnrolmentArgs(namespace.name, istio.dataplane,
                                                                 running=[bookinfo, clients]), on_cluster)
    ingress: BookinfoIngress | BookinfoGatewayApiIngress | None = None
    if app.ingress == "istio":
        ingress = BookinfoIngress("ingress", BookinfoIngressArgs(namespace.name, istio.config_api), on_cluster)
    elif app.ingress == "gateway-api":
        ingress = BookinfoGatewayApiIngress("ingress", GatewayApiIngressArgs(
            namespace.name, gateway_api_ready, cluster_config.ingress_node_port), on_cluster)
    waypoint = None
    if config.waypoint.mode != "none":
        services = {name: svc.metadata.name for name, svc in bookinfo.services.items()}
        waypoint = Waypoint("waypoint", WaypointArgs(config.waypoint, namespace.name, gateway_api_ready, services),
                            on_cluster)
    traffic = None
    if config.traffic.routes:
        traffic = TrafficRoutes("traffic", TrafficRoutesArgs(config.traffic, namespace.name, [*gateway_api.resources]),
                                on_cluster)
    observability = None
    if config.observability.addons:
        observability = Observability("observability", ObservabilityArgs(
            addons, istio.namespace, wait_for=app_loaded), on_cluster)
    sidecar = None
    if config.sidecar.enabled:
        sidecar = SidecarNamespace("sidecar", SidecarNamespaceArgs(config.sidecar, versions.CURL_IMAGE,
                                                                   [istio.istiod], images=app_loaded), on_cluster)
    security = MeshSecurity("security", MeshSecurityArgs(
        peer_authentication_spec(config), app_policies(config), namespace.name, istio.config_api,
        deny_by_default=[sidecar.namespace.metadata.name] if sidecar and config.security.default_deny else []),
        on_cluster)
    smoke = None
    if config.verify.smoke_check:
        # The end of the graph: it checks what everything else built.
        parts = (istio, enrolment, bookinfo, clients, security, ingress, waypoint, sidecar, traffic)
        hints = verify_hints(config)
        smoke = SmokeCheck("smoke", SmokeCheckArgs(
            kubeconfig=cluster.kubeconfig, namespace=namespace.name,
            context=hints["context"] if cluster_config.provider == "existing" else None,
            host_url=hints["hostUrl"], ingress_address=hints["ingressAddress"],
            expect_denied=hints["expectDenied"], clients=app.clients, after=[c for c in parts if c is not None],
            triggers=smoke_triggers(config)))
    return AmbientMeshStack(config, cluster, images, gateway_api, istio, namespace, bookinfo, clients, enrolment,
                            ingress, security, waypoint, sidecar, smoke, traffic, observability)


def stack_outputs(stack: AmbientMeshStack) -> dict[str, Any]:
    config = stack.config
    return {
        "ingressUrl": ingress_url(config),
        "clusterName": stack.cluster.cluster_name,
        "kubeconfig": stack.cluster.kubeconfig,
        "istioVersion": config.istio.version,
        "appNamespace": stack.namespace.name,
        "tryIt": try_it(config, pulumi.get_stack()),
        "moreChecks": more_checks(config),
        # What `make verify` should expect of this configuration (denied clients, waypoint, ingress address).
        "verify": verify_hints(config),
    }


def export(stack: AmbientMeshStack) -> None:
    for key, value in stack_outputs(stack).items():
        pulumi.export(key, value)
