"""Open one of Istio's add-ons: `python -m tools.dashboard kiali|grafana|prometheus` (or `make dashboard ADDON=kiali`).

Forwards 127.0.0.1:<port> to the add-on's Service in istio-system through the stack's own kubeconfig (its
`kubeconfig` output, as verify reads it), prints the URL, and keeps forwarding until Ctrl-C — what `istioctl
dashboard` does, bound to this machine only. The add-on must be one the stack runs (`observability.addons`).

Standard library only, like verify.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from tools.verify.cli import kubeconfig_file, stack_outputs
from tools.verify.runner import SystemRunner

# The Service port each add-on serves and the page under it (Istio's samples/addons; istioctl dashboard's paths).
DASHBOARDS = {"prometheus": (9090, "/"), "kiali": (20001, "/kiali"), "grafana": (3000, "/")}
NAMESPACE = "istio-system"


def free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def local_port(wanted: int) -> int:
    """The add-on's own port when this machine has it free, else the next free one."""
    return next((p for p in range(wanted, wanted + 50) if free(p)), 0)


def port_forward_argv(addon: str, kubeconfig: str | None, context: str | None, port: int) -> list[str]:
    remote, _ = DASHBOARDS[addon]
    argv = ["kubectl"]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    return argv + ["port-forward", "-n", NAMESPACE, f"svc/{addon}", f"{port}:{remote}", "--address", "127.0.0.1"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("addon", choices=sorted(DASHBOARDS))
    parser.add_argument("--stack", help="Pulumi stack whose outputs to read (default: the selected stack)")
    parser.add_argument("--port", type=int, help="local port (default: the add-on's own, or the next free one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, runner: Any = None, run: Any = subprocess.call,
         out: Any = None) -> int:
    args = parse_args(argv)
    out = out if out is not None else sys.stdout
    outputs = stack_outputs(runner or SystemRunner(), args.stack) or {}
    hints: dict[str, Any] = outputs["verify"] if isinstance(outputs.get("verify"), dict) else {}
    addons = hints.get("addons") or []
    if args.addon not in addons:
        print(f"dashboard: the stack does not run {args.addon} (observability.addons: {addons or 'none'}); "
              f"add it under ambient-mesh:observability in the stack file, then make up", file=out)
        return 2
    port = args.port or local_port(DASHBOARDS[args.addon][0])
    if not port:
        print("dashboard: no free local port near the add-on's own: pass --port", file=out)
        return 2
    context = None if outputs.get("kubeconfig") else hints.get("context")
    with kubeconfig_file(outputs.get("kubeconfig") or "") as path:
        argv_forward = port_forward_argv(args.addon, path if outputs.get("kubeconfig") else None, context, port)
        print(f"dashboard: {args.addon} at http://127.0.0.1:{port}{DASHBOARDS[args.addon][1]}  (Ctrl-C stops the "
              "forward)", file=out, flush=True)
        try:
            return int(run(argv_forward))
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
