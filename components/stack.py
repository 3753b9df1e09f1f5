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
from components.smoke import SmokeCheck, SmokeCheckArgs, expected_denied, in_cluster_ingress, verify_hints
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


TITLE = 'grep -o "<title>.*</title>"'


def try_it(config: StackConfig) -> list[str]:
    """The tutorial's own checks, verbatim but for the kubectl context (and namespace), in the tutorial's order."""
    k = kubectl(config)
    ns = config.app.namespace
    app = k if ns == "default" else f"{k} -n {ns}"

    def curl(client: str, url: str) -> str:
        return f"{app} exec deploy/{client} -- curl -s {url} | {TITLE}"

    commands = [f"{k} get nodes -o wide", f"{k} get pods -n {ISTIO_NAMESPACE}"]
    ingress = in_cluster_ingress(config)
    if ingress is not None:
        commands.append(curl("sleep", f"http://{ingress}/productpage"))
    commands += [
        curl("sleep", "http://productpage:9080/"),
        curl("notsleep", "http://productpage:9080/"),
        # The tutorial's spacing, kept as written.
        f"for i in {{1..10}}; do   {curl('notsleep', 'http://productpage:9080/')};   sleep 1; done",
        f"{k} logs -n {ISTIO_NAMESPACE} -l app=ztunnel",
    ]
    return commands


def more_checks(config: StackConfig) -> dict[str, str]:
    """Checks beyond the tutorial: from this machine, the sidecar namespace, and what zero trust denies."""
    k = kubectl(config)
    ns = config.app.namespace
    app = k if ns == "default" else f"{k} -n {ns}"
    commands: dict[str, str] = {}
    url = ingress_url(config)
    if url is not None:
        commands["viaHost"] = f"curl -s {url} | {TITLE}"
        gateway = ingress_gateway(config)
        if config.cluster.provider == "existing" and gateway is not None:
            commands["portForward"] = (f"{k} port-forward -n {gateway[0]} svc/{gateway[1]} "
                                       f"{config.cluster.ingress_host_port}:80")
    if config.sidecar.enabled:
        commands["fromSidecar"] = (f"{k} exec -n {config.sidecar.namespace} deploy/{SIDECAR_CLIENT} -c "
                                   f"{SIDECAR_CLIENT} -- curl -s http://productpage.{ns}:9080/ | {TITLE}")
    status = "curl -s -o /dev/null -w '%{http_code}\\n'"
    for client in expected_denied(config):
        where = ("403 from the waypoint (RBAC: access denied)" if config.waypoint.covers("productpage")
                 else "exit 56: ztunnel resets the connection")
        commands[f"{client}Denied"] = (f"{app} exec deploy/{client} -- {status} http://productpage:9080/; "
                                       f"echo \"exit $?\"  # {where}")
    if config.security.default_deny and not config.waypoint.covers("details"):
        # Only productpage may call details: any other caller is refused at L4.
        commands["deniedAtL4"] = (f"{app} exec deploy/notsleep -- curl -s http://details:9080/details/0; "
                                  "echo \"exit $?\"  # exit 56: ztunnel resets the connection (default deny)")
    if config.security.l7_clients:
        methods = "/".join(config.security.l7_methods)
        client = config.security.l7_clients[0]
        commands["deniedAtL7"] = (f"{app} exec deploy/{client} -- {status} -X DELETE http://productpage:9080/  "
                                  f"# 403 from the waypoint: only {methods} is allowed")
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
        "moreChecks": more_checks(config),
        # What `make verify` should expect of this configuration (denied clients, waypoint, ingress address).
        "verify": verify_hints(config),
    }


def export(stack: AmbientMeshStack) -> None:
    for key, value in stack_outputs(stack).items():
        pulumi.export(key, value)
