"""Bookinfo, written as our own typed resources from the catalog's small table."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.model.catalog import BOOKINFO, BOOKINFO_PORT, bookinfo_account
from components.model.specs import bookinfo_image, scratch_volume_name


@dataclass
class BookinfoArgs:
    namespace: pulumi.Input[str]
    registry: str
    image_tag: str
    # What the Deployments wait for besides their ServiceAccounts (the images in the nodes).
    wait_for: list[pulumi.Resource] = field(default_factory=list)


class Bookinfo(pulumi.ComponentResource):
    """ServiceAccounts, Services and Deployments of details, ratings, reviews (v1-v3) and productpage."""

    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]
    service_accounts: dict[str, k8s.core.v1.ServiceAccount]

    def __init__(self, name: str, args: BookinfoArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:bookinfo:Bookinfo", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.deployments, self.services, self.service_accounts = {}, {}, {}

        def meta(object_name: str, labels: dict[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=labels)

        for svc in BOOKINFO:
            account = bookinfo_account(svc.name)
            self.service_accounts[svc.name] = k8s.core.v1.ServiceAccount(
                f"{name}-{svc.name}-account", metadata=meta(account, {"account": svc.name}), opts=child)
            self.services[svc.name] = k8s.core.v1.Service(
                f"{name}-{svc.name}-service",
                metadata=meta(svc.name, {"app": svc.name, "service": svc.name}),
                spec=k8s.core.v1.ServiceSpecArgs(
                    selector={"app": svc.name},
                    ports=[k8s.core.v1.ServicePortArgs(name="http", port=BOOKINFO_PORT, target_port=BOOKINFO_PORT)],
                ),
                opts=child,
            )
            for version in svc.versions:
                workload = f"{svc.name}-{version}"
                labels = {"app": svc.name, "version": version}
                self.deployments[workload] = k8s.apps.v1.Deployment(
                    f"{name}-{workload}",
                    metadata=meta(workload, labels),
                    spec=k8s.apps.v1.DeploymentSpecArgs(
                        replicas=1,
                        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                        template=k8s.core.v1.PodTemplateSpecArgs(
                            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                            spec=k8s.core.v1.PodSpecArgs(
                                service_account_name=account,
                                containers=[k8s.core.v1.ContainerArgs(
                                    name=svc.name,
                                    image=bookinfo_image(args.registry, svc.name, version, args.image_tag),
                                    image_pull_policy="IfNotPresent",
                                    ports=[k8s.core.v1.ContainerPortArgs(container_port=BOOKINFO_PORT)],
                                    env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in svc.env.items()],
                                    volume_mounts=[k8s.core.v1.VolumeMountArgs(name=scratch_volume_name(p),
                                                                               mount_path=p)
                                                   for p in svc.scratch_paths],
                                )],
                                volumes=[k8s.core.v1.VolumeArgs(name=scratch_volume_name(p),
                                                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())
                                         for p in svc.scratch_paths],
                            ),
                        ),
                    ),
                    # The account must exist before the ReplicaSet creates pods, or they are refused until it does.
                    opts=pulumi.ResourceOptions(parent=self,
                                                depends_on=[self.service_accounts[svc.name], *args.wait_for]),
                )

        self.register_outputs({"deployments": list(self.deployments), "services": list(self.services)})
