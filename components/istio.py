"""Istio ambient from the official Helm charts: base, istiod, cni, ztunnel and the ingress gateway."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.model.catalog import ISTIO_NAMESPACE
from components.model.charts import RELEASE_TIMEOUT_SECONDS, IstioReleases, Release


@dataclass
class IstioArgs:
    releases: IstioReleases
    # Images in the nodes before a release that runs them starts (the preload); base runs none.
    images: list[pulumi.Resource] = field(default_factory=list)


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

        def release(spec: Release, depends_on: list[pulumi.Resource] | None = None) -> k8s.helm.v3.Release:
            return k8s.helm.v3.Release(
                f"{name}-{spec.key}",
                name=spec.name,
                chart=spec.chart,
                version=spec.version,
                repository_opts=(k8s.helm.v3.RepositoryOptsArgs(repo=spec.repository)
                                 if spec.repository is not None else None),
                namespace=self.namespace.metadata.name,
                values=spec.values,
                timeout=RELEASE_TIMEOUT_SECONDS,
                skip_await=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
            )

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ISTIO_NAMESPACE),
            opts=pulumi.ResourceOptions(parent=self),
        )
        releases, images = args.releases, args.images
        self.base = release(releases.base)
        # istiod watches Istio's CRDs at start-up; they come from base.
        self.istiod = release(releases.istiod, depends_on=[self.base, *images])
        # istio-cni must never run newer than istiod: an upgrade rolls it after the control plane (Istio's documented
        # order). Beside ztunnel, not before it, so the install's longest chain stays base → istiod → one DaemonSet.
        self.cni = release(releases.cni, depends_on=[self.istiod, *images])
        # ztunnel gets its workload certificates and xDS config from istiod; before it, its pods never turn ready.
        self.ztunnel = release(releases.ztunnel, depends_on=[self.istiod, *images])
        self.ingress_gateway = None
        if releases.ingress_gateway is not None:
            # The gateway's image is "auto": istiod's injection webhook fills it in, so istiod must be serving.
            self.ingress_gateway = release(releases.ingress_gateway, depends_on=[self.istiod, *images])

        self.register_outputs({
            "namespace": self.namespace.metadata.name,
            "version": releases.istiod.version,
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
        """What Istio config objects wait for: before base's CRDs they fail with "no matches for kind"; before istiod
        serves its validation webhook, with 'failed calling webhook "validation.istio.io"'."""
        return [self.base, self.istiod]
