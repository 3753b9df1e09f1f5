"""The Kubernetes cluster and the explicit provider every Kubernetes resource of the stack uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from components.config import ClusterConfig


@dataclass
class ClusterArgs:
    config: ClusterConfig


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
    document = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": config.name, "nodes": nodes}
    return yaml.safe_dump(document, sort_keys=False)


def kube_context(config: ClusterConfig) -> str | None:
    """The kubectl context of the cluster: kind names it kind-<name>; None: kubectl's current one."""
    return f"kind-{config.name}" if config.provider == "kind" else config.context


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

KIND_DELETE = 'kind delete cluster --name "$CLUSTER_NAME"'

KIND_KUBECONFIG = 'kind get kubeconfig --name "$CLUSTER_NAME"'


class Cluster(pulumi.ComponentResource):
    """A kind cluster made for the stack, or an existing cluster reached through a kubeconfig/context."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    cluster_name: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:cluster:Cluster", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)

        if config.provider == "kind":
            environment = {"CLUSTER_NAME": config.name}
            cluster_config = kind_config(config)
            created = command.local.Command(
                f"{name}-kind",
                create=KIND_CREATE,
                delete=KIND_DELETE,
                stdin=cluster_config,
                environment=environment,
                interpreter=["/bin/sh", "-c"],
                # Any change to the nodes or port mapping means a new cluster: kind cannot reshape one in place.
                triggers=[cluster_config],
                opts=child,
            )
            read = command.local.Command(
                f"{name}-kubeconfig",
                create=KIND_KUBECONFIG,
                environment=environment,
                interpreter=["/bin/sh", "-c"],
                # Re-read whenever the cluster is recreated (and only after it exists).
                triggers=[created.id],
                logging=command.local.Logging.NONE,
                # The kubeconfig holds the cluster's admin credentials.
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
            )
            self.kubeconfig = pulumi.Output.secret(read.stdout)
            self.cluster_name = pulumi.Output.from_input(config.name)
            self.provider = k8s.Provider(f"{name}-provider", kubeconfig=self.kubeconfig, opts=child)
        else:
            self.kubeconfig = pulumi.Output.secret(_read_kubeconfig(config.kubeconfig))
            self.cluster_name = pulumi.Output.from_input(config.context or config.name)
            self.provider = k8s.Provider(
                f"{name}-provider",
                kubeconfig=self.kubeconfig if config.kubeconfig else None,
                context=config.context,
                opts=child,
            )

        self.register_outputs({"kubeconfig": self.kubeconfig, "clusterName": self.cluster_name})


def _read_kubeconfig(path: str | None) -> str:
    if path is None:
        return ""
    with open(path, encoding="utf-8") as handle:
        return handle.read()
