"""A sidecar-mode namespace with its own curl client: sidecars and ambient pods in one mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.clients import CurlClients, CurlClientsArgs
from components.model.catalog import INJECTION_LABEL, SIDECAR_CLIENT
from components.model.config import SidecarConfig


@dataclass
class SidecarNamespaceArgs:
    config: SidecarConfig
    client_image: str
    # istiod: its injection webhook must serve before the client's pod is created.
    injector: list[pulumi.Resource]
    # The client image's load into the nodes (cluster.preloadImages); the sidecar's proxy comes with istiod's.
    images: list[pulumi.Resource] = field(default_factory=list)


class SidecarNamespace(pulumi.ComponentResource):
    namespace: k8s.core.v1.Namespace
    clients: CurlClients

    def __init__(self, name: str, args: SidecarNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:sidecar:SidecarNamespace", name, None, opts)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.config.namespace, labels=INJECTION_LABEL),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.clients = CurlClients(
            f"{name}-clients",
            CurlClientsArgs(self.namespace.metadata.name, args.client_image, names=(SIDECAR_CLIENT,),
                            # A pod created before the injector serves starts without its sidecar.
                            wait_for=[*args.injector, *args.images]),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"namespace": self.namespace.metadata.name})
