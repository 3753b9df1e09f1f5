"""Registry pulls per `up`, before and after images were pulled once on the host (cluster.preloadImages).

`python -m bench.image_pulls` prints, for every shipped stack file, what a fresh kind cluster costs in registry pulls
(Docker Hub counts each image manifest fetched):

- nodes pull: each node's containerd pulls what lands on it, anonymously: a DaemonSet's image once per node, a
  Deployment's once per replica (replicas sharing a node would share a pull: the worst case is counted). This is
  every `up` that creates a cluster, since new nodes start empty.
- pulled once: the host pulls each image once (with its `docker login`, if any) and kind loads it into the nodes;
  a later `up`, even of a new cluster, pulls nothing the host's Docker already has.

kind's own node image (kindest/node) is one more pull on the host, the first time, either way.
"""

from __future__ import annotations

import argparse

from components.model import images
from components.model.config import StackConfig, read_stack_file
from components.model.validate import parse_config
from tools import render
from tools.graph import REPO

# Docker Hub's limit for anonymous pulls, per IPv4 address (or IPv6 /64).
ANONYMOUS_PULLS_PER_HOUR = 10


def stack_configs() -> dict[str, StackConfig]:
    found = {}
    for path in sorted(REPO.glob("Pulumi.*.yaml")):
        raw = read_stack_file(path)
        raw["gatewayApi"] = {**raw["gatewayApi"], "source": str(REPO / "tests" / "fixtures" / "gateway-api-crds.yaml")}
        # Istio's add-on files from the download cache `pulumi up` fills, else our stand-ins (the same images).
        files = render.addons_source(raw)
        if files is not None and files.source:
            raw["observability"] = {**raw["observability"], "source": files.source}
        found[path.name.removeprefix("Pulumi.").removesuffix(".yaml")] = parse_config(raw)
    return found


def placement(config: StackConfig) -> list[str]:
    """One line per workload: its images, how many pods, where."""
    nodes = config.cluster.nodes
    lines = []
    for w in images.workloads(config):
        where = f"DaemonSet: {nodes} nodes" if w.per_node else f"Deployment: {w.replicas} pod"
        pulls = (nodes if w.per_node else w.replicas) * len(w.images)
        lines.append(f"  {w.namespace + '/' + w.name:<36} {pulls:>2} pull(s)  {where:<20}  {', '.join(w.images)}")
    return lines


def report() -> str:
    lines = [f"Registry pulls per `up` of a fresh kind cluster (Docker Hub allows {ANONYMOUS_PULLS_PER_HOUR} "
             "anonymous pulls an hour per IP address):", "",
             "| stack | nodes | images | nodes pull (preloadImages: false), every up | pulled once: first up | "
             "pulled once: later ups |",
             "| --- | --- | --- | --- | --- | --- |"]
    configs = stack_configs()
    for name, config in configs.items():
        lines.append(f"| {name} | {config.cluster.nodes} | {len(images.images(config))} | "
                     f"{images.node_pulls(config)} | {len(images.images(config))} | 0 |")
    lines += ["", "(+1 on the host for kind's node image the first time, either way.)", ""]
    for name, config in configs.items():
        lines += [f"{name}: where each image lands", *placement(config), ""]
    return "\n".join(lines).rstrip()


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print(report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
