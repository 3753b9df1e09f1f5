"""The whole stack: which component feeds which, and what the stack exports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.bookinfo import Bookinfo, BookinfoArgs
from components.clients import CurlClients, CurlClientsArgs
from components.cluster import Cluster, ClusterArgs, kube_context
from components.config import StackConfig
from components.gateway_api import GatewayApiArgs, GatewayApiCrds, Reader, check_existing_cluster
from components.identities import SIDECAR_CLIENT
from components.ingress import (
    BookinfoGatewayApiIngress,
    BookinfoIngress,
    BookinfoIngressArgs,
    GatewayApiIngressArgs,
    ingress_gateway,
    ingress_url,
)
from components.istio import ISTIO_NAMESPACE, IstioAmbient, IstioArgs
from components.namespace import AmbientEnrolment, AmbientEnrolmentArgs, AppNamespace, AppNamespaceArgs
from components.security import MeshSecurity, MeshSecurityArgs
from components.sidecar import SidecarNamespace, SidecarNamespaceArgs
from components.smoke import SmokeCheck, SmokeCheckArgs, in_cluster_ingress, verify_hints
from components.waypoint import Waypoint, WaypointArgs


@dataclass
class AmbientMeshStack:
    config: StackConfig
    cluster: Cluster
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


def build_stack(config: StackConfig, gateway_api_reader: Reader | None = None) -> AmbientMeshStack:
    """`gateway_api_reader` reads an existing cluster's Gateway API CRDs (kubectl); None: no check (tools, mocks)."""
    check_existing_cluster(config, gateway_api_reader)
    cluster = Cluster("cluster", ClusterArgs(config.cluster))
    provider = cluster.provider
    gateway_api = GatewayApiCrds("gateway-api", GatewayApiArgs(config.gateway_api, provider))
    istio = IstioAmbient("istio", IstioArgs(config.istio, config.cluster, provider,
                                            ingress_gateway=config.app.ingress == "istio"))
    # Gateway API objects need their CRDs, and istiod to deploy a proxy for them.
    gateway_api_ready: list[pulumi.Resource] = [*gateway_api.resources, istio.istiod]
    namespace = AppNamespace("app", AppNamespaceArgs(config.app.namespace, config.app.create_namespace, provider))
    # The app does not wait for Istio: enrolling the namespace later captures pods that are already running.
    bookinfo = Bookinfo("bookinfo", BookinfoArgs(namespace.name, config.app.bookinfo_tag, provider))
    clients = CurlClients("clients", CurlClientsArgs(namespace.name, provider))
    enrolment = AmbientEnrolment("ambient", AmbientEnrolmentArgs(namespace.name, istio.dataplane, provider))
    ingress: BookinfoIngress | BookinfoGatewayApiIngress | None = None
    if config.app.ingress == "istio":
        ingress = BookinfoIngress("ingress", BookinfoIngressArgs(namespace.name, istio.config_api, provider))
    elif config.app.ingress == "gateway-api":
        ingress = BookinfoGatewayApiIngress("ingress", GatewayApiIngressArgs(
            namespace.name, gateway_api_ready, config.cluster.ingress_node_port, provider))
    waypoint = None
    if config.waypoint.mode != "none":
        services = {name: svc.metadata.name for name, svc in bookinfo.services.items()}
        waypoint = Waypoint("waypoint", WaypointArgs(config.waypoint, namespace.name, gateway_api_ready, provider,
                                                     services))
    sidecar = None
    if config.sidecar.enabled:
        sidecar = SidecarNamespace("sidecar", SidecarNamespaceArgs(config.sidecar, [istio.istiod], provider))
    security = MeshSecurity("security", MeshSecurityArgs(
        config, namespace.name, istio.config_api, provider,
        other_namespaces=[sidecar.namespace.metadata.name] if sidecar else []))
    smoke = None
    if config.verify.smoke_check:
        # The end of the graph: it checks what everything else built.
        parts = (istio, enrolment, bookinfo, clients, security, ingress, waypoint, sidecar)
        everything: list[pulumi.Resource] = [c for c in parts if c is not None]
        smoke = SmokeCheck("smoke", SmokeCheckArgs.for_stack(config, cluster.kubeconfig, namespace.name,
                                                             after=everything))
    return AmbientMeshStack(config, cluster, gateway_api, istio, namespace, bookinfo, clients, enrolment, ingress,
                            security, waypoint, sidecar, smoke)


def kubectl(config: StackConfig) -> str:
    context = kube_context(config.cluster)
    return f"kubectl --context {context}" if context else "kubectl"


def try_it(config: StackConfig) -> dict[str, str]:
    """The tutorial's checks, ready to paste."""
    k, ns = kubectl(config), config.app.namespace
    title = "grep -o '<title>.*</title>'"
    commands = {
        "fromSleep": f"{k} exec -n {ns} deploy/sleep -- curl -s http://productpage:9080/ | {title}",
        "fromNotsleep": f"{k} exec -n {ns} deploy/notsleep -- curl -s http://productpage:9080/ | {title}",
        "ztunnelLogs": f"{k} logs -n {ISTIO_NAMESPACE} -l app=ztunnel --tail 20",
    }
    url = ingress_url(config)
    if url is not None:
        commands["viaIngress"] = f"curl -s {url} | {title}"
        commands["fromSleepViaIngress"] = (f"{k} exec -n {ns} deploy/sleep -- curl -s "
                                           f"http://{in_cluster_ingress(config)}/productpage | {title}")
        commands["loop"] = f"for i in $(seq 1 20); do curl -s {url} | {title}; sleep 1; done"
        gateway = ingress_gateway(config)
        if config.cluster.provider == "existing" and gateway is not None:
            commands["portForward"] = (f"{k} port-forward -n {gateway[0]} svc/{gateway[1]} "
                                       f"{config.cluster.ingress_host_port}:80")
    if config.sidecar.enabled:
        commands["fromSidecar"] = (f"{k} exec -n {config.sidecar.namespace} deploy/{SIDECAR_CLIENT} -c "
                                   f"{SIDECAR_CLIENT} -- curl -s http://productpage.{ns}:9080/ | {title}")
    if config.security.l7_clients:
        commands["l7DeleteDenied"] = (f"{k} exec -n {ns} deploy/sleep -- curl -s -o /dev/null -w '%{{http_code}}\\n' "
                                      "-X DELETE http://productpage:9080/  # 403: only "
                                      + "/".join(config.security.l7_methods) + " is allowed")
    return commands


def stack_outputs(stack: AmbientMeshStack) -> dict[str, Any]:
    config = stack.config
    return {
        "ingressUrl": ingress_url(config),
        "clusterName": stack.cluster.cluster_name,
        "kubeconfig": stack.cluster.kubeconfig,
        "istioVersion": config.istio.version,
        "appNamespace": stack.namespace.name,
        "tryIt": try_it(config),
        # What `make verify` should expect of this configuration (denied clients, waypoint, ingress address).
        "verify": verify_hints(config),
    }


def export(stack: AmbientMeshStack) -> None:
    for key, value in stack_outputs(stack).items():
        pulumi.export(key, value)
