"""Istio's Helm charts as one table: release name, chart, whether it runs a pod per node, what it requests under
each resource profile, and its values.

Resource profiles (config `istio.resourceProfile`) are ours: `laptop` lowers the charts' CPU and memory requests so
istiod + istio-cni + ztunnel + the ingress gateway fit in 0.5 CPU and 1 GiB on a 1+2 node kind cluster;
`chart-defaults` leaves the charts alone (about 1.5 CPU and 4 GiB on 3 nodes). Only requests change: limits stay as
each chart sets them (only the gateway chart sets any). Istio's own configuration profile (`profile: ambient`) is
catalog.ISTIO_PROFILE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.model.catalog import INGRESS_RELEASE, ISTIO_PROFILE
from components.model.config import IstioConfig, ResourceProfile
from components.model.versions import ISTIO_IMAGE_HUB

# Helm waits for every workload; the first install on a laptop also pulls the images.
RELEASE_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Requests:
    cpu_millicores: int
    memory_mib: int

    def values(self) -> dict[str, Any]:
        return {"requests": {"cpu": f"{self.cpu_millicores}m", "memory": f"{self.memory_mib}Mi"}}


@dataclass(frozen=True)
class Chart:
    key: str  # our name for it, and the name of its component's child resource
    chart: str  # the chart's name in Istio's repository
    release: str  # the Helm release name Istio's docs use
    per_node: bool  # DaemonSets run one pod on every node (their tolerations include the control plane)
    requests: dict[ResourceProfile, Requests | None]  # None: leave the chart's own
    # Where the chart reads its image's hub and tag: "global" (istiod, cni), "top" (ztunnel) or "" (no image of
    # its own: base; the gateway's `image: auto` comes from istiod's injector, which reads istiod's global values).
    image_keys: str = ""

    def image_pins(self, version: str) -> dict[str, Any]:
        """The hub and tag the stack's images carry, set explicitly: a chart's own defaults may differ (the
        charts in istio.io/istio's source say `registry.istio.io/testing` and `latest`; Istio's release build
        rewrites them), and then the pods would run images the stack never preloaded."""
        pins = {"hub": ISTIO_IMAGE_HUB, "tag": version}
        return {"global": pins} if self.image_keys == "global" else pins if self.image_keys == "top" else {}

    def resources(self, profile: ResourceProfile) -> dict[str, Any]:
        requests = self.requests[profile]
        return {"resources": requests.values()} if requests is not None else {}


# What each chart requests when left alone is its values.yaml `resources` (CHART_DEFAULTS below, for the report).
CHARTS: dict[str, Chart] = {chart.key: chart for chart in (
    Chart("base", "base", "istio-base", False, {"laptop": None, "chart-defaults": None}),
    Chart("istiod", "istiod", "istiod", False, {"laptop": Requests(100, 256), "chart-defaults": None}, "global"),
    Chart("cni", "cni", "istio-cni", True, {"laptop": Requests(20, 48), "chart-defaults": None}, "global"),
    Chart("ztunnel", "ztunnel", "ztunnel", True, {"laptop": Requests(40, 96), "chart-defaults": None}, "top"),
    Chart("ingress-gateway", "gateway", INGRESS_RELEASE, False, {"laptop": Requests(50, 128),
                                                                  "chart-defaults": None}),
)}

# The charts' own requests (istiod/cni/ztunnel/gateway values.yaml), for the resource report.
CHART_DEFAULTS: dict[str, Requests] = {
    "istiod": Requests(500, 2048), "cni": Requests(100, 100), "ztunnel": Requests(200, 512),
    "ingress-gateway": Requests(100, 128),
}


def requests(profile: ResourceProfile, key: str) -> Requests:
    """What one pod of a chart requests under a profile."""
    return CHARTS[key].requests[profile] or CHART_DEFAULTS[key]


def totals(profile: ResourceProfile, nodes: int) -> Requests:
    """Requests summed over one istiod, one gateway and a cni + ztunnel pod on each node."""
    cpu = memory = 0
    for key in CHART_DEFAULTS:
        pods = nodes if CHARTS[key].per_node else 1
        cpu += pods * requests(profile, key).cpu_millicores
        memory += pods * requests(profile, key).memory_mib
    return Requests(cpu, memory)


@dataclass(frozen=True)
class Release:
    """One Helm release, as the component creates it."""

    key: str
    name: str
    chart: str  # a chart name (with repository), an oci:// reference, or a local chart directory
    version: str
    repository: str | None  # an http(s) repository URL; None for oci:// and local charts
    values: dict[str, Any]


def _release(istio: IstioConfig, key: str, values: dict[str, Any]) -> Release:
    chart = CHARTS[key]
    if istio.local_charts:
        location, repository = f"{istio.repository}/{chart.chart}", None
    elif istio.repository.startswith("oci://"):
        location, repository = f"{istio.repository.rstrip('/')}/{chart.chart}", None
    else:
        location, repository = chart.chart, istio.repository
    return Release(key, chart.release, location, istio.version, repository,
                   {**values, **chart.image_pins(istio.version), **chart.resources(istio.resource_profile)})


def istiod_values() -> dict[str, Any]:
    return {
        "profile": ISTIO_PROFILE,
        # One replica is enough for a demo mesh; the HPA would otherwise scale on a busy laptop.
        "autoscaleEnabled": False,
        "replicaCount": 1,
        # istio-cni is always installed: injected sidecars use it instead of a privileged istio-init container.
        # (istioctl's pilot.cni.enabled; the chart keeps pilot's values at its top level and hands them to the
        # injector as pilot.*.)
        "cni": {"enabled": True},
    }


def gateway_values(node_port: int) -> dict[str, Any]:
    return {
        # kind has no load balancer: a LoadBalancer Service never gets an address and Helm's wait never ends.
        "service": {
            "type": "NodePort",
            "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": node_port},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
            ],
        },
        "autoscaling": {"enabled": False},
    }


@dataclass(frozen=True)
class IstioReleases:
    base: Release
    istiod: Release
    cni: Release
    ztunnel: Release
    ingress_gateway: Release | None


def istio_releases(istio: IstioConfig, ingress_node_port: int | None) -> IstioReleases:
    """Every release of the mesh; the ingress gateway only with a node port to serve (None: no Istio ingress)."""
    return IstioReleases(
        base=_release(istio, "base", {}),
        istiod=_release(istio, "istiod", istiod_values()),
        cni=_release(istio, "cni", {"profile": ISTIO_PROFILE}),
        ztunnel=_release(istio, "ztunnel", {}),
        ingress_gateway=(_release(istio, "ingress-gateway", gateway_values(ingress_node_port))
                         if ingress_node_port is not None else None),
    )
