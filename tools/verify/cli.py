"""The command line: flags, the stack's outputs, the kubeconfig file, the report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any, TextIO

from tools.verify.checks import Check, Settings, Verifier
from tools.verify.mesh import CLIENTS, DEFAULT_INGRESS_ADDRESS, KNOWN_CLIENTS
from tools.verify.runner import Runner, SystemRunner

# --- settings: flags, stack outputs --------------------------------------------------------------------------

# The default of --no-data-plane: how a test tier with stand-in ztunnel/proxyv2 images tells the in-stack smoke check
# (run by `pulumi up`, not by the tier) which checks its images cannot support.
NO_DATA_PLANE_ENV = "AMBIENT_MESH_NO_DATA_PLANE"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: the stack's kubeconfig output, else kubectl's)")
    parser.add_argument("--kubeconfig-env", metavar="VAR",
                        help="read the kubeconfig's content from this environment variable (the smoke check's way)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--namespace", help="the app namespace (default: the stack's appNamespace, else default)")
    parser.add_argument("--host-url", help="productpage through the ingress from this machine "
                                           "(default: the stack's ingressUrl)")
    parser.add_argument("--ingress-address", help=f"the ingress gateway inside the cluster, host[:port] or URL "
                                                  f"(default {DEFAULT_INGRESS_ADDRESS})")
    parser.add_argument("--no-ingress", action="store_true", help="the stack has no ingress: skip ingress checks")
    parser.add_argument("--client", action="append", default=[], choices=KNOWN_CLIENTS, dest="clients",
                        help="the guide's curl clients (repeatable; default: the stack's, else sleep and notsleep)")
    parser.add_argument("--addon", action="append", default=[], dest="addons",
                        choices=("prometheus", "kiali", "grafana"),
                        help="an add-on the stack runs (repeatable; default: the stack's); prometheus: metrics:mtls")
    parser.add_argument("--expect-denied", action="append", default=[], choices=KNOWN_CLIENTS, metavar="CLIENT",
                        help="a client that policy must deny (repeatable), e.g. notsleep")
    parser.add_argument("--waypoint", metavar="NAME", help="check that requests go through this waypoint")
    parser.add_argument("--expect-l7-denied", action="append", default=[], metavar="WORKLOAD:METHOD",
                        help="a call the waypoint's L7 rule must answer with `RBAC: access denied` (repeatable), "
                             "e.g. curl:DELETE or reviews-v1:GET")
    parser.add_argument("--expect-l4-denied", action="append", default=[], choices=KNOWN_CLIENTS, metavar="CLIENT",
                        help="a client ztunnel must reset (curl exit 56) on productpage's pod address (repeatable)")
    parser.add_argument("--split", action="append", default=[], metavar="SERVICE=VERSION:WEIGHT,...",
                        help="a traffic split to check, e.g. reviews=v1:90,v2:10 (repeatable)")
    parser.add_argument("--core", action="store_true",
                        help="core checks only: pods, label, curl from sleep, ingress (the in-stack smoke check)")
    parser.add_argument("--no-data-plane", metavar="REASON", default=os.environ.get(NO_DATA_PLANE_ENV) or None,
                        help="the cluster has no real data plane (a stand-in image): skip every traffic check, "
                             f"giving this reason (default: ${NO_DATA_PLANE_ENV})")
    parser.add_argument("--stack", help="Pulumi stack whose outputs to read (default: the selected stack)")
    parser.add_argument("--no-stack-outputs", action="store_true", help="do not call `pulumi stack output`")
    parser.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                        help="how long pods may take to become Ready (default 120)")
    parser.add_argument("--attempts", type=int, default=5, help="tries per traffic check (default 5)")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between tries (default 3)")
    parser.add_argument("--json", metavar="REPORT", help="also write the results as JSON to this file")
    return parser.parse_args(argv)


def stack_outputs(runner: Runner, stack: str | None) -> dict[str, Any] | None:
    """`pulumi stack output --show-secrets --json`, or None when there is no Pulumi CLI or no stack."""
    argv = ["pulumi", "stack", "output", "--show-secrets", "--json"] + (["--stack", stack] if stack else [])
    result = runner.run(argv, timeout=120)
    if result.returncode != 0:
        return None
    try:
        outputs = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return None
    return outputs if isinstance(outputs, dict) else None


@contextmanager
def kubeconfig_file(content: str) -> Iterator[str]:
    """The kubeconfig in a file only this user can read, removed afterwards."""
    handle, path = tempfile.mkstemp(prefix="ambient-mesh-kubeconfig-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.chmod(path, 0o600)
        yield path
    finally:
        os.unlink(path)


def parse_splits(values: Sequence[str]) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    """`reviews=v1:90,v2:10` -> (("reviews", (("v1", 90), ("v2", 10))),)."""
    splits = []
    for value in values:
        service, _, pairs = value.partition("=")
        try:
            weights = tuple((v, int(w)) for v, w in (pair.split(":", 1) for pair in pairs.split(",")))
        except ValueError as error:
            raise SystemExit(f"verify: --split {value}: expected SERVICE=VERSION:WEIGHT,... ({error})") from error
        splits.append((service, weights))
    return tuple(splits)


def parse_l7_denied(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`curl:DELETE` -> (("curl", "DELETE"),)."""
    pairs = []
    for value in values:
        workload, _, method = value.partition(":")
        if not workload or not method.isalpha():
            raise SystemExit(f"verify: --expect-l7-denied {value}: expected WORKLOAD:METHOD, e.g. curl:DELETE")
        pairs.append((workload, method.upper()))
    return tuple(pairs)


