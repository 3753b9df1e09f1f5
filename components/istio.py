"""Istio ambient from the official Helm charts: base, istiod, cni, ztunnel and the ingress gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import profiles
from components.config import ClusterConfig, IstioConfig

ISTIO_NAMESPACE = "istio-system"
# The gateway chart labels pods istio=<release name minus "istio-">: this gives the tutorial's selector.
INGRESS_RELEASE = "istio-ingressgateway"
INGRESS_SELECTOR = {"istio": "ingressgateway"}
# Helm waits for every workload; the first install on a laptop also pulls the images.
RELEASE_TIMEOUT_SECONDS = 600


@dataclass
class IstioArgs:
    istio: IstioConfig
    cluster: ClusterConfig
    provider: k8s.Provider
    ingress_gateway: bool = True


def chart_source(istio: IstioConfig, chart: str) -> dict[str, Any]:
    """Release arguments that locate one chart: repository URL, OCI registry or local directory."""
    if istio.local_charts:
        return {"chart": f"{istio.repository}/{chart}", "version": istio.version}
    if istio.repository.startswith("oci://"):
        return {"chart": f"{istio.repository.rstrip('/')}/{chart}", "version": istio.version}
    return {
        "chart": chart,
        "version": istio.version,
        "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=istio.repository),
    }


def istiod_values(istio: IstioConfig) -> dict[str, Any]:
    return {
        "profile": "ambient",
        # One replica is enough for a demo mesh; the HPA would otherwise scale on a busy laptop.
        "autoscaleEnabled": False,
        "replicaCount": 1,
        # istio-cni is always installed: injected sidecars use it instead of a privileged istio-init container.
        # (istioctl's pilot.cni.enabled; the chart keeps pilot's values at its top level and hands them to the
        # injector as pilot.*.)
        "cni": {"enabled": True},
        **profiles.chart_values(istio.resource_profile, "istiod"),
    }


def cni_values(istio: IstioConfig) -> dict[str, Any]:
    return {"profile": "ambient", **profiles.chart_values(istio.resource_profile, "cni")}


def ztunnel_values(istio: IstioConfig) -> dict[str, Any]:
    return dict(profiles.chart_values(istio.resource_profile, "ztunnel"))


def gateway_values(istio: IstioConfig, cluster: ClusterConfig) -> dict[str, Any]:
    return {
        # kind has no load balancer: a LoadBalancer Service never gets an address and Helm's wait never ends.
        "service": {
            "type": "NodePort",
            "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80,
                 "nodePort": cluster.ingress_node_port},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
            ],
        },
        "autoscaling": {"enabled": False},
        **profiles.chart_values(istio.resource_profile, "gateway"),
    }


class IstioAmbient(pulumi.ComponentResource):
    """The istio-system namespace and the ambient releases, each started as soon as what it needs is ready."""

    namespace: k8s.core.v1.Namespace
    base: k8s.helm.v3.Release
    istiod: k8s.helm.v3.Release
    cni: k8s.helm.v3.Release
    ztunnel: k8s.helm.v3.Release
    ingress_gateway: k8s.helm.v3.Release | None

    def __init__(self, name: str, args: IstioArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:istio:IstioAmbient", name, None, opts)
        istio = args.istio

        def release(suffix: str, release_name: str, chart: str, values: dict[str, Any],
                    depends_on: list[pulumi.Resource] | None = None) -> k8s.helm.v3.Release:
            return k8s.helm.v3.Release(
                f"{name}-{suffix}",
                name=release_name,
                namespace=self.namespace.metadata.name,
                values=values,
                timeout=RELEASE_TIMEOUT_SECONDS,
                skip_await=False,
                **chart_source(istio, chart),
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=depends_on or []),
            )

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ISTIO_NAMESPACE),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.base = release("base", "istio-base", "base", {})
        # istiod watches Istio's CRDs at start-up; they come from base.
        self.istiod = release("istiod", "istiod", "istiod", istiod_values(istio), depends_on=[self.base])
        # istio-cni needs only its namespace: it installs the node agent that ztunnel later connects to.
        self.cni = release("cni", "istio-cni", "cni", cni_values(istio))
        # ztunnel gets its workload certificates and xDS config from istiod; before it, its pods never turn ready.
        self.ztunnel = release("ztunnel", "ztunnel", "ztunnel", ztunnel_values(istio), depends_on=[self.istiod])
        self.ingress_gateway = None
        if args.ingress_gateway:
            # The gateway's image is "auto": istiod's injection webhook fills it in, so istiod must be serving.
            self.ingress_gateway = release("ingress-gateway", INGRESS_RELEASE, "gateway",
                                           gateway_values(istio, args.cluster), depends_on=[self.istiod])

        self.register_outputs({
            "namespace": self.namespace.metadata.name,
            "version": istio.version,
            "releases": [r.status for r in self.releases],
        })

    @property
    def releases(self) -> list[k8s.helm.v3.Release]:
        optional = [self.ingress_gateway] if self.ingress_gateway is not None else []
        return [self.base, self.istiod, self.cni, self.ztunnel, *optional]

    @property
    def dataplane(self) -> list[pulumi.Resource]:
        """What must be ready before a namespace is enrolled: ztunnel on every node, and istio-cni to redirect."""
        return [self.ztunnel, self.cni]

    @property
    def config_api(self) -> list[pulumi.Resource]:
        """What Istio config objects need: the CRDs (base) and istiod's validation webhook."""
        return [self.base, self.istiod]
