"""What the stack tells its user: the tutorial's checks (tryIt), further checks (moreChecks), what verify should
expect (verify), and the smoke check's command line."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, fields, is_dataclass
from typing import Any

from components.model import catalog
from components.model.config import StackConfig
from components.model.policy import expected_denied, l4_denials, l7_denials
from components.model.topology import (
    host_url,
    in_cluster_ingress,
    ingress_gateway,
    ingress_url,
    kube_context,
    kubectl,
)

TITLE = 'grep -o "<title>.*</title>"'


def _app_kubectl(config: StackConfig) -> str:
    k, ns = kubectl(config.cluster), config.app.namespace
    return k if ns == "default" else f"{k} -n {ns}"


def try_it(config: StackConfig, stack: str = "dev") -> list[str]:
    """The guide's own checks, verbatim but for the kubectl context (and namespace), in the guide's order."""
    if config.app.guide == "istio-getting-started":
        return getting_started_try_it(config, stack)
    k, app = kubectl(config.cluster), _app_kubectl(config)

    def curl(client: str, url: str) -> str:
        return f"{app} exec deploy/{client} -- curl -s {url} | {TITLE}"

    commands = [f"{k} get nodes -o wide", f"{k} get pods -n {catalog.ISTIO_NAMESPACE}"]
    ingress = in_cluster_ingress(config)
    if ingress is not None:
        commands.append(curl("sleep", f"http://{ingress}/productpage"))
    productpage = f"http://{catalog.PRODUCTPAGE}:{catalog.BOOKINFO_PORT}{catalog.TITLE_PAGE}"
    commands += [
        curl("sleep", productpage),
        curl("notsleep", productpage),
        # The tutorial's spacing, kept as written.
        f"for i in {{1..10}}; do   {curl('notsleep', productpage)};   sleep 1; done",
        f"{k} logs -n {catalog.ISTIO_NAMESPACE} -l app=ztunnel",
    ]
    return commands


def getting_started_try_it(config: StackConfig, stack: str = "dev") -> list[str]:
    """Istio's ambient Getting Started's checks, in its order: the gateway reached through kind's host port instead of
    `kubectl port-forward`. The stack ends where the guide ends: the guide's first curl from `curl` (exit 56 at that
    step, before the waypoint) gets the page here; moreChecks' deniedAtL4 shows the L4 denial in the finished mesh."""
    app = _app_kubectl(config)
    productpage = f"http://{catalog.PRODUCTPAGE}:{catalog.BOOKINFO_PORT}/productpage"
    client = config.app.clients[0]
    commands = []
    if config.app.ingress == "gateway-api":
        commands.append(f"{app} get gateway")
    url = ingress_url(config)
    if url is not None:
        commands.append(f"curl -s {url} | {TITLE}")  # for the guide's port-forward and browser
    if "kiali" in config.observability.addons:
        commands.append(f"make dashboard ADDON=kiali STACK={stack}")  # for `istioctl dashboard kiali`
    if url is not None:
        commands.append(f"for i in $(seq 1 100); do curl -sSI -o /dev/null {url}; done")
    commands.append(f'{app} exec deploy/{client} -- curl -s "{productpage}"')
    if config.waypoint.mode != "none":
        commands.append(f"{app} get gtw {config.waypoint.name}")
    if config.security.l7_clients:
        commands.append(f'{app} exec deploy/{client} -- curl -s "{productpage}" -X DELETE')  # RBAC: access denied
        commands.append(f"{app} exec deploy/reviews-v1 -- curl -s {productpage}")  # RBAC: access denied
        commands.append(f"{app} exec deploy/{client} -- curl -s {productpage} | {TITLE}")
    for route in config.traffic.routes:
        commands.append(f'{app} exec deploy/{client} -- sh -c "for i in \\$(seq 1 100); do curl -s {productpage} | '
                        f'grep {route.service}-v.-; done"')
    return commands


