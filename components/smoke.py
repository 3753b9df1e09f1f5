"""In-stack smoke check: after everything else is up, run verify's core checks so that a broken mesh fails `pulumi up`.

It is one `command:local:Command` that runs `python -m tools.verify --core` from the repository. A Command runs on
create and whenever one of its inputs changes: the verify flags and the `triggers` (the stack passes its versions
and config), so an unchanged stack does not re-run it on every `up`; a failed check leaves the resource uncreated,
so the next `up` tries again. The kubeconfig reaches verify through an environment variable (a secret input, stored
encrypted in the state) that verify writes to a private temporary file; it is never part of the command line and
verify never prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command

from components.model import catalog
from components.model.outputs import KUBECONFIG_ENV, smoke_script, verify_argv

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SmokeCheckArgs:
    # The cluster's kubeconfig (a secret); empty means kubectl's own kubeconfig (with `context`).
    kubeconfig: pulumi.Input[str]
    namespace: pulumi.Input[str]
    context: str | None = None
    # productpage through the ingress from this machine, e.g. http://localhost:8080/productpage; None: not checked.
    host_url: str | None = None
    # The ingress gateway inside the cluster (host[:port] or URL); None: the stack has no ingress.
    ingress_address: str | None = None
    # Clients that policy must deny (e.g. ["notsleep"]): checked to be denied, and the others to get through.
    expect_denied: list[str] = field(default_factory=list)
    # The resources the check runs after: the end of the graph.
    after: list[pulumi.Resource] = field(default_factory=list)
    # Values whose change re-runs the check (versions, config). Changes elsewhere do not.
    triggers: list[str] = field(default_factory=list)
    # How long pods may take to become Ready.
    wait_seconds: int = 180
    # The guide's curl clients (app.guide).
    clients: tuple[str, ...] = catalog.CLIENT_NAMES


class SmokeCheck(pulumi.ComponentResource):
    """Runs verify's core checks at the end of `pulumi up`; a failure fails the update with the checks' evidence."""

    command: command.local.Command
    stdout: pulumi.Output[str]

    def __init__(self, name: str, args: SmokeCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:smoke:SmokeCheck", name, None, opts)
        script = pulumi.Output.from_input(args.namespace).apply(
            lambda namespace: smoke_script(verify_argv(namespace, args.context, args.ingress_address, args.host_url,
                                                       args.expect_denied, args.wait_seconds, args.clients)))
        self.command = command.local.Command(
            f"{name}-verify",
            create=script,
            dir=str(REPO_ROOT),
            interpreter=["/bin/sh", "-c"],
            environment={KUBECONFIG_ENV: pulumi.Output.secret(args.kubeconfig)},
            add_previous_output_in_env=False,
            triggers=args.triggers,
            # verify's output names checks and evidence, never the kubeconfig; stderr is not shown.
            logging=command.local.Logging.STDOUT,
            # The end of the graph: it checks what everything else built.
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )
        self.stdout = self.command.stdout
        self.register_outputs({"stdout": self.stdout})
