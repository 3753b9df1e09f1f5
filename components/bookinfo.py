"""Bookinfo, written as our own typed resources from one small table."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import versions

BOOKINFO_PORT = 9080


@dataclass(frozen=True)
class BookinfoService:
    name: str
    versions: tuple[str, ...] = ("v1",)
    env: dict[str, str] = field(default_factory=dict)
    # emptyDir mounts: the images write logs and caches there and the root filesystem may be read-only.
    scratch_paths: tuple[str, ...] = ()
    # The Bookinfo services that call this one (what a default-deny namespace must still allow).
    callers: tuple[str, ...] = ()


SERVICES: tuple[BookinfoService, ...] = (
    BookinfoService("details", callers=("productpage",)),
    BookinfoService("ratings", callers=("reviews",)),
    BookinfoService("reviews", ("v1", "v2", "v3"), env={"LOG_DIR": "/tmp/logs"},
                    scratch_paths=("/tmp", "/opt/ibm/wlp/output"), callers=("productpage",)),
    BookinfoService("productpage", scratch_paths=("/tmp",)),
)


def account_name(service: str) -> str:
    return f"bookinfo-{service}"


def image(service: str, version: str, tag: str) -> str:
    return f"{versions.BOOKINFO_IMAGE_REGISTRY}/examples-bookinfo-{service}-{version}:{tag}"


def volume_name(path: str) -> str:
    return "scratch" + path.replace("/", "-").rstrip("-")


@dataclass
class BookinfoArgs:
    namespace: pulumi.Input[str]
    image_tag: str
    provider: k8s.Provider


class Bookinfo(pulumi.ComponentResource):
    """ServiceAccounts, Services and Deployments of details, ratings, reviews (v1-v3) and productpage."""

    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]
    service_accounts: dict[str, k8s.core.v1.ServiceAccount]

    def __init__(self, name: str, args: BookinfoArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:bookinfo:Bookinfo", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.deployments, self.services, self.service_accounts = {}, {}, {}

        def meta(object_name: str, labels: dict[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=labels)

        for svc in SERVICES:
            account = account_name(svc.name)
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
                                    image=image(svc.name, version, args.image_tag),
                                    image_pull_policy="IfNotPresent",
                                    ports=[k8s.core.v1.ContainerPortArgs(container_port=BOOKINFO_PORT)],
                                    env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in svc.env.items()],
                                    volume_mounts=[k8s.core.v1.VolumeMountArgs(name=volume_name(p), mount_path=p)
                                                   for p in svc.scratch_paths],
                                )],
                                volumes=[k8s.core.v1.VolumeArgs(name=volume_name(p),
                                                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())
                                         for p in svc.scratch_paths],
                            ),
                        ),
                    ),
                    # The account must exist before the ReplicaSet creates pods, or they are refused until it does.
                    opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                                depends_on=[self.service_accounts[svc.name]]),
                )

        self.register_outputs({"deployments": list(self.deployments), "services": list(self.services)})
