"""The kind cluster: its config file and the shell commands that create, read and delete it."""

from __future__ import annotations

from collections.abc import Mapping
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


def stack_owner(project: str, stack: str, checkout: str) -> str:
    """Who made a kind cluster: the stack and the checkout it ran from (two checkouts may both have a `dev`)."""
    return f"{project}/{stack} {checkout}"


# Where the creation records its owner before kind makes the first node: a `make up` stopped while kind creates the
# nodes leaves a half-made cluster the state does not hold, and this record is how the next creation knows it for its
# own. The delete removes it.
OWNER_RECORD = '${XDG_STATE_HOME:-$HOME/.local/state}/ambient-mesh/kind/$CLUSTER_NAME.owner'


def owner_record_path(cluster_name: str, environ: Mapping[str, str]) -> str:
    """OWNER_RECORD as the shell expands it."""
    state = environ.get("XDG_STATE_HOME") or f"{environ.get('HOME', '')}/.local/state"
    return f"{state}/ambient-mesh/kind/{cluster_name}.owner"


# Refuses to adopt a cluster it did not create: `pulumi destroy` would otherwise delete someone else's cluster. One of
# its own whose creation never finished (the state lost it) is deleted and made again: kind cannot finish it.
KIND_CREATE = f"""set -eu
record="{OWNER_RECORD}"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  if [ "$(cat "$record" 2>/dev/null)" = "$STACK_OWNER" ]; then
    echo "the kind cluster '$CLUSTER_NAME' is this stack's, from a creation that never finished (make up stopped" >&2
    echo "while kind made the nodes): deleting it and creating it again" >&2
    kind delete cluster --name "$CLUSTER_NAME"
  else
    echo "a kind cluster named '$CLUSTER_NAME' already exists and this stack did not create it." >&2
    echo "Delete it (kind delete cluster --name $CLUSTER_NAME), choose another cluster.name," >&2
    echo "or use it as it is with cluster.provider=existing and cluster.context=kind-$CLUSTER_NAME." >&2
    exit 1
  fi
fi
mkdir -p "$(dirname "$record")"
printf '%s\n' "$STACK_OWNER" >"$record"
# A failed creation whose nodes kind removed leaves no record (a cluster of this name made later is not this
# stack's); an interrupted kind leaves its nodes, and the record stays with them.
kind create cluster --name "$CLUSTER_NAME" --config - --wait 120s || {{
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME" || rm -f "$record"
  exit 1
}}
"""

# An update changes no node (any change to them replaces the cluster): it runs when only these scripts changed, and
# records the owner of a cluster made before the record existed. Without it the provider would run the creation
# again, which refuses the existing cluster.
KIND_UPDATE = f"""set -eu
record="{OWNER_RECORD}"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "the kind cluster '$CLUSTER_NAME' this stack created is gone: make up creates it again" >&2
  exit 1
fi
mkdir -p "$(dirname "$record")"
printf '%s\n' "$STACK_OWNER" >"$record"
"""

# kind leaves its shared `kind` Docker network behind; it goes too once no container is attached to it (kind makes it
# again for the next cluster).
KIND_DELETE = f"""kind delete cluster --name "$CLUSTER_NAME"
record="{OWNER_RECORD}"
if [ "$(cat "$record" 2>/dev/null)" = "${{STACK_OWNER:-}}" ]; then
  rm -f "$record"
fi
if [ "$(docker network inspect kind --format '{{{{len .Containers}}}}' 2>/dev/null)" = "0" ]; then
  docker network rm kind >/dev/null 2>&1 || true
fi
"""

KIND_KUBECONFIG = 'kind get kubeconfig --name "$CLUSTER_NAME"'
