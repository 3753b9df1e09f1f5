"""Which container images the stack runs, where they land, and how they get there once.

On kind, every node's containerd pulls what lands on it, anonymously: a DaemonSet's image once per node, a
Deployment's wherever its pod is scheduled. The dev stack makes 16 such pulls from Docker Hub on a fresh cluster, and
Docker Hub allows an anonymous IP address 10 pulls an hour: the rest fail with `toomanyrequests`, as ImagePullBackOff.
With `cluster.preloadImages` (the default on kind) the stack pulls each image once on the host, with the host's
Docker (and its `docker login`, if any), and side-loads it into the nodes; nothing in the cluster pulls.

Every image is derived, not listed: the Istio ones from the releases' values as the charts render them (hub, image
name, tag, and the variant Istio's `ambient` profile selects), Bookinfo's and curl's from their pins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from components.model import catalog, versions
from components.model.addons import addon_objects
from components.model.addons import workloads as addon_workloads
from components.model.charts import IstioReleases, Release, istio_releases
from components.model.config import ClusterConfig, StackConfig
from components.model.kind import node_names
from components.model.specs import bookinfo_image
from components.model.topology import ingress_gateway

# The image each chart's pods run (the `image` default of istiod's, cni's and ztunnel's values.yaml).
CHART_IMAGES = {"istiod": "pilot", "cni": "install-cni", "ztunnel": "ztunnel"}
# Every Envoy the mesh starts: the gateway chart's `image: auto` (istiod's injector fills it in), waypoints,
# Gateway API gateways and sidecars. It takes istiod's hub, tag and variant.
PROXY_IMAGE = "proxyv2"
# The variant each of Istio's profiles selects: manifests/helm-profiles/ambient.yaml sets `global.variant:
# distroless`. A chart given the profile renders `<image>:<tag>-distroless`; one without it (ztunnel here) plain.
PROFILE_VARIANTS = {catalog.ISTIO_PROFILE: "distroless"}


# The two loads, side by side after the cluster exists: the mesh's images (what Istio's releases, the waypoint and
# every Envoy run), which istiod and the data plane wait for, and the app's (Bookinfo, the clients), which only the
# app waits for. Istio's charts then install while the app's larger images are still loading.
Lane = Literal["mesh", "app"]
LANES: tuple[Lane, ...] = ("mesh", "app")


@dataclass(frozen=True)
class Workload:
    """Pods of one kind: what they run and where."""

    namespace: str
    name: str
    images: tuple[str, ...]
    per_node: bool = False  # a DaemonSet: one pod on every node (Istio's tolerate the control plane's taint)
    replicas: int = 1
    lane: Lane = "app"


def istio_image(release: Release, image: str) -> str:
    """`<hub>/<image>:<tag>[-<variant>]` as the charts' templates build it, from the release's values."""
    values: dict[str, Any] = release.values
    shared: dict[str, Any] = values.get("global") or {}
    hub = values.get("hub") or shared.get("hub") or versions.ISTIO_IMAGE_HUB
    tag = values.get("tag") or shared.get("tag") or release.version
    profile = values.get("profile") or shared.get("profile")
    variant = values.get("variant") or shared.get("variant") or PROFILE_VARIANTS.get(profile or "", "")
    return f"{hub}/{image}:{tag}" + (f"-{variant}" if variant else "")


def workloads(config: StackConfig) -> list[Workload]:
    """Every pod template the stack starts, directly or through Istio (gateways, waypoint, sidecar)."""
    releases: IstioReleases = istio_releases(config.istio, None)  # the gateway runs istiod's proxy image
    proxy = istio_image(releases.istiod, PROXY_IMAGE)
    system, app = catalog.ISTIO_NAMESPACE, config.app.namespace
    found = [
        Workload(system, "istiod", (istio_image(releases.istiod, CHART_IMAGES["istiod"]),),
                 replicas=int(releases.istiod.values.get("replicaCount", 1)), lane="mesh"),
        Workload(system, "istio-cni-node", (istio_image(releases.cni, CHART_IMAGES["cni"]),), per_node=True,
                 lane="mesh"),
        Workload(system, "ztunnel", (istio_image(releases.ztunnel, CHART_IMAGES["ztunnel"]),), per_node=True,
                 lane="mesh"),
    ]
    gateway = ingress_gateway(config)
    if gateway is not None:
        found.append(Workload(gateway[0], gateway[1], (proxy,), lane="mesh"))
    if config.waypoint.mode != "none":
        found.append(Workload(app, config.waypoint.name, (proxy,), lane="mesh"))
    for service in catalog.BOOKINFO:
        for version in service.versions:
            found.append(Workload(app, f"{service.name}-{version}", (
                bookinfo_image(versions.BOOKINFO_IMAGE_REGISTRY, service.name, version, config.app.bookinfo_tag),)))
    found += [Workload(app, client, (versions.CURL_IMAGE,)) for client in config.app.clients]
    if config.sidecar.enabled:
        found.append(Workload(config.sidecar.namespace, catalog.SIDECAR_CLIENT, (versions.CURL_IMAGE, proxy)))
    # Istio's add-ons: the images their files name (the app's load: nothing of Istio's waits for them).
    found += [Workload(namespace, name, images, replicas=replicas)
              for namespace, name, images, replicas in addon_workloads(addon_objects(config))]
    return found


def images(config: StackConfig) -> list[str]:
    """Every image the stack runs, once each, sorted."""
    return sorted({image for workload in workloads(config) for image in workload.images})


def node_pulls(config: StackConfig) -> int:
    """Registry pulls when the nodes pull for themselves on a fresh cluster: a DaemonSet's image on every node, a
    Deployment's once per replica (replicas that share a node share a pull; counted apart, as the worst case)."""
    nodes = config.cluster.nodes
    return sum((nodes if w.per_node else w.replicas) * len(w.images) for w in workloads(config))


