"""Each image pulled once on the host and loaded into the kind nodes, before anything in the cluster would pull it.

Why in the graph and not in the Makefile: the image list follows the stack's config (versions, Bookinfo's tag, the
ingress, waypoint and sidecar switches), which only the program reads; `pulumi up` run by hand gets it too; and the
ordering is explicit: the pull runs beside the cluster's creation, the loads right after it, side by side — the
mesh's images, which Istio's releases wait for, and the app's, which Bookinfo and the clients wait for — so Istio
installs while the app's larger images still load. Preview runs neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from components.model.images import LOAD_SCRIPT, PULL_SCRIPT, Lane


@dataclass
class ImagePreloadArgs:
    # Environment of the pull and of each lane's load (components/model/images.py: pull_environment,
    # load_environment); a lane with nothing to load gets no command.
    pull: dict[str, str]
    load: dict[Lane, dict[str, str]]
    # The cluster whose nodes get the images: loaded once it exists, again whenever it is recreated.
    cluster: list[pulumi.Resource]
    # What must pass before anything is pulled (the preflight).
    after: list[pulumi.Resource] = field(default_factory=list)


class ImagePreload(pulumi.ComponentResource):
    pull: command.local.Command
    loads: dict[Lane, command.local.Command]

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
        self.loads = {
            lane: command.local.Command(
                f"{name}-load-{lane}",
                create=LOAD_SCRIPT,
                environment=environment,
                interpreter=["/bin/sh", "-c"],
                # A new cluster has empty nodes: load again.
                triggers=[c.id for c in args.cluster if isinstance(c, pulumi.CustomResource)],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pull, *args.cluster]),
            )
            for lane, environment in args.load.items() if environment["EVERY_NODE_IMAGES"] or
            environment["WORKER_IMAGES"]
        }
        self.register_outputs({"images": args.pull["IMAGES"]})

    def loaded(self, *lanes: Lane) -> list[pulumi.Resource]:
        """What a workload waits for so that its node already has its images (those of these lanes)."""
        return [self.loads[lane] for lane in lanes if lane in self.loads]
