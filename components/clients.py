"""The tutorial's in-mesh curl clients: `sleep`, and `notsleep` kept away from productpage's node."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s


def _anti_affinity(app: str) -> k8s.core.v1.AffinityArgs:
    """Prefer a node without `app` pods, so traffic crosses nodes and ztunnel-to-ztunnel HBONE shows in the logs."""
    return k8s.core.v1.AffinityArgs(
        pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
            preferred_during_scheduling_ignored_during_execution=[k8s.core.v1.WeightedPodAffinityTermArgs(
                weight=100,
                pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app": app}),
                    topology_key="kubernetes.io/hostname",
                ),
            )],
        ),
    )


@dataclass
class CurlClientsArgs:
    namespace: pulumi.Input[str]
    image: str
    names: tuple[str, ...]
    # Clients that keep away from another app's pods: client -> app.
    avoid: dict[str, str] = field(default_factory=dict)
    # What the Deployments must wait for besides their ServiceAccounts.
    wait_for: list[pulumi.Resource] = field(default_factory=list)


class CurlClients(pulumi.ComponentResource):
    """ServiceAccount, Service (port 80) and a Deployment that sleeps forever, for each client."""

    deployments: dict[str, k8s.apps.v1.Deployment]
    service_accounts: dict[str, k8s.core.v1.ServiceAccount]

    def __init__(self, name: str, args: CurlClientsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:clients:CurlClients", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.deployments, self.service_accounts = {}, {}
        for client in args.names:
            labels = {"app": client}
            metadata = k8s.meta.v1.ObjectMetaArgs(name=client, namespace=args.namespace, labels=labels)
            self.service_accounts[client] = k8s.core.v1.ServiceAccount(f"{name}-{client}-account",
                                                                       metadata=metadata, opts=child)
            k8s.core.v1.Service(
                f"{name}-{client}-service",
                metadata=metadata,
                spec=k8s.core.v1.ServiceSpecArgs(
                    selector=labels, ports=[k8s.core.v1.ServicePortArgs(name="http", port=80)]),
                opts=child,
            )
            avoid = args.avoid.get(client)
            self.deployments[client] = k8s.apps.v1.Deployment(
                f"{name}-{client}",
                metadata=metadata,
                spec=k8s.apps.v1.DeploymentSpecArgs(
                    replicas=1,
                    selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                        spec=k8s.core.v1.PodSpecArgs(
                            service_account_name=client,
                            # curl sleeps: nothing to drain, so deletes and rollouts are instant.
                            termination_grace_period_seconds=0,
                            affinity=_anti_affinity(avoid) if avoid else None,
                            containers=[k8s.core.v1.ContainerArgs(
                                name=client,
                                image=args.image,
                                image_pull_policy="IfNotPresent",
                                command=["/bin/sleep", "infinity"],
                            )],
                        ),
                    ),
                ),
                # The account must exist before the ReplicaSet creates pods, or they are refused until it does.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service_accounts[client], *args.wait_for]),
            )
        self.register_outputs({"clients": list(self.deployments)})
