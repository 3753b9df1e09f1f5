"""In-stack smoke check: after everything else is up, run verify's core checks so that a broken mesh fails `pulumi up`.

It is one `command:local:Command` that runs `python -m tools.verify --core` from the repository. A Command runs on
create and whenever one of its inputs changes: the verify flags and the `triggers` (the stack passes its versions
and config), so an unchanged stack does not re-run it on every `up`; a failed check leaves the resource uncreated,
so the next `up` tries again. The kubeconfig reaches verify through an environment variable (a secret input, stored
encrypted in the state) that verify writes to a private temporary file; it is never part of the command line and
verify never prints it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command

from components.cluster import kube_context

REPO_ROOT = Path(__file__).resolve().parent.parent
# Read by tools/verify.py (--kubeconfig-env); kept in step by a unit test.
KUBECONFIG_ENV = "AMBIENT_MESH_KUBECONFIG"
# Which Python runs verify (standard library only): the caller's environment, not an input, so that it never
# shows as a diff.
PYTHON = '"${AMBIENT_MESH_PYTHON:-python3}"'
DEFAULT_INGRESS_ADDRESS = "istio-ingressgateway.istio-system"
FAILURE_MESSAGE = ("ambient-mesh smoke check FAILED: the stack is deployed but the mesh does not work (see the checks "
                   "above). `make verify` runs every check with its evidence; set ambient-mesh:verify.smokeCheck to "
                   "false to skip this check.")


def in_cluster_ingress(config: Any) -> str | None:
    """The ingress gateway's address inside the cluster for the stack's `app.ingress`."""
    from components.ingress import ingress_gateway

    gateway = ingress_gateway(config)
    return f"{gateway[1]}.{gateway[0]}" if gateway else None


def host_url(config: Any) -> str | None:
    """productpage from this machine: only kind maps the gateway's NodePort to a host port."""
    from components.ingress import ingress_url

    return ingress_url(config) if config.cluster.provider == "kind" else None


def expected_denied(config: Any) -> list[str]:
    """The curl clients that the stack's policies keep away from productpage (verify --expect-denied)."""
    from components.clients import CLIENT_NAMES
    from components.identities import principal
    from components.security import productpage_allowed

    allowed = productpage_allowed(config)
    if allowed is None:
        return []
    return [c for c in CLIENT_NAMES if principal(f"{config.app.namespace}/{c}") not in allowed]


def verify_hints(config: Any) -> dict[str, Any]:
    """What this configuration expects of verify; export it as the stack output `verify` for `make verify`."""
    waypoint = getattr(config, "waypoint", None)
    return {
        "context": kube_context(config.cluster),
        "hostUrl": host_url(config),
        "ingressAddress": in_cluster_ingress(config),
        "expectDenied": expected_denied(config),
        "waypoint": waypoint.name if waypoint is not None and waypoint.mode != "none" else None,
    }


@dataclass
class SmokeCheckArgs:
    # The cluster's kubeconfig (a secret); empty means kubectl's own kubeconfig (with `context`).
    kubeconfig: pulumi.Input[str]
    namespace: pulumi.Input[str]
    context: pulumi.Input[str] | None = None
    # productpage through the ingress from this machine, e.g. http://localhost:8080/productpage; None: not checked.
    host_url: str | None = None
    # The ingress gateway inside the cluster (host[:port] or URL); None: the stack has no ingress.
    ingress_address: str | None = DEFAULT_INGRESS_ADDRESS
    # Clients that policy must deny (e.g. ["notsleep"]): checked to be denied, and sleep to be allowed.
    expect_denied: list[str] = field(default_factory=list)
    # The resources the check runs after: the end of the graph.
    after: list[pulumi.Resource] = field(default_factory=list)
    # Values whose change re-runs the check (versions, config). Changes elsewhere do not.
    triggers: list[Any] = field(default_factory=list)
    # How long pods may take to become Ready.
    wait_seconds: int = 180

    @classmethod
    def for_stack(cls, config: Any, kubeconfig: pulumi.Input[str], namespace: pulumi.Input[str],
                  after: list[pulumi.Resource]) -> SmokeCheckArgs:
        """Everything from the stack's config: context, ingress, host URL, denied clients, triggers."""
        hints = verify_hints(config)
        return cls(kubeconfig=kubeconfig, namespace=namespace,
                   context=hints["context"] if config.cluster.provider == "existing" else None,
                   host_url=hints["hostUrl"], ingress_address=hints["ingressAddress"],
                   expect_denied=hints["expectDenied"], after=after, triggers=smoke_triggers(config))


def verify_argv(namespace: str, context: str | None, args: SmokeCheckArgs) -> list[str]:
    """The flags of `python -m tools.verify` for the core checks."""
    argv = ["--core", "--no-stack-outputs", "--kubeconfig-env", KUBECONFIG_ENV, "--namespace", namespace]
    if context:
        argv += ["--context", context]
    if args.ingress_address is None:
        argv.append("--no-ingress")
    else:
        argv += ["--ingress-address", args.ingress_address]
        if args.host_url:
            argv += ["--host-url", args.host_url]
    for client in args.expect_denied:
        argv += ["--expect-denied", client]
    argv += ["--wait", str(args.wait_seconds)]
    return argv


def smoke_script(argv: list[str]) -> str:
    """The shell command: verify, then one clear line when it fails."""
    return (f"{PYTHON} -m tools.verify {shlex.join(argv)} || {{ status=$?; echo; "
            f"echo {shlex.quote(FAILURE_MESSAGE)}; exit $status; }}")


def smoke_triggers(config: Any) -> list[str]:
    """One `section=<json>` trigger per section of a (dataclass) stack config: any config change re-runs the check."""
    if not is_dataclass(config):
        raise TypeError("smoke_triggers expects the stack's config dataclass")
    return [f"{f.name}={json.dumps(asdict(getattr(config, f.name)), sort_keys=True, default=str)}"
            if is_dataclass(getattr(config, f.name)) else f"{f.name}={json.dumps(getattr(config, f.name), default=str)}"
            for f in fields(config)]


class SmokeCheck(pulumi.ComponentResource):
    """Runs verify's core checks at the end of `pulumi up`; a failure fails the update with the checks' evidence."""

    command: command.local.Command
    stdout: pulumi.Output[str]

    def __init__(self, name: str, args: SmokeCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:smoke:SmokeCheck", name, None, opts)
        script = pulumi.Output.all(args.namespace, args.context).apply(
            lambda values: smoke_script(verify_argv(values[0], values[1], args)))
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )
        self.stdout = self.command.stdout
        self.register_outputs({"stdout": self.stdout})
