"""What is not ready in the cluster, and why: `make diagnose`, and what `make up` prints when `pulumi up` fails.

For every pod that is not Ready: its state (waiting reasons, image-pull errors, restarts, why it is not scheduled),
its Warning events, the last log lines when it is ztunnel or istio-cni, and a hint for the failures this project
knows (Docker Hub's pull limit, the ztunnel readiness flake istio/istio#61374, too little Docker, inotify limits).

    python -m tools.diagnose --stack dev             # the stack file's cluster (kind: context kind-<name>)
    python -m tools.diagnose --context kind-ambient  # any cluster

Standard library only; everything it asks of the cluster goes through tools/verify's Runner, so tests replay it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from tools.verify.cli import kubeconfig_file, stack_outputs
from tools.verify.runner import ClusterUnreachable, Kubectl, Result, Runner, SystemRunner

ISTIO_NAMESPACE = "istio-system"
# The node agents whose logs explain most ambient failures: ztunnel (app=ztunnel) and istio-cni (k8s-app label of
# the cni chart's DaemonSet).
NODE_AGENTS = {"ztunnel": ("app", "ztunnel"), "istio-cni": ("k8s-app", "istio-cni-node")}
LOG_LINES = 15
EVENTS_PER_POD = 5
# A ztunnel pod Running but not Ready for this long is the known flake rather than a slow start.
ZTUNNEL_FLAKE_SECONDS = 120
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff")


@dataclass
class Finding:
    namespace: str
    pod: str
    summary: str
    lines: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _age(seconds: float) -> str:
    return f"{int(seconds // 60)}m" if seconds >= 60 else f"{int(seconds)}s"


def is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class Diagnosis:
    def __init__(self, kubectl: Kubectl, context: str | None, now: datetime,
                 preloaded: frozenset[str] | None = None) -> None:
        self._kubectl = kubectl
        self.context = context
        self.now = now
        self.preloaded = preloaded  # the images the stack loads into the nodes; None: the nodes pull their own
        self.events: dict[str, list[dict[str, Any]]] = {}

    def kubectl(self, *args: str) -> Result:
        """A cluster that stops answering midway leaves that piece of evidence empty."""
        try:
            return self._kubectl(*args)
        except ClusterUnreachable as error:
            return Result(tuple(args), 1, "", str(error))

    @property
    def k(self) -> str:
        return f"kubectl --context {self.context}" if self.context else "kubectl"

    def pod_events(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        if namespace not in self.events:
            result = self.kubectl("get", "events", "-n", namespace, "-o", "json")
            items: list[dict[str, Any]] = []
            if result.returncode == 0:
                with contextlib.suppress(ValueError):
                    items = json.loads(result.stdout).get("items") or []
            self.events[namespace] = items
        found = [e for e in self.events[namespace]
                 if (e.get("involvedObject") or {}).get("name") == pod and e.get("type") == "Warning"]
        found.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return found[-EVENTS_PER_POD:]

    def logs(self, namespace: str, pod: str) -> list[str]:
        result = self.kubectl("logs", "-n", namespace, pod, "--all-containers", f"--tail={LOG_LINES}")
        text = result.stdout if result.returncode == 0 else result.stderr
        return [line for line in text.splitlines() if line.strip()][-LOG_LINES:]

    def examine(self, pod: dict[str, Any]) -> Finding:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        labels = meta.get("labels") or {}
        node = spec.get("nodeName")
        started = _time(status.get("startTime") or meta.get("creationTimestamp"))
        age = (self.now - started).total_seconds() if started else 0.0
        phase = status.get("phase", "Unknown")
        states: list[str] = []
        reasons: set[str] = set()
        messages: list[str] = []
        running_unready = False
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            state = container.get("state") or {}
            restarts = container.get("restartCount", 0)
            again = f", {restarts} restarts" if restarts else ""
            if "waiting" in state:
                reason = state["waiting"].get("reason", "Waiting")
                reasons.add(reason)
                message = state["waiting"].get("message", "")
                messages.append(message)
                states.append(f"{container.get('name')}: {reason}{again}" + (f" ({message})" if message else ""))
            elif "terminated" in state and not container.get("ready"):
                term = state["terminated"]
                states.append(f"{container.get('name')}: terminated {term.get('reason', '')} exit "
                              f"{term.get('exitCode')}{again}")
            elif "running" in state and not container.get("ready"):
                running_unready = True
                states.append(f"{container.get('name')}: running, not ready{again}")
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                messages.append(condition.get("message", ""))
                states.append(f"not scheduled: {condition.get('message', condition.get('reason', ''))}")
        where = f" on {node}" if node else ""
        finding = Finding(namespace, name, f"{phase}, not ready for {_age(age)}{where}",
                          [f"state  {s}" for s in states])
        events = self.pod_events(namespace, name)
        for event in events:
            count = event.get("count") or 1
            times = f" (x{count})" if count > 1 else ""
            finding.lines.append(f"event  {event.get('reason', '')}{times}: {event.get('message', '').strip()}")
            messages.append(event.get("message", ""))
        agent = next((a for a, (key, value) in NODE_AGENTS.items() if labels.get(key) == value), None)
        logs: list[str] = []
        if agent is not None and namespace == ISTIO_NAMESPACE:
            logs = self.logs(namespace, name)
            finding.lines += [f"log    {line}" for line in logs]
        images = [c.get("image", "") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
        finding.hints = self.hints(finding, agent, reasons, " ".join(messages + logs), running_unready, age, images)
        return finding

    def hints(self, finding: Finding, agent: str | None, reasons: set[str], said: str, running_unready: bool,
              age: float, images: Sequence[str] = ()) -> list[str]:
        hints = []
        lowered = said.lower()
        strangers = [i for i in images if self.preloaded is not None and i and i not in self.preloaded]
        if reasons & set(PULL_ERRORS) or "failed to pull image" in lowered:
            if strangers:
                hints.append(f"the pod runs {', '.join(strangers)}, an image the stack did not preload (it loads "
                             f"{len(self.preloaded or ())} images into the nodes, none of them this one): a chart or "
                             "value renders another image than the stack derives. Check the hub and tag the "
                             "charts at istio.repository render (helm template), then make up again")
            elif "toomanyrequests" in lowered or "rate limit" in lowered:
                hints.append("Docker Hub's anonymous pull limit (10 an hour per IP address): the nodes pulled "
                             "themselves. Fix: docker login, set cluster.preloadImages true, and run make up again")
            elif "not found" in lowered or "manifest unknown" in lowered:
                hints.append("the image does not exist: check istio.version and app.bookinfoTag in the stack file")
            else:
                hints.append("the node could not pull its image (network or registry). Fix: make up again "
                             "(cluster.preloadImages pulls on this machine instead)")
        if agent == "ztunnel" and running_unready and age >= ZTUNNEL_FLAKE_SECONDS:
            hints.append("a ztunnel that never turns ready: the known flake istio/istio#61374 (its readiness "
                         f"never passes; a new pod almost always does). Fix: {self.k} delete pod -n "
                         f"{finding.namespace} {finding.pod}, then make up again")
        if "no ztunnel connection" in lowered:
            hints.append(f"istio-cni cannot reach ztunnel on this node: see the ztunnel pod of the node "
                         f"({self.k} get pods -n {ISTIO_NAMESPACE} -l app=ztunnel -o wide)")
        if "insufficient cpu" in lowered or "insufficient memory" in lowered:
            hints.append("the nodes are out of CPU or memory: Docker has too little for this stack. Fix: make "
                         "doctor (it says how much), then raise Docker's CPUs/memory")
        if "too many open files" in lowered:
            hints.append("inotify limits too low for kind. Fix: sudo sysctl fs.inotify.max_user_watches=524288 "
                         "fs.inotify.max_user_instances=512")
        if "CrashLoopBackOff" in reasons:
            hints.append(f"it keeps crashing: {self.k} logs -n {finding.namespace} {finding.pod} --previous")
        return hints


def diagnose(runner: Runner, out: TextIO, context: str | None = None, kubeconfig: str | None = None,
             cluster: str | None = None, now: datetime | None = None,
             preloaded: frozenset[str] | None = None) -> int:
    """Print what is not ready and why; 0 when every pod is ready, 1 when something is not, 2 when the cluster does
    not answer."""
    kubectl = Kubectl(runner, kubeconfig, context)
    where = context or "kubectl's current context"
    try:
        listed = kubectl("get", "pods", "--all-namespaces", "-o", "json")
    except ClusterUnreachable as error:
        listed = Result((), 1, "", str(error))
    if listed.returncode != 0:
        said = (listed.stderr or listed.stdout).strip().splitlines()
        print(f"diagnose: the cluster ({where}) does not answer: {said[0] if said else 'no output'}", file=out)
        if cluster is not None:
            clusters = runner.run(["kind", "get", "clusters"], timeout=30)
            if clusters.returncode == 0 and cluster not in clusters.stdout.split():
                print(f"  hint   there is no kind cluster named {cluster}: make up creates it", file=out)
            elif clusters.returncode != 0:
                print("  hint   kind does not answer either: is Docker running? (make doctor)", file=out)
        return 2
    try:
        pods = json.loads(listed.stdout).get("items") or []
    except ValueError:
        pods = []
    diagnosis = Diagnosis(kubectl, context, now or datetime.now(UTC), preloaded)
    unready = [p for p in pods if not is_ready(p)]
    if not unready:
        print(f"diagnose: every pod is ready ({len(pods)} pods, {where})", file=out)
        return 0
    print(f"diagnose: {len(unready)} of {len(pods)} pods are not ready ({where})", file=out)
    for pod in unready:
        finding = diagnosis.examine(pod)
        print(f"{finding.namespace}/{finding.pod}  {finding.summary}", file=out)
        for line in finding.lines:
            print(f"  {line}", file=out)
        for hint in finding.hints:
            print(f"  hint   {hint}", file=out)
    print("More: README, Troubleshooting. Everything Pulumi created stays; make up again resumes.", file=out)
    return 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.diagnose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="read the cluster from Pulumi.<stack>.yaml (needs the project's PyYAML)")
    parser.add_argument("--context", help="kubeconfig context (default: the stack's, else kubectl's current)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: the stack's, else kubectl's)")
    return parser.parse_args(argv)


def stack_cluster(stack: str) -> tuple[str | None, str | None, str | None, frozenset[str] | None]:
    """(context, kubeconfig, kind cluster name, preloaded images or None) of a stack file, through the model."""
    from pathlib import Path

    from components.model.config import read_stack_file
    from components.model.images import images
    from components.model.topology import kube_context
    from components.model.validate import parse_config

    config = parse_config(read_stack_file(Path(__file__).resolve().parent.parent / f"Pulumi.{stack}.yaml"))
    cluster = config.cluster
    preloaded = frozenset(images(config)) if cluster.preload_images else None
    return (kube_context(cluster), cluster.kubeconfig, cluster.name if cluster.provider == "kind" else None,
            preloaded)


def main(argv: Sequence[str] | None = None, runner: Runner | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out if out is not None else sys.stdout
    runner = runner or SystemRunner()
    context, kubeconfig, cluster, preloaded = args.context, args.kubeconfig, None, None
    if args.stack:
        try:
            found = stack_cluster(args.stack)
        except (ImportError, OSError, ValueError) as error:
            print(f"diagnose: could not read Pulumi.{args.stack}.yaml ({error}); using kubectl's context", file=out)
        else:
            context, kubeconfig, cluster, preloaded = context or found[0], kubeconfig or found[1], found[2], found[3]
    # The stack's own kubeconfig (its output), as verify reads it: kind's context in kubectl's default kubeconfig
    # may be gone (another KUBECONFIG, a cleaned ~/.kube/config) while the cluster runs.
    outputs = stack_outputs(runner, args.stack) if args.stack and not args.kubeconfig else None
    if outputs and outputs.get("kubeconfig"):
        with kubeconfig_file(outputs["kubeconfig"]) as path:
            return diagnose(runner, out, context, path, cluster, preloaded=preloaded)
    return diagnose(runner, out, context, kubeconfig, cluster, preloaded=preloaded)


if __name__ == "__main__":
    raise SystemExit(main())
