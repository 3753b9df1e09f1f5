"""The whole stack: which component feeds which, and what the stack exports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.bookinfo import Bookinfo, BookinfoArgs
from components.clients import CurlClients, CurlClientsArgs
from components.cluster import Cluster, ClusterArgs
from components.config import StackConfig
from components.gateway_api import GatewayApiArgs, GatewayApiCrds
from components.ingress import BookinfoIngress, BookinfoIngressArgs
from components.istio import INGRESS_RELEASE, ISTIO_NAMESPACE, IstioAmbient, IstioArgs
from components.namespace import AmbientEnrolment, AmbientEnrolmentArgs, AppNamespace, AppNamespaceArgs


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
    ingress: BookinfoIngress | None


def build_stack(config: StackConfig) -> AmbientMeshStack:
    cluster = Cluster("cluster", ClusterArgs(config.cluster))
    provider = cluster.provider
    gateway_api = GatewayApiCrds("gateway-api", GatewayApiArgs(config.gateway_api, provider))
    istio = IstioAmbient("istio", IstioArgs(config.istio, config.cluster, provider,
                                            ingress_gateway=config.app.ingress != "none"))
    namespace = AppNamespace("app", AppNamespaceArgs(config.app.namespace, config.app.create_namespace, provider))
    # The app does not wait for Istio: enrolling the namespace later captures pods that are already running.
    bookinfo = Bookinfo("bookinfo", BookinfoArgs(namespace.name, config.app.bookinfo_tag, provider))
    clients = CurlClients("clients", CurlClientsArgs(namespace.name, provider))
    enrolment = AmbientEnrolment("ambient", AmbientEnrolmentArgs(namespace.name, istio.dataplane, provider))
    ingress = None
    if config.app.ingress == "istio":
        ingress = BookinfoIngress("ingress", BookinfoIngressArgs(namespace.name, istio.config_api, provider))
    return AmbientMeshStack(config, cluster, gateway_api, istio, namespace, bookinfo, clients, enrolment, ingress)


def kubectl(config: StackConfig) -> str:
    if config.cluster.provider == "kind":
        return f"kubectl --context kind-{config.cluster.name}"
    return f"kubectl --context {config.cluster.context}" if config.cluster.context else "kubectl"


def ingress_url(config: StackConfig) -> str | None:
    if config.app.ingress == "none":
        return None
    # Only kind maps the NodePort to the host; elsewhere README's port-forward command serves the same port.
    return f"http://localhost:{config.cluster.ingress_host_port}/productpage"


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
                                           f"http://{INGRESS_RELEASE}.{ISTIO_NAMESPACE}/productpage | {title}")
        commands["loop"] = f"for i in $(seq 1 20); do curl -s {url} | {title}; sleep 1; done"
        if config.cluster.provider == "existing":
            commands["portForward"] = (f"{k} port-forward -n {ISTIO_NAMESPACE} svc/{INGRESS_RELEASE} "
                                       f"{config.cluster.ingress_host_port}:80")
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
    }


def export(stack: AmbientMeshStack) -> None:
    for key, value in stack_outputs(stack).items():
        pulumi.export(key, value)
