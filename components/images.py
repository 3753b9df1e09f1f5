"""Each image pulled once on the host and loaded into the kind nodes, before anything in the cluster would pull it.

Why in the graph and not in the Makefile: the image list follows the stack's config (versions, Bookinfo's tag, the
ingress, waypoint and sidecar switches), which only the program reads; `pulumi up` run by hand gets it too; and the
ordering is explicit: the pull runs beside the cluster's creation, the load right after it, and only what runs
these images waits for the load (the Istio releases, Bookinfo, the clients). Preview runs neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from components.model.images import LOAD_SCRIPT, PULL_SCRIPT


@dataclass
class ImagePreloadArgs:
    # Environment of the pull and of the load (components/model/images.py: pull_environment, load_environment).
    pull: dict[str, str]
    load: dict[str, str]
    # The cluster whose nodes get the images: loaded once it exists, again whenever it is recreated.
    cluster: list[pulumi.Resource]
    # What must pass before anything is pulled (the preflight).
    after: list[pulumi.Resource] = field(default_factory=list)


class ImagePreload(pulumi.ComponentResource):
    pull: command.local.Command
    load: command.local.Command

    def __init__(self, name: str, args: ImagePreloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:images:ImagePreload", name, None, opts)
        # On the host, with the host's Docker and its login: a node's containerd pulls anonymously, once per node.
        self.pull = command.local.Command(
            f"{name}-pull",
            create=PULL_SCRIPT,
            environment=args.pull,
            interpreter=["/bin/sh", "-c"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )
        self.load = command.local.Command(
            f"{name}-load",
            create=LOAD_SCRIPT,
            environment=args.load,
            interpreter=["/bin/sh", "-c"],
            # A new cluster has empty nodes: load again.
            triggers=[c.id for c in args.cluster if isinstance(c, pulumi.CustomResource)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pull, *args.cluster]),
        )
        self.register_outputs({"images": args.pull["IMAGES"]})

    @property
    def loaded(self) -> list[pulumi.Resource]:
        """What a workload waits for so that its node already has its image."""
        return [self.load]