@dataclass(frozen=True)
class Preload:
    """What goes into which nodes: DaemonSets' images into every node, the rest where Deployments run."""

    every_node: tuple[str, ...]
    every_node_images: tuple[str, ...]
    workers: tuple[str, ...]
    worker_images: tuple[str, ...]

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(sorted({*self.every_node_images, *self.worker_images}))


def lane_of(found: list[Workload]) -> dict[str, Lane]:
    """Each image's load: the mesh's when any of Istio's workloads runs it (proxyv2 in a sidecar too), else the
    app's."""
    mesh = {i for w in found if w.lane == "mesh" for i in w.images}
    return {i: ("mesh" if i in mesh else "app") for w in found for i in w.images}


def preload(config: StackConfig, lane: Lane | None = None) -> Preload:
    """kind taints its control plane when there are workers: Deployments' pods go to the workers only. With a
    lane, only that load's images."""
    control_plane, workers = node_names(config.cluster)
    wanted = workloads(config)
    lanes = lane_of(wanted)
    everywhere = sorted({i for w in wanted if w.per_node for i in w.images if lane in (None, lanes[i])})
    elsewhere = sorted({i for w in wanted for i in w.images if lane in (None, lanes[i])} - set(everywhere))
    every_node = (control_plane, *workers)
    if not workers:
        return Preload(every_node, tuple(sorted(everywhere + elsewhere)), (), ())
    return Preload(every_node, tuple(everywhere), tuple(workers), tuple(elsewhere))


# --- the commands ----------------------------------------------------------------------------------------------

# The host's platform, which kind's nodes share: `linux/amd64`, `linux/arm64`.
_PLATFORM = "platform=$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}')"

# Pulls an image the host's Docker does not have (any more: `docker system prune -a` removes what no container runs).
# A refused pull stops the update before any chart is installed, with what to do.
_ON_HOST = """on_host() {
  if docker image inspect --format '{{.Id}}' "$1" >/dev/null 2>&1; then
    echo "have  $1"
    return 0
  fi
  echo "pull  $1"
  if ! output=$(docker pull --quiet --platform "$platform" "$1" 2>&1); then
    echo "$output" >&2
    case "$output" in
      *toomanyrequests*|*"rate limit"*)
        echo "Docker Hub refused the pull: anonymous pulls are limited to 10 an hour per IP address." >&2
        echo "Fix: docker login (a free account has a higher limit), or wait and run make up again: the images" >&2
        echo "pulled so far are kept and not pulled again." >&2 ;;
    esac
    exit 1
  fi
}"""

# Runs beside kind's creation of the nodes; a later `up`, even of a new cluster, pulls nothing the host has.
PULL_SCRIPT = f"""set -eu
{_PLATFORM}
{_ON_HOST}
for image in $IMAGES; do
  on_host "$image"
done
"""

# Loads only what a node lacks (a new Bookinfo tag loads six images, not eleven). One platform per archive: under
# Docker's containerd image store a plain `docker save` writes the image's whole index, blobs of platforms never
# pulled included, and kind's import fails on them (kubernetes-sigs/kind#3795, the cause of `kind load docker-image`'s
# "content digest ... not found"). Docker before 28 has no `save --platform`: there the plain save holds the one
# platform it pulled. What the host lost since the pull (pruned images) is pulled again first: the load of a new
# cluster must not fail in `docker image save` because the pull, which ran once, has nothing to trigger it.
LOAD_SCRIPT = f"""set -eu
{_PLATFORM}
{_ON_HOST}
archive=$(mktemp "${{TMPDIR:-/tmp}}/ambient-mesh-images.XXXXXX")
trap 'rm -f "$archive"' EXIT
load() {{
  nodes=$1
  shift
  missing=""
  for image in "$@"; do
    for node in $(echo "$nodes" | tr ',' ' '); do
      if ! docker exec "$node" ctr --namespace=k8s.io images list --quiet "name==$image" | grep -q .; then
        missing="$missing $image"
        break
      fi
    done
  done
  [ -n "$missing" ] || return 0
  for image in $missing; do
    on_host "$image"
  done
  echo "load $missing -> $nodes"
  docker image save --platform "$platform" -o "$archive" $missing 2>/dev/null ||
    docker image save -o "$archive" $missing
  kind load image-archive "$archive" --name "$CLUSTER_NAME" --nodes "$nodes"
}}
load "$EVERY_NODE" $EVERY_NODE_IMAGES
load "$WORKER_NODES" $WORKER_IMAGES
"""


def pull_environment(plan: Preload) -> dict[str, str]:
    return {"IMAGES": " ".join(plan.images)}


def load_environment(cluster: ClusterConfig, plan: Preload) -> dict[str, str]:
    return {
        "CLUSTER_NAME": cluster.name,
        "EVERY_NODE": ",".join(plan.every_node),
        "EVERY_NODE_IMAGES": " ".join(plan.every_node_images),
        "WORKER_NODES": ",".join(plan.workers),
        "WORKER_IMAGES": " ".join(plan.worker_images),
    }