def more_checks(config: StackConfig) -> dict[str, str]:
    """Checks beyond the tutorial: from this machine, the sidecar namespace, and what zero trust denies."""
    k, app, ns = kubectl(config.cluster), _app_kubectl(config), config.app.namespace
    productpage = f"http://{catalog.PRODUCTPAGE}:{catalog.BOOKINFO_PORT}/"
    commands: dict[str, str] = {}
    url = ingress_url(config)
    if url is not None:
        commands["viaHost"] = f"curl -s {url} | {TITLE}"
        gateway = ingress_gateway(config)
        if config.cluster.provider == "existing" and gateway is not None:
            commands["portForward"] = (f"{k} port-forward -n {gateway[0]} svc/{gateway[1]} "
                                       f"{config.cluster.ingress_host_port}:80")
    if config.sidecar.enabled:
        client = catalog.SIDECAR_CLIENT
        commands["fromSidecar"] = (f"{k} exec -n {config.sidecar.namespace} deploy/{client} -c {client} -- "
                                   f"curl -s http://{catalog.PRODUCTPAGE}.{ns}:{catalog.BOOKINFO_PORT}"
                                   f"{catalog.TITLE_PAGE} | {TITLE}")
    status = "curl -s -o /dev/null -w '%{http_code}\\n'"
    for client in expected_denied(config):
        where = ("403 from the waypoint (RBAC: access denied)" if config.waypoint.covers(catalog.PRODUCTPAGE)
                 else "exit 56: ztunnel resets the connection")
        commands[f"{client}Denied"] = f'{app} exec deploy/{client} -- {status} {productpage}; echo "exit $?"  # {where}'
    if config.security.default_deny and not config.waypoint.covers("details"):
        # Only productpage may call details: any other caller is refused at L4.
        commands["deniedAtL4"] = (f"{app} exec deploy/notsleep -- curl -s http://details:{catalog.BOOKINFO_PORT}"
                                  '/details/0; echo "exit $?"  # exit 56: ztunnel resets the connection (default deny)')
    reset_at_pod = l4_denials(config)
    if config.app.guide == "istio-getting-started" and reset_at_pod:
        # The guide's exit 56, in the finished mesh: the pod's own address skips the waypoint, and ztunnel's L4 policy
        # admits only the gateway and the waypoint (verify's l4-denied:<client>:pod-ip).
        client = reset_at_pod[0]
        pod_ip = f"$({app} get pod -l app={catalog.PRODUCTPAGE} -o jsonpath='{{.items[0].status.podIP}}')"
        commands["deniedAtL4"] = (f'{app} exec deploy/{client} -- curl -s "http://{pod_ip}:{catalog.BOOKINFO_PORT}'
                                  '/productpage"; echo "exit $?"  # exit 56: ztunnel resets the connection (L4 policy)')
    if config.security.l7_clients:
        methods = "/".join(config.security.l7_methods)
        client = config.security.l7_clients[0]
        commands["deniedAtL7"] = (f"{app} exec deploy/{client} -- {status} -X DELETE {productpage}  "
                                  f"# 403 from the waypoint: only {methods} is allowed")
    return commands


def verify_hints(config: StackConfig) -> dict[str, Any]:
    """What this configuration expects of verify; exported as the stack output `verify` for `make verify`."""
    return {
        "context": kube_context(config.cluster),
        "hostUrl": host_url(config),
        "ingressAddress": in_cluster_ingress(config),
        "expectDenied": expected_denied(config),
        "waypoint": config.waypoint.name if config.waypoint.mode != "none" else None,
        # verify's l7-denied:<workload>:<method> checks: what the waypoint answers with RBAC: access denied.
        "l7Denied": [f"{workload}:{method}" for workload, method in l7_denials(config)],
        # verify's l4-denied:<client>:pod-ip checks: the clients ztunnel resets on productpage's pod address.
        "l4Denied": l4_denials(config),
        "clients": list(config.app.clients),
        # make dashboard's add-ons, and verify's metric check where Prometheus runs.
        "addons": list(config.observability.addons),
        # verify's split:<service> checks (traffic.routes).
        "splits": {route.service: dict(route.weights) for route in config.traffic.routes},
    }


# --- the in-stack smoke check ----------------------------------------------------------------------------------

# Read by tools/verify (--kubeconfig-env); kept in step by a unit test.
KUBECONFIG_ENV = "AMBIENT_MESH_KUBECONFIG"
# Which Python runs verify (standard library only): the caller's environment, not an input, so that it never
# shows as a diff.
PYTHON = '"${AMBIENT_MESH_PYTHON:-python3}"'
FAILURE_MESSAGE = ("ambient-mesh smoke check FAILED: the stack is deployed but the mesh does not work (see the checks "
                   "above). `make verify` runs every check with its evidence; set ambient-mesh:verify.smokeCheck to "
                   "false to skip this check.")


def verify_argv(namespace: str, context: str | None, ingress_address: str | None, host: str | None,
                denied: list[str], wait_seconds: int, clients: tuple[str, ...] = catalog.CLIENT_NAMES) -> list[str]:
    """The flags of `python -m tools.verify` for the core checks (the clients only when not the seed tutorial's,
    which are verify's own default)."""
    argv = ["--core", "--no-stack-outputs", "--kubeconfig-env", KUBECONFIG_ENV, "--namespace", namespace]
    if clients != catalog.CLIENT_NAMES:
        for client in clients:
            argv += ["--client", client]
    if context:
        argv += ["--context", context]
    if ingress_address is None:
        argv.append("--no-ingress")
    else:
        argv += ["--ingress-address", ingress_address]
        if host:
            argv += ["--host-url", host]
    for client in denied:
        argv += ["--expect-denied", client]
    argv += ["--wait", str(wait_seconds)]
    return argv


def smoke_script(argv: list[str]) -> str:
    """The shell command: verify, then one clear line when it fails."""
    return (f"{PYTHON} -m tools.verify {shlex.join(argv)} || {{ status=$?; echo; "
            f"echo {shlex.quote(FAILURE_MESSAGE)}; exit $status; }}")


def smoke_triggers(config: StackConfig) -> list[str]:
    """One `section=<json>` trigger per section of the stack config: any config change re-runs the check."""
    return [f"{f.name}={json.dumps(asdict(getattr(config, f.name)), sort_keys=True, default=str)}"
            if is_dataclass(getattr(config, f.name)) else f"{f.name}={json.dumps(getattr(config, f.name), default=str)}"
            for f in fields(config)]
