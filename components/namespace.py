"""The app namespace and its ambient enrolment."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.model.catalog import AMBIENT_LABEL, PATCH_FORCE


@dataclass
class AppNamespaceArgs:
    name: str
    # `default` always exists; any other namespace is ours to create (and to delete on destroy).
    create: bool


class AppNamespace(pulumi.ComponentResource):
    """Creates the app namespace, unless it is one that always exists (`default`)."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: AppNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:namespace:AppNamespace", name, None, opts)
        if args.create:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.name = namespace.metadata.name
        else:
            self.name = pulumi.Output.from_input(args.name)
        self.register_outputs({"name": self.name})


@dataclass
class AmbientEnrolmentArgs:
    namespace: pulumi.Input[str]
    # ztunnel and istio-cni (IstioAmbient.dataplane).
    dataplane: list[pulumi.Resource]
    # The app (Bookinfo, the clients): labelled once it runs, as in the tutorial.
    running: list[pulumi.Resource] = field(default_factory=list)


class AmbientEnrolment(pulumi.ComponentResource):
    """Labels the namespace istio.io/dataplane-mode=ambient with a patch: destroy removes the label and nothing else."""

    patch: k8s.core.v1.NamespacePatch

    def __init__(self, name: str, args: AmbientEnrolmentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:namespace:AmbientEnrolment", name, None, opts)
        self.patch = k8s.core.v1.NamespacePatch(
            f"{name}-label",
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(name=args.namespace, labels=AMBIENT_LABEL,
                                                     annotations=PATCH_FORCE),
            # Labelling before ztunnel and istio-cni are ready makes new pods fail with "no ztunnel connection";
            # labelling before the app runs would start its pods enrolled, not capture running ones as the tutorial
            # shows (and its loads run beside Istio's: the app's images often land after the data plane is ready).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.dataplane, *args.running]),
        )
        self.register_outputs({"labels": self.patch.metadata.labels})
