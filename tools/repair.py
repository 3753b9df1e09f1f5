"""A laptop's second day: what became of the stack's kind cluster since its last update, and the repair, before
`make up`, `make preview` and `make destroy` run Pulumi — and, after `make up`, whether the cluster answers.

    python -m tools.repair --stack dev up         # repairs; prints the arguments `pulumi up` needs (--replace=...)
    python -m tools.repair --stack dev preview    # starts stopped nodes only; prints what `pulumi preview` needs
    python -m tools.repair --stack dev destroy    # repairs what `pulumi destroy` cannot get through
    python -m tools.repair --stack dev answers    # fails unless the stack's cluster (kind or existing) answers

It reads the stack's state (`pulumi stack export`: the kind cluster's command, which names the cluster and its nodes)
and Docker (the node containers kind labels with the cluster's name), and finds one of:
- running: every node runs; it waits for the API server (Docker restarted: the nodes come back, kubelet follows).
  For `destroy`, an API server that never answers is no way out: `kind delete cluster`, then as gone.
- stopped: every node is there, some stopped (Docker restarted without them): `docker start`, then as running
  (`preview` too, so that it compares against a live cluster).
- gone: no node is left (`kind delete cluster`, Docker reset or its data wiped): `pulumi refresh` with the kubernetes
  provider's deleteUnreachable, so the state forgets the objects that went with the cluster (commands have no read
  and stay); `up` then replaces the cluster's command, and everything in the cluster is created again.
- broken: some nodes are missing (removed by hand; kind cannot add one to a cluster): `kind delete cluster` of the
  stack's own cluster, then as gone.
No kind cluster in the state (`cluster.provider: existing`): `answers` asks /readyz through the stack's own
kubeconfig output and context, as verify reads them. Pulumi's own commands do all of it; the state is never edited
by hand. Messages go to stderr; stdout carries only the
arguments for Pulumi, one a line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from tools import doctor
from tools.doctor import Result
from tools.verify import cli as verify_cli
from tools.verify import runner as verify_runner

CLUSTER_URN_SUFFIX = "::cluster-kind"
KIND_LABEL = "io.x-k8s.kind.cluster"
# The kubernetes provider forgets, instead of failing on, an object whose cluster does not answer.
DELETE_UNREACHABLE = {"PULUMI_K8S_DELETE_UNREACHABLE": "true"}
READY_SECONDS = 180
MODES = ("up", "preview", "destroy", "answers")


class Host(doctor.Host):
    """doctor's machine, with an environment for a command and a clock; tests replace it."""

    def run_env(self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 600.0) -> Result:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                                  env={**os.environ, **env})
        except FileNotFoundError:
            return Result(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Result(124, "", f"{argv[0]}: no answer in {timeout:.0f} s")
        return Result(done.returncode, done.stdout, done.stderr)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> float:
        return time.monotonic()


class AsVerifyRunner:
    """The repair's host as verify's Runner: verify's own way to read the stack's outputs and to call kubectl."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> verify_runner.Result:
        done = self.host.run(argv, timeout=timeout)
        return verify_runner.Result(tuple(argv), done.returncode, done.stdout, done.stderr)

    def http_get(self, url: str, timeout: float = 10.0) -> verify_runner.HttpResult:
        raise NotImplementedError("the repair asks no HTTP")

    def sleep(self, seconds: float) -> None:
        self.host.sleep(seconds)


@dataclass(frozen=True)
class Recorded:
    """The kind cluster the state holds: its command's URN, the cluster's name and its node containers."""

    urn: str
    name: str
    nodes: tuple[str, ...]


def node_names(name: str, kind_config: str) -> tuple[str, ...]:
    """kind's container names for the nodes of its config: `<name>-control-plane[N]`, `<name>-worker[N]`."""
    import yaml  # from .venv, as the model's

    roles = [node.get("role", "control-plane") for node in (yaml.safe_load(kind_config) or {}).get("nodes") or [{}]]
    names = []
    for role in ("control-plane", "worker"):
        count = roles.count(role)
        names += [f"{name}-{role}{index if index > 1 else ''}" for index in range(1, count + 1)]
    return tuple(names)


def recorded_cluster(exported: Mapping[str, Any]) -> Recorded | None:
    """The state's kind cluster (from `pulumi stack export`), None when it holds none."""
    for resource in (exported.get("deployment") or {}).get("resources") or []:
        urn = str(resource.get("urn", ""))
        if urn.endswith(CLUSTER_URN_SUFFIX) and not resource.get("delete"):
            inputs = resource.get("inputs") or {}
            name = str((inputs.get("environment") or {}).get("CLUSTER_NAME") or "")
            if name:
                return Recorded(urn, name, node_names(name, str(inputs.get("stdin") or "")))
    return None


@dataclass(frozen=True)
class Finding:
    state: str  # none, running, stopped, gone, broken
    recorded: Recorded | None = None
    stopped: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def assess(recorded: Recorded | None, containers: Mapping[str, str]) -> Finding:
    """What became of the recorded cluster, from its node containers (name -> Docker's state: running, exited...)."""
    if recorded is None:
        return Finding("none")
    missing = tuple(n for n in recorded.nodes if n not in containers)
    if len(missing) == len(recorded.nodes):
        return Finding("gone", recorded, missing=missing)
    if missing:
        return Finding("broken", recorded, missing=missing)
    stopped = tuple(n for n in recorded.nodes if containers[n] != "running")
    return Finding("stopped" if stopped else "running", recorded, stopped=stopped)


class Failed(Exception):
    """A repair that cannot go on: one line, the cause and the fix."""


@dataclass
class Repair:
    stack: str
    host: Host
    say: Any = field(default_factory=lambda: lambda line: print(f"repair: {line}", file=sys.stderr))

    # --- what is there ----------------------------------------------------------------------------------------

    def exported(self) -> dict[str, Any] | None:
        """The stack's state; None when the stack does not exist yet."""
        done = self.host.run(["pulumi", "stack", "export", "--stack", self.stack], timeout=60)
        if done.returncode != 0:
            if "no stack named" in (done.stderr + done.stdout).lower():
                return None
            raise Failed(f"`pulumi stack export --stack {self.stack}` failed ({doctor._first_line(done.stderr)})")
        try:
            return dict(json.loads(done.stdout))
        except ValueError as error:
            raise Failed(f"`pulumi stack export` gave no JSON ({error})") from error

    def containers(self, cluster: str) -> dict[str, str]:
        done = self.host.run(["docker", "ps", "--all", "--filter", f"label={KIND_LABEL}={cluster}",
                              "--format", "{{.Names}}\t{{.State}}"])
        if done.returncode != 0:
            raise Failed(f"Docker does not answer ({doctor._first_line(done.stderr) or 'no answer'}): start it, "
                         "then run the command again")
        return dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)

    def find(self) -> Finding:
        exported = self.exported()
        recorded = recorded_cluster(exported) if exported else None
        return assess(recorded, self.containers(recorded.name) if recorded else {})

    # --- what it does -----------------------------------------------------------------------------------------

    def wait_ready(self, finding: Finding, seconds: float = READY_SECONDS) -> float | None:
        """Until the API server of the cluster's control plane answers /readyz, for at most `seconds`; None once it
        answers, else the seconds it waited."""
        assert finding.recorded is not None
        control_plane = finding.recorded.nodes[0]
        started = self.host.now()
        while True:
            done = self.host.run(["docker", "exec", control_plane, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf",
                                  "get", "--raw=/readyz"], timeout=30)
            if done.returncode == 0 and done.stdout.strip() == "ok":
                return None
            if self.host.now() - started >= seconds:
                return self.host.now() - started
            self.host.sleep(3)

    def answers_through_the_stacks_kubeconfig(self) -> None:
        """A cluster the state records no kind cluster for (`cluster.provider: existing`): /readyz through the
        stack's own kubeconfig output and context, read as verify reads them."""
        runner = AsVerifyRunner(self.host)
        outputs = verify_cli.stack_outputs(runner, self.stack)
        if outputs is None:
            raise Failed(f"`pulumi stack output --stack {self.stack}` failed: export the stack's "
                         "PULUMI_CONFIG_PASSPHRASE, then run make up again")
        if not outputs:
            raise Failed(f"the stack {self.stack} has no outputs after the update (no deployed mesh): run make up")
        settings, content = verify_cli.build_settings(verify_cli.parse_args(["--stack", self.stack]), outputs)
        where = f"context {settings.context}" if settings.context else "kubectl's current context"
        cluster = outputs.get("clusterName") or "of the stack"
        with verify_cli.kubeconfig_file(content) if content else nullcontext(None) as path:
            try:
                done = verify_runner.Kubectl(runner, path, settings.context)("get", "--raw=/readyz", timeout=30)
                said = doctor._first_line(done.stderr or done.stdout)
            except verify_runner.ClusterUnreachable as error:
                done, said = None, str(error)
        if done is None or done.returncode != 0 or done.stdout.strip() != "ok":
            raise Failed(f"the cluster {cluster} ({where}) does not answer through the stack's kubeconfig "
                         f"({said or 'no answer'}): start it, or point cluster.kubeconfig/cluster.context at a "
                         "running cluster, then run make up")

    def forget_what_went_with_the_cluster(self) -> None:
        self.say("pulumi refresh with deleteUnreachable: the state forgets the objects that were in the cluster")
        done = self.host.run_env(["pulumi", "refresh", "--yes", "--skip-preview", "--stack", self.stack],
                                 DELETE_UNREACHABLE)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise Failed(f"`pulumi refresh` failed (exit {done.returncode}):\n{tail}")

    def delete_cluster(self, name: str) -> None:
        done = self.host.run(["kind", "delete", "cluster", "--name", name], timeout=300)
        if done.returncode != 0:
            raise Failed(f"`kind delete cluster --name {name}` failed ({doctor._first_line(done.stderr)})")

    def run(self, mode: str) -> list[str]:
        """Repairs for `mode`; returns the arguments Pulumi's command needs."""
        finding = self.find()
        recorded = finding.recorded
        if recorded is None:  # no kind cluster: not made yet, destroyed, or an existing cluster (not this tool's)
            if mode == "answers":
                self.answers_through_the_stacks_kubeconfig()
            return []
        name = recorded.name
        if finding.state == "broken":
            self.say(f"the kind cluster {name} this stack created lost node(s) {', '.join(finding.missing)} "
                     "(removed outside the stack; kind cannot add a node to a cluster)")
            if mode == "preview":
                self.say("make up deletes it and creates it again, with everything in it")
                return ["--refresh", f"--replace={recorded.urn}"]
            if mode == "answers":
                raise Failed(f"the kind cluster {name} lost node(s) {', '.join(finding.missing)}: run make up")
            self.say(f"deleting what is left of it (kind delete cluster --name {name})")
            self.delete_cluster(name)
            finding = Finding("gone", recorded, missing=recorded.nodes)
        if finding.state == "gone":
            if mode == "answers":
                raise Failed(f"the kind cluster {name} does not exist: run make up")
            if finding.missing == recorded.nodes and mode != "destroy":
                self.say(f"the kind cluster {name} this stack created is gone (no node container is left)")
            return self.gone(recorded, mode)
        if finding.state == "stopped":
            # Preview too: it then compares against the live cluster that make up would find.
            self.say(f"the kind cluster {name}'s node(s) {', '.join(finding.stopped)} are stopped (Docker restarted "
                     "without them): starting them")
            done = self.host.run(["docker", "start", *finding.stopped], timeout=120)
            if done.returncode != 0:
                raise Failed(f"`docker start {' '.join(finding.stopped)}` failed ({doctor._first_line(done.stderr)})")
        waited = self.wait_ready(finding, READY_SECONDS)
        if waited is None:
            return []
        if mode == "destroy":
            # Pulumi cannot delete through a silent API server, and the destroy would delete the cluster anyway.
            self.say(f"the API server of the kind cluster {name} does not answer within {waited:.0f} s: deleting the "
                     f"cluster (kind delete cluster --name {name}), then the destroy goes on as with a cluster gone")
            self.delete_cluster(name)
            return self.gone(recorded, mode)
        raise Failed(f"the API server of the kind cluster {name} does not answer within {waited:.0f} s: "
                     "make diagnose says why; make destroy (it deletes a cluster that does not answer) && make up "
                     "makes the cluster anew")

    def gone(self, recorded: Recorded, mode: str) -> list[str]:
        """The recorded cluster has no node left: the state forgets what went with it; up replaces it."""
        name = recorded.name
        if mode == "preview":
            self.say("make up creates it again, with everything in it")
            return ["--refresh", f"--replace={recorded.urn}"]
        self.forget_what_went_with_the_cluster()
        if mode == "destroy":
            self.say(f"the kind cluster {name} is already gone: the destroy deletes what is left in the state")
            return []
        self.say(f"creating the kind cluster {name} again, and everything in it")
        return [f"--replace={recorded.urn}"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.repair", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--stack", default="dev")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, host: Host | None = None, out: Any = None) -> int:
    args = parse_args(argv)
    repair = Repair(args.stack, host or Host())
    try:
        extra = repair.run(args.mode)
    except Failed as failure:
        repair.say(str(failure))
        return 1
    for line in extra:
        print(line, file=out if out is not None else sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
