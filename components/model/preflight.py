"""What a stack needs of the machine that runs `make up`, and the preflight that checks it before anything is created.

The preflight is tools/doctor.py (standard library only, so that it also runs before .venv exists). `make doctor`,
`make up` and `make preview` run it before Pulumi starts; on kind the graph runs it again as its first step. Both are
given the same facts, computed here from the stack's config: `doctor_argv`.

What Docker must offer (the figures are ours, documented in README's prerequisites):

- CPU: what the pods request, summed over the whole cluster. kind's nodes are containers sharing the engine's CPUs
  and each advertises all of them, so the sum is what really competes: kubeadm's control plane (kube-apiserver 250m,
  kube-controller-manager 200m, kube-scheduler 100m, etcd 100m) and CoreDNS (2 x 100m), kindnet's 100m on each node,
  the mesh's requests (charts.py, per resource profile) and 100m for each extra Envoy (waypoint, Gateway API gateway,
  sidecar: istiod's proxy and waypoint defaults). Rounded up to whole CPUs, at least 2.
- Memory: the mesh's requests, 128Mi per extra Envoy, and estimates of what the rest uses (nothing else sets
  requests): 250Mi per node (systemd, containerd, kubelet, kube-proxy, kindnet), 700Mi for the control plane's
  components, Bookinfo's services (reviews, a JVM, 250Mi each; the others 50–100Mi), 20Mi per curl client and 384Mi
  for the engine itself.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from components.model import catalog, charts
from components.model.addons import addon_objects
from components.model.addons import requests as addon_requests
from components.model.config import StackConfig
from components.model.images import PROXY_IMAGE, workloads

MIN_CPUS = 2
CONTROL_PLANE_CPU_MILLICORES = 850
NODE_CPU_MILLICORES = 100
PROXY = charts.Requests(cpu_millicores=100, memory_mib=128)
NODE_MEMORY_MIB = 250
CONTROL_PLANE_MEMORY_MIB = 700
ENGINE_MEMORY_MIB = 384
# What the app's pods use (estimates: they set no requests), by Deployment name without its version.
APP_MEMORY_MIB = {"details": 50, "ratings": 50, "reviews": 250, "productpage": 100, "sleep": 20, "notsleep": 20,
                  "curl": 20}


@dataclass(frozen=True)
class Need:
    cpu_millicores: int
    memory_mib: int
    parts: tuple[tuple[str, int, int], ...]  # (what, CPU millicores, memory MiB)

    @property
    def cpus(self) -> int:
        return max(MIN_CPUS, math.ceil(self.cpu_millicores / 1000))


def need(config: StackConfig) -> Need:
    """What the engine running kind must offer for this stack: CPUs requested, memory requested or used."""
    nodes, profile = config.cluster.nodes, config.istio.resource_profile
    parts: list[tuple[str, int, int]] = [
        (f"kind: {nodes} node(s) and the control plane", CONTROL_PLANE_CPU_MILLICORES + NODE_CPU_MILLICORES * nodes,
         CONTROL_PLANE_MEMORY_MIB + NODE_MEMORY_MIB * nodes),
        ("the container engine", 0, ENGINE_MEMORY_MIB),
    ]
    mesh = ["istiod", "cni", "ztunnel"] + (["ingress-gateway"] if config.app.ingress == "istio" else [])
    cpu = memory = 0
    for key in mesh:
        pods = nodes if charts.CHARTS[key].per_node else 1
        cpu += pods * charts.requests(profile, key).cpu_millicores
        memory += pods * charts.requests(profile, key).memory_mib
    parts.append((f"Istio ({profile})", cpu, memory))
    envoys = sum(1 for w in workloads(config) for image in w.images
                 if f"/{PROXY_IMAGE}:" in image and w.name != catalog.INGRESS_RELEASE)
    if envoys:
        parts.append((f"{envoys} more Envoy(s)", envoys * PROXY.cpu_millicores, envoys * PROXY.memory_mib))
    app = sum(APP_MEMORY_MIB.get(w.name.rsplit("-v", 1)[0], 0) for w in workloads(config))
    parts.append(("Bookinfo and the curl clients", 0, app))
    if config.observability.addons:
        cpu, memory = addon_requests(addon_objects(config))
        parts.append(("Istio's add-ons (" + ", ".join(config.observability.addons) + ")", cpu, memory))
    return Need(sum(p[1] for p in parts), sum(p[2] for p in parts), tuple(parts))


# Which Python runs the preflight (standard library only): the caller's environment, not an input, as for verify.
PYTHON = '"${AMBIENT_MESH_PYTHON:-python3}"'


def doctor_argv(config: StackConfig, stack: str, in_graph: bool = False) -> list[str]:
    """The facts tools/doctor.py checks, as its flags. In the graph (`in_graph`) a kind cluster of the stack's name is
    no failure there: it is this stack's own, or the cluster's creation refuses it, naming the way out."""
    cluster = config.cluster
    required = need(config)
    argv = ["--stack", stack, "--provider", cluster.provider, "--istio-version", config.istio.version]
    if cluster.provider == "kind":
        argv += ["--cluster-name", cluster.name, "--nodes", str(cluster.nodes),
                 "--node-image", cluster.node_image or "", "--host-port", str(cluster.ingress_host_port),
                 "--need-cpus", str(required.cpus), "--need-memory-mib", str(required.memory_mib)]
        if cluster.allow_cgroup_v1:
            argv += ["--allow-cgroup-v1"]
        if not cluster.preload_images:
            argv += ["--no-preload-images"]
    if in_graph:
        # Pulumi already runs the program: the Python checked is whichever python3 runs this command.
        argv += ["--cluster-may-exist", "--skip", "python"]
    return argv


def doctor_script(argv: list[str]) -> str:
    return f"{PYTHON} -m tools.doctor {shlex.join(argv)}"
