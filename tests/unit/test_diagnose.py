"""`make diagnose` (tools/diagnose.py) against a fake cluster: what is not ready, why, and what to do."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.model import images
from tests.conftest import REPO, base_config
from tests.fake_make import fake_make
from tools import diagnose
from tools.verify.runner import HttpResult, Result

NOW = datetime(2026, 10, 10, 1, 10, 0, tzinfo=UTC)


def pod(namespace: str, name: str, *, ready: bool = True, labels: dict[str, str] | None = None, node: str = "w1",
        started: str = "2026-10-10T01:00:00Z", containers: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels or {}},
        "spec": {"nodeName": node},
        "status": {"phase": phase, "startTime": started,
                   "conditions": (conditions or []) + [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": containers or []},
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"name": "main", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason,
                                                                                    "message": message}}}


def event(name: str, reason: str, message: str, count: int = 1) -> dict[str, Any]:
    return {"involvedObject": {"name": name}, "type": "Warning", "reason": reason, "message": message,
            "count": count, "lastTimestamp": "2026-10-10T01:05:00Z"}


@dataclass
class FakeCluster:
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    down: bool = False
    clusters: str = "ambient\n"
    ran: list[list[str]] = field(default_factory=list)
    outputs: dict[str, Any] | None = None  # `pulumi stack output`; None: no stack
    kubeconfigs: list[str] = field(default_factory=list)  # what each --kubeconfig file held when kubectl ran

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result:
        argv = list(argv)
        self.ran.append(argv)
        if argv[:3] == ["kind", "get", "clusters"]:
            return Result(tuple(argv), 0, self.clusters)
        if argv[:3] == ["pulumi", "stack", "output"]:
            if self.outputs is None:
                return Result(tuple(argv), 255, "", "error: no stack named 'dev' found")
            return Result(tuple(argv), 0, json.dumps(self.outputs))
        args = argv[1:]
        while args[0] in ("--context", "--kubeconfig"):
            if args[0] == "--kubeconfig":
                self.kubeconfigs.append(Path(args[1]).read_text(encoding="utf-8"))
            args = args[2:]
        if self.down:
            return Result(tuple(argv), 1, "", "The connection to the server 127.0.0.1:41234 was refused")
        if args[:2] == ["get", "pods"]:
            return Result(tuple(argv), 0, json.dumps({"items": self.pods}))
        if args[:2] == ["get", "events"]:
            return Result(tuple(argv), 0, json.dumps({"items": self.events.get(args[3], [])}))
        if args[0] == "logs":
            return Result(tuple(argv), 0, self.logs.get(args[3], ""))
        raise AssertionError(argv)

    def http_get(self, url: str, timeout: float = 10.0) -> HttpResult:
        raise AssertionError(url)

    def sleep(self, seconds: float) -> None:
        raise AssertionError(seconds)


def run(cluster: FakeCluster) -> tuple[int, str]:
    out = io.StringIO()
    code = diagnose.diagnose(cluster, out, context="kind-ambient", cluster="ambient", now=NOW)
    return code, out.getvalue()


def test_all_ready() -> None:
    code, text = run(FakeCluster(pods=[pod("default", "sleep-1"), pod("kube-system", "job", ready=False,
                                                                         phase="Succeeded")]))
    assert code == 0 and text == "diagnose: every pod is ready (2 pods, kind-ambient)\n"


def test_image_pull_rate_limit() -> None:
    message = ('failed to pull and unpack image "docker.io/istio/examples-bookinfo-reviews-v1:1.20.3": 429 Too Many '
               "Requests - Server message: toomanyrequests: You have reached your unauthenticated pull rate limit")
    cluster = FakeCluster(pods=[pod("default", "reviews-v1-x", ready=False, phase="Pending",
                                    containers=[waiting("ImagePullBackOff", "Back-off pulling image")])],
                          events={"default": [event("reviews-v1-x", "Failed", message, 4)]})
    code, text = run(cluster)
    assert code == 1
    assert "diagnose: 1 of 1 pods are not ready (kind-ambient)" in text
    assert "default/reviews-v1-x  Pending, not ready for 10m on w1" in text
    assert "  state  main: ImagePullBackOff (Back-off pulling image)" in text
    assert "  event  Failed (x4): failed to pull and unpack image" in text
    assert "hint   Docker Hub's anonymous pull limit" in text and "docker login" in text


def test_missing_image() -> None:
    cluster = FakeCluster(pods=[pod("default", "details-v1-x", ready=False, phase="Pending",
                                    containers=[waiting("ErrImagePull", "manifest unknown: manifest unknown")])])
    assert "the image does not exist" in run(cluster)[1]


def test_a_pull_of_an_image_the_stack_did_not_preload_names_it() -> None:
    """A chart rendering its own default image (the istio.io/istio module's development hub) instead of the one the
    stack preloaded: the hint names that image, not a pull to retry."""
    preloaded = frozenset(images.images(base_config()))
    stranger = "registry.istio.io/testing/pilot:latest-distroless"
    istiod = pod("istio-system", "istiod-x", ready=False, phase="Pending",
                 containers=[waiting("ImagePullBackOff", f'Back-off pulling image "{stranger}"')])
    istiod["spec"]["containers"] = [{"name": "discovery", "image": stranger}]
    out = io.StringIO()
    diagnose.diagnose(FakeCluster(pods=[istiod]), out, context="kind-ambient", cluster="ambient", now=NOW,
                      preloaded=preloaded)
    text = out.getvalue()
    assert f"hint   the pod runs {stranger}, an image the stack did not preload" in text
    assert "make up again (cluster.preloadImages" not in text
    # The same pod running a preloaded image gets the ordinary pull hint.
    istiod["spec"]["containers"] = [{"name": "discovery", "image": sorted(preloaded)[0]}]
    out = io.StringIO()
    diagnose.diagnose(FakeCluster(pods=[istiod]), out, context="kind-ambient", cluster="ambient", now=NOW,
                      preloaded=preloaded)
    assert "did not preload" not in out.getvalue() and "could not pull its image" in out.getvalue()


def test_ztunnel_readiness_flake_shows_its_logs_and_the_fix() -> None:
    ztunnel = pod("istio-system", "ztunnel-abcde", ready=False, labels={"app": "ztunnel"},
                  containers=[{"name": "istio-proxy", "ready": False, "restartCount": 0, "state": {"running": {}}}])
    cluster = FakeCluster(pods=[ztunnel], events={"istio-system": [event(
        "ztunnel-abcde", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500", 30)]},
        logs={"ztunnel-abcde": "line 1\nline 2\n"})
    code, text = run(cluster)
    assert "  state  istio-proxy: running, not ready" in text
    assert "  log    line 1\n  log    line 2\n" in text
    assert ("hint   a ztunnel that never turns ready: the known flake istio/istio#61374" in text
            and "kubectl --context kind-ambient delete pod -n istio-system ztunnel-abcde" in text)
    [logs] = [argv for argv in cluster.ran if "logs" in argv]
    assert logs == ["kubectl", "--context", "kind-ambient", "logs", "-n", "istio-system", "ztunnel-abcde",
                    "--all-containers", "--tail=15"]
    young = FakeCluster(pods=[{**ztunnel, "status": {**ztunnel["status"], "startTime": "2026-10-10T01:09:30Z"}}])
    assert "istio/istio#61374" not in run(young)[1]  # 30 s: still starting


def test_istio_cni_logs_and_sandbox_errors() -> None:
    cni = pod("istio-system", "istio-cni-node-x", ready=False, labels={"k8s-app": "istio-cni-node"},
              containers=[waiting("CrashLoopBackOff")])
    app = pod("default", "productpage-v1-x", ready=False, phase="Pending",
              containers=[waiting("ContainerCreating")])
    sandbox = ('Failed to create pod sandbox: plugin type="istio-cni" failed (add): unable to push CNI event '
               "(status code 500): partial add error: no ztunnel connection")
    cluster = FakeCluster(pods=[cni, app], events={"default": [event("productpage-v1-x", "FailedCreatePodSandBox",
                                                                       sandbox)]},
                          logs={"istio-cni-node-x": "error: too many open files\n"})
    code, text = run(cluster)
    assert "  log    error: too many open files" in text
    assert "sudo sysctl fs.inotify.max_user_watches=524288" in text
    assert "logs -n istio-system istio-cni-node-x --previous" in text
    assert "istio-cni cannot reach ztunnel on this node" in text


def test_unschedulable_for_lack_of_memory() -> None:
    cluster = FakeCluster(pods=[pod("istio-system", "istiod-x", ready=False, phase="Pending", node="", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient memory."}])])
    text = run(cluster)[1]
    assert "istio-system/istiod-x  Pending, not ready for 10m\n" in text
    assert "not scheduled: 0/3 nodes are available: 3 Insufficient memory." in text
    assert "make doctor" in text


def test_a_cluster_that_does_not_answer() -> None:
    code, text = run(FakeCluster(down=True, clusters="other\n"))
    assert code == 2
    assert "diagnose: the cluster (kind-ambient) does not answer: The connection to the server" in text
    assert "there is no kind cluster named ambient: make up creates it" in text


def test_the_stack_file_names_the_cluster() -> None:
    out = io.StringIO()
    cluster = FakeCluster()  # no stack in the backend yet: kind's context in kubectl's kubeconfig
    assert diagnose.main(["--stack", "dev"], cluster, out) == 0
    kubectl = [argv for argv in cluster.ran if argv[0] == "kubectl"]
    assert kubectl[0][:3] == ["kubectl", "--context", "kind-ambient"]


def test_the_stacks_own_kubeconfig_is_read_when_the_stack_has_one() -> None:
    """Another KUBECONFIG, or a cleaned ~/.kube/config, lacks kind's context: the stack's output has it."""
    out = io.StringIO()
    cluster = FakeCluster(outputs={"kubeconfig": "apiVersion: v1\nkind: Config\n# the stack's own\n"})
    assert diagnose.main(["--stack", "dev"], cluster, out) == 0
    kubectl = [argv for argv in cluster.ran if argv[0] == "kubectl"]
    assert kubectl[0][1] == "--kubeconfig" and kubectl[0][3:5] == ["--context", "kind-ambient"]
    assert cluster.kubeconfigs == ["apiVersion: v1\nkind: Config\n# the stack's own\n"]
    assert not Path(kubectl[0][2]).exists()  # the temporary file is gone afterwards


def test_make_up_runs_diagnose_when_pulumi_up_fails(tmp_path: Path) -> None:
    """The Makefile, with fake executables: no `pulumi login`, the project-local backend unless one is set, the
    preflight before Pulumi, diagnose after a failed `up`."""
    make = fake_make(tmp_path, "PULUMI_BACKEND_URL",
                     python='case "$*" in *tools.doctor*) exit "${DOCTOR_RC:-0}";; esac\n',
                     pulumi='[ "$1" = up ] && exit "${UP_RC:-0}"\nexit 0\n')
    state = tmp_path / "state"
    code, calls = make("up", UP_RC="1")
    backend = f"[PULUMI_BACKEND_URL=file://{state}]"
    assert code != 0 and state.is_dir()
    assert calls == [f"pip install -q -r requirements.txt {backend}", f"python -m tools.doctor --stack dev {backend}",
                     f"pulumi stack select dev --create {backend}", f"python -m tools.repair up --stack dev {backend}",
                     f"pulumi up --yes --stack dev {backend}", f"python -m tools.diagnose --stack dev {backend}"]
    code, calls = make("up")
    # After the update: the stack's cluster must exist and answer, or make up fails.
    assert code == 0 and calls[-2:] == [f"pulumi up --yes --stack dev {backend}",
                                        f"python -m tools.repair answers --stack dev {backend}"]
    code, calls = make("preview", DOCTOR_RC="1")
    assert code != 0 and not [c for c in calls if c.startswith("pulumi")]  # a failed preflight stops before Pulumi
    code, calls = make("preview", PULUMI_BACKEND_URL="s3://team-bucket")
    assert code == 0 and calls[-1] == "pulumi preview --diff --stack dev [PULUMI_BACKEND_URL=s3://team-bucket]"
    # A cluster already gone: the repair lets the destroy finish (tests/unit/test_repair.py); it runs first.
    code, calls = make("destroy")
    assert code == 0 and calls[-2:] == [f"python -m tools.repair destroy --stack dev {backend}",
                                        f"pulumi destroy --yes --stack dev {backend}"]
    recipes = [line for line in (REPO / "Makefile").read_text(encoding="utf-8").splitlines() if line.startswith("\t")]
    assert not [line for line in recipes if "pulumi login" in line]  # it would switch the user's global backend


def test_readme_example_is_what_diagnose_prints() -> None:
    ztunnel = pod("istio-system", "ztunnel-x7k2p", ready=False, labels={"app": "ztunnel"}, node="ambient-worker2",
                  started="2026-10-10T00:59:00Z",
                  containers=[{"name": "istio-proxy", "ready": False, "restartCount": 0, "state": {"running": {}}}])
    others = [pod("default", f"p{i}") for i in range(28)]
    cluster = FakeCluster(pods=[ztunnel, *others], events={"istio-system": [event(
        "ztunnel-x7k2p", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500", 64)]})
    printed = [line for line in run(cluster)[1].splitlines() if not line.startswith("  log")]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = readme.split("```text\ndiagnose: ", 1)[1].split("```", 1)[0]
    assert [line for line in ("diagnose: " + example).splitlines() if not line.startswith("  log")] == printed


def test_make_diagnose_reads_the_stack_file_from_the_venv(tmp_path: Path) -> None:
    venv, log = tmp_path / "venv", tmp_path / "log"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "pip"):
        path = venv / "bin" / name
        path.write_text('#!/bin/sh\necho "$(basename "$0") $*" >> "$LOG"\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    done = subprocess.run(["make", "-s", "diagnose", f"VENV={venv}", "STACK=zero-trust"], cwd=REPO,
                          env={**os.environ, "LOG": str(log)}, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["pip install -q -r requirements.txt",
                                            "python -m tools.diagnose --stack zero-trust"]
