"""The Kubernetes cluster and the explicit provider every Kubernetes resource of the stack uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from components.model.config import ClusterConfig
from components.model.kind import KIND_CREATE, KIND_DELETE, KIND_KUBECONFIG, KIND_UPDATE, kind_config, stack_owner

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ClusterArgs:
    config: ClusterConfig
    # kind: the preflight's command line (components/model/preflight.py), run before kind creates anything.
    preflight: str | None = None


class Cluster(pulumi.ComponentResource):
    """A kind cluster made for the stack, or an existing cluster reached through a kubeconfig/context."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    # What creates the nodes (kind's command); empty for an existing cluster.
    created: list[pulumi.Resource]
    # The preflight, the graph's first step: nothing else starts before it passes.
    preflight: list[pulumi.Resource]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:cluster:Cluster", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.created, self.preflight = [], []

        if config.provider == "kind":
            environment = {"CLUSTER_NAME": config.name}
            cluster_config = kind_config(config)
            if args.preflight:
                self.preflight = [command.local.Command(
                    f"{name}-preflight",
                    # Prevents a half-made cluster: kind failing on a taken host port, or Istio pods Pending on a
                    # small Docker, minutes in. Runs again when its facts change; preview runs no command.
                    create=args.preflight,
                    dir=str(REPO_ROOT),
                    interpreter=["/bin/sh", "-c"],
                    opts=child,
                )]
            created = command.local.Command(
                f"{name}-kind",
                create=KIND_CREATE,
                update=KIND_UPDATE,
                delete=KIND_DELETE,
                stdin=cluster_config,
                # Recorded beside the cluster: a creation that never finished is known for this stack's own.
                environment={**environment,
                             "STACK_OWNER": stack_owner(pulumi.get_project(), pulumi.get_stack(), str(REPO_ROOT))},
                interpreter=["/bin/sh", "-c"],
                # Any change to the nodes or port mapping means a new cluster: kind cannot reshape one in place.
                triggers=[cluster_config],
                # kind refuses a second cluster of the same name: a replacement must delete the old one first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.preflight, delete_before_replace=True),
            )
            self.created = [created]
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