def build_settings(args: argparse.Namespace, outputs: dict[str, Any] | None) -> tuple[Settings, str | None]:
    """Flags win over the stack's outputs, which win over defaults.

    Returns the settings and the kubeconfig *content* to put in a temporary file, if it came from the stack or
    from an environment variable. An optional `verify` output object (hostUrl, ingressAddress, expectDenied,
    waypoint, context) tells verify what this stack's configuration expects.
    """
    outputs = outputs or {}
    hints: dict[str, Any] = outputs["verify"] if isinstance(outputs.get("verify"), dict) else {}
    content: str | None = None
    if args.kubeconfig is None:
        if args.kubeconfig_env:
            content = os.environ.get(args.kubeconfig_env) or None
        elif outputs.get("kubeconfig"):
            content = outputs["kubeconfig"]
    if args.no_ingress:
        ingress: str | None = None
    elif args.ingress_address:
        ingress = args.ingress_address
    elif "ingressAddress" in hints:
        ingress = hints["ingressAddress"] or None
    elif outputs:
        ingress = DEFAULT_INGRESS_ADDRESS if outputs.get("ingressUrl") else None
    else:
        ingress = DEFAULT_INGRESS_ADDRESS
    context = args.context or hints.get("context")
    settings = Settings(
        namespace=args.namespace or outputs.get("appNamespace") or "default",
        kubeconfig=args.kubeconfig,
        context=context,
        host_url=None if args.no_ingress else (
            args.host_url or (hints.get("hostUrl") if "hostUrl" in hints else outputs.get("ingressUrl"))),
        ingress_address=ingress,
        expect_denied=tuple(args.expect_denied or hints.get("expectDenied") or ()),
        waypoint=args.waypoint or hints.get("waypoint"),
        l7_denied=parse_l7_denied(args.expect_l7_denied or hints.get("l7Denied") or ()),
        l4_denied=tuple(args.expect_l4_denied or hints.get("l4Denied") or ()),
        clients=tuple(args.clients or hints.get("clients") or CLIENTS),
        addons=tuple(args.addons or hints.get("addons") or ()),
        splits=parse_splits(args.split) if args.split else tuple(
            (service, tuple((str(v), int(w)) for v, w in weights.items()))
            for service, weights in (hints.get("splits") or {}).items()),
        core=args.core,
        no_data_plane=args.no_data_plane,
        wait_seconds=args.wait,
        attempts=max(1, args.attempts),
        interval=args.interval,
        source="flags and the stack's outputs" if outputs else "flags",
    )
    return settings, content


def report(checks: list[Check], settings: Settings) -> dict[str, Any]:
    shown = asdict(settings)
    shown["kubeconfig"] = settings.kubeconfig and ("(temporary file)" if "ambient-mesh-kubeconfig-" in
                                                   settings.kubeconfig else settings.kubeconfig)
    return {
        "ok": all(c.ok for c in checks),
        "settings": shown,
        "checks": [asdict(c) for c in checks],
        "failed": [c.name for c in checks if c.status == "fail"],
    }


def main(argv: Sequence[str] | None = None, runner: Runner | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    runner = runner or SystemRunner()
    out = out if out is not None else sys.stdout
    outputs = None
    # The smoke check (kubeconfig from the environment) runs inside `pulumi up`: never ask Pulumi from there.
    if not args.no_stack_outputs and not args.kubeconfig_env:
        outputs = stack_outputs(runner, args.stack)
        if outputs is None and not (args.context or args.kubeconfig):
            # kubectl's current context may be anyone's cluster: never guess.
            print("verify: no target: no Pulumi stack outputs (no pulumi CLI, no selected stack, or "
                  "PULUMI_CONFIG_PASSPHRASE unset) and no --context/--kubeconfig; run `make verify` with the stack "
                  "selected, or pass e.g. --context kind-ambient", file=out)
            return 2
        if outputs == {} and not (args.context or args.kubeconfig):
            # An empty stack (never deployed, or after `make destroy`): nothing of it to verify, and kubectl's
            # current context is someone else's cluster.
            print(f"verify: the stack {args.stack or '(selected)'} has no outputs (no deployed mesh, e.g. after "
                  "make destroy): run make up first, or pass --context/--kubeconfig to verify another cluster",
                  file=out)
            return 2
    settings, content = build_settings(args, outputs)
    if args.kubeconfig_env and content is None and args.kubeconfig is None:
        print(f"verify: ${args.kubeconfig_env} is empty: using kubectl's own kubeconfig", file=out)

    def go(settings: Settings) -> int:
        checks = Verifier(settings, runner, out).run()
        if args.json:
            with open(args.json, "w", encoding="utf-8") as stream:
                json.dump(report(checks, settings), stream, indent=2)
            print(f"verify: report written to {args.json}", file=out)
        return 0 if all(c.ok for c in checks) else 1

    if content is not None:
        with kubeconfig_file(content) as path:
            return go(replace(settings, kubeconfig=path))
    return go(settings)
