"""Resource profiles: what each Istio component requests, and the totals on a cluster of N nodes.

`laptop` keeps istiod + istio-cni + ztunnel + ingress gateway within 0.5 CPU and 1 GiB requested on a 1+2 node kind
cluster; `chart-defaults` leaves the charts' own requests (about 1.5 CPU and 4 GiB on 3 nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.config import ResourceProfile


@dataclass(frozen=True)
class Requests:
    cpu_millicores: int
    memory_mib: int

    def values(self) -> dict[str, Any]:
        return {"requests": {"cpu": f"{self.cpu_millicores}m", "memory": f"{self.memory_mib}Mi"}}


@dataclass(frozen=True)
class ComponentRequests:
    component: str
    per_node: bool  # DaemonSets run one pod on every node (their tolerations include the control plane)
    requests: Requests


# What the Istio charts request when left alone (istiod/cni/ztunnel/gateway values.yaml `resources`).
CHART_DEFAULTS: dict[str, ComponentRequests] = {
    "istiod": ComponentRequests("istiod", False, Requests(500, 2048)),
    "cni": ComponentRequests("cni", True, Requests(100, 100)),
    "ztunnel": ComponentRequests("ztunnel", True, Requests(200, 512)),
    "gateway": ComponentRequests("gateway", False, Requests(100, 128)),
}

# Enough for Bookinfo's handful of pods; requests only (no limits), so a burst can still use idle CPU.
LAPTOP: dict[str, ComponentRequests] = {
    "istiod": ComponentRequests("istiod", False, Requests(100, 256)),
    "cni": ComponentRequests("cni", True, Requests(20, 48)),
    "ztunnel": ComponentRequests("ztunnel", True, Requests(40, 96)),
    "gateway": ComponentRequests("gateway", False, Requests(50, 128)),
}

PROFILES: dict[ResourceProfile, dict[str, ComponentRequests]] = {"laptop": LAPTOP, "chart-defaults": CHART_DEFAULTS}


def chart_values(profile: ResourceProfile, component: str) -> dict[str, Any]:
    """Helm values that apply the profile to one chart; empty for chart defaults."""
    if profile == "chart-defaults":
        return {}
    return {"resources": PROFILES[profile][component].requests.values()}


def totals(profile: ResourceProfile, nodes: int) -> Requests:
    """Requests summed over one istiod, one gateway and a cni + ztunnel pod on each node."""
    cpu = memory = 0
    for item in PROFILES[profile].values():
        pods = nodes if item.per_node else 1
        cpu += pods * item.requests.cpu_millicores
        memory += pods * item.requests.memory_mib
    return Requests(cpu, memory)
