"""The kind cluster: its config file and the shell commands that create, read and delete it."""

from __future__ import annotations

from typing import Any

import yaml

from components.model.config import ClusterConfig


def kind_config(config: ClusterConfig) -> str:
    """kind's cluster config: one control plane (which maps the ingress NodePort to the host) and N workers."""
    control_plane: dict[str, Any] = {
        "role": "control-plane",
        # kube-proxy answers a NodePort on every node, so mapping it on the control plane reaches the gateway
        # wherever its pod runs.
        "extraPortMappings": [{
            "containerPort": config.ingress_node_port,
            "hostPort": config.ingress_host_port,
            "listenAddress": "127.0.0.1",
            "protocol": "TCP",
        }],
    }
    nodes = [control_plane] + [{"role": "worker"} for _ in range(config.workers)]
    if config.node_image:
        for node in nodes:
            node["image"] = config.node_image
    document: dict[str, Any] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": config.name,
                                "nodes": nodes}
    if config.allow_cgroup_v1:
        # kubelet 1.35+ refuses to start on a cgroup v1 host unless told otherwise; kind patches every node's.
        document["kubeadmConfigPatches"] = [yaml.safe_dump(KUBELET_ON_CGROUP_V1, sort_keys=False)]
    return yaml.safe_dump(document, sort_keys=False)


KUBELET_ON_CGROUP_V1 = {"kind": "KubeletConfiguration", "failCgroupV1": False}


def node_names(config: ClusterConfig) -> tuple[str, list[str]]:
    """kind's names for the cluster's node containers: `<name>-control-plane`, then `<name>-worker`,
    `<name>-worker2`, ..."""
    workers = [f"{config.name}-worker{index if index > 1 else ''}" for index in range(1, config.workers + 1)]
    return f"{config.name}-control-plane", workers


# Refuses to adopt a cluster it did not create: `pulumi destroy` would otherwise delete someone else's cluster.
KIND_CREATE = """set -eu
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "a kind cluster named '$CLUSTER_NAME' already exists and this stack did not create it." >&2
  echo "Delete it (kind delete cluster --name $CLUSTER_NAME), choose another cluster.name," >&2
  echo "or use it as it is with cluster.provider=existing and cluster.context=kind-$CLUSTER_NAME." >&2
  exit 1
fi
kind create cluster --name "$CLUSTER_NAME" --config - --wait 120s
"""

# kind leaves its shared `kind` Docker network behind; it goes too once no container is attached to it (kind makes it
# again for the next cluster).
KIND_DELETE = """kind delete cluster --name "$CLUSTER_NAME"
if [ "$(docker network inspect kind --format '{{len .Containers}}' 2>/dev/null)" = "0" ]; then
  docker network rm kind >/dev/null 2>&1 || true
fi
"""

KIND_KUBECONFIG = 'kind get kubeconfig --name "$CLUSTER_NAME"'
