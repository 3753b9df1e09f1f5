"""The kind tier, second stack: Istio's ambient Getting Started (`Pulumi.getting-started.yaml`, its add-ons on) on a
real kind cluster, through the project's own make targets: `make up`, the add-ons Ready, a real `make dashboard`
session on each add-on, `make verify`, `make destroy`.

Prometheus and its config reloader are real images built from their Go modules; Kiali and Grafana, whose modules
are not served here, and ztunnel and proxyv2 are named readiness-only stand-ins: what they cannot show skips naming
them (tests/kind/tier.py reads each image's ambient-mesh.standin label).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from components.model import addons as addon_model
from components.model import catalog
from tests.kind import tier
from tools.dashboard import DASHBOARDS, free

pytestmark = pytest.mark.kind

STACK_FILE = tier.REPO / "Pulumi.getting-started.yaml"
STANDIN_HEADER = "X-Ambient-Mesh-Standin"


@pytest.fixture(scope="module")
def gs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tier.prepared(tmp_path_factory, STACK_FILE, "getting-started")
    work = state["work"]
    try:
        started = time.monotonic()
        state["up"] = work.make("up", timeout=tier.UP_TIMEOUT, check=False)
        state["up_seconds"] = time.monotonic() - started
        print(f"kind tier (getting-started): first make up {state['up_seconds']:.0f} s")
        yield state
    finally:
        tier.tear_down(work)


@pytest.fixture(scope="module")
def up(gs: dict[str, Any]) -> dict[str, Any]:
    done = gs["up"]
    assert done.returncode == 0, f"make up failed:\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
    return gs


def addon_deployments(config: Any) -> dict[str, tuple[str, ...]]:
    """Each add-on Deployment the stack runs (name -> its images), from the add-on files the stack reads."""
    return {name: images for _, name, images, _ in addon_model.workloads(addon_model.addon_objects(config))}


def test_up_ends_in_the_smoke_check_and_every_addon_is_ready(up: dict[str, Any]) -> None:
    work, config = up["work"], up["config"]
    smoke = [r for r in work.resources()
             if r["type"] == "command:local:Command" and r["urn"].endswith("::smoke-verify")]
    assert smoke and "verify: OK" in smoke[0]["outputs"]["stdout"], smoke
    deployments = addon_deployments(config)
    assert set(deployments) == set(config.observability.addons)
    for name in deployments:
        status = work.kubectl_json("get", "deployment", name, "-n", catalog.ISTIO_NAMESPACE)["status"]
        assert status.get("readyReplicas") == status.get("replicas") == 1, (name, status)


class Dashboard:
    """`make dashboard ADDON=<addon>` in the work copy, as a user runs it: the URL it prints, until Ctrl-C."""

    def __init__(self, work: tier.WorkCopy, addon: str) -> None:
        self.process = subprocess.Popen(["make", "dashboard", f"ADDON={addon}"], cwd=work.root, env=work.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        assert self.process.stdout is not None
        self.printed: list[str] = []
        self.url = ""
        for line in self.process.stdout:
            self.printed.append(line)
            found = re.search(r"dashboard: \w+ at (http://127\.0\.0\.1:\d+)(\S*)", line)
            if found:
                self.url, self.page = found.group(1), found.group(2)
                break
        assert self.url, "".join(self.printed)

    def get(self, path: str, timeout: float = 90) -> tuple[int, dict[str, str], str]:
        """GET through the forward, retried while kubectl has not bound the port yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310 - 127.0.0.1
                    return response.status, dict(response.headers), response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, dict(error.headers), error.read().decode()
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(1)

    def stop(self) -> int:
        """Ctrl-C, as a terminal sends it to the whole foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.stdout:
                self.printed += self.process.stdout.readlines()


def test_prometheus_through_make_dashboard_is_real_and_scrapes_the_cluster(up: dict[str, Any]) -> None:
    """A real Prometheus: its build info names the version its add-on file pins, it found the cluster's pods
    through the Kubernetes API (its ClusterRole at work), and its scrape of istiod succeeds."""
    work, config, standins = up["work"], up["config"], up["standins"]
    [image] = [i for i in addon_deployments(config)["prometheus"] if "/prometheus:" in i]
    if image in standins:
        pytest.skip(f"{image} is a stand-in: {standins[image]}")
    ztunnel_standin = next((f"{i} ({why})" for i, why in standins.items() if "/ztunnel:" in i), "")
    dashboard = Dashboard(work, "prometheus")
    try:
        status, _, body = dashboard.get("/api/v1/status/buildinfo")
        assert status == 200, body
        buildinfo = json.loads(body)["data"]
        assert buildinfo["version"] == image.rsplit(":v", 1)[1]
        deadline = time.monotonic() + 120
        while True:
            _, _, body = dashboard.get("/api/v1/targets?state=active")
            targets = json.loads(body)["data"]["activeTargets"]
            health = {t["labels"].get("pod", ""): t["health"] for t in targets}
            # Found through the Kubernetes API (the add-on's ClusterRole), scraped over the pod network: istiod is
            # real, so its scrape is up; so is a real ztunnel's (the mTLS metric's source). A stand-in ztunnel
            # serves no metrics: only its discovery is checked, and the line below names it.
            if any(p.startswith("ztunnel-") and (h == "up" or ztunnel_standin) for p, h in health.items()) and \
                    any(p.startswith("istiod-") and h == "up" for p, h in health.items()):
                break
            assert time.monotonic() < deadline, json.dumps(targets, indent=1)[-4000:]
            time.sleep(5)
        # The session as a user sees it (README quotes it): what make dashboard printed, then what the forward served.
        by_job: dict[str, list[str]] = {}
        for target in targets:
            by_job.setdefault(target["labels"].get("job", "?"), []).append(
                f"{target['labels'].get('pod') or target['labels'].get('instance', '?')} {target['health']}")
        print("kind tier (getting-started), make dashboard ADDON=prometheus:\n" + "".join(dashboard.printed).rstrip()
              + f"\nGET {dashboard.url.rstrip('/')}/api/v1/status/buildinfo: version {buildinfo['version']}, branch "
              f"{buildinfo.get('branch', '?')}\nGET /api/v1/targets?state=active: {len(targets)} active, "
              f"{sum(1 for t in targets if t['health'] == 'up')} up\n"
              + "\n".join(f"  {job}: {', '.join(sorted(found))}" for job, found in sorted(by_job.items()))
              + (f"\n  ztunnel's scrape not checked, a stand-in: {ztunnel_standin}" if ztunnel_standin else ""))
    finally:
        dashboard.stop()
    # Ctrl-C ends make itself with "Interrupt" (exit 2), as in a terminal; the tool ends cleanly, the port is free.
    assert "Traceback" not in "".join(dashboard.printed), "".join(dashboard.printed)
    assert free(int(dashboard.url.rsplit(":", 1)[1])), "the forward outlived Ctrl-C"


@pytest.mark.parametrize("addon", ["kiali", "grafana"])
def test_make_dashboard_reaches_the_addons_pod(up: dict[str, Any], addon: str) -> None:
    """The forward reaches the add-on's own pod: its page answers (a stand-in says so in a header and skips)."""
    work, config, standins = up["work"], up["config"], up["standins"]
    [image] = addon_deployments(config)[addon]
    dashboard = Dashboard(work, addon)
    try:
        status, headers, body = dashboard.get(DASHBOARDS[addon][1])
    finally:
        dashboard.stop()
    assert "Traceback" not in "".join(dashboard.printed), "".join(dashboard.printed)
    if image in standins:
        # The label says "readiness-only stand-in: <why>"; the stand-in's header, "<role>: <why>".
        assert standins[image].split(": ", 1)[1] in headers.get(STANDIN_HEADER, ""), (headers, body)
        pytest.skip(f"the forward reached {addon}'s pod, a stand-in: {image} ({standins[image]})")
    assert status == 200, (status, body[:2000])


def test_verify_runs_the_guides_checks(up: dict[str, Any]) -> None:
    work, gaps = up["work"], up["gaps"]
    report = work.root / "verify.json"
    done = work.make("verify", f"VERIFY_ARGS=--json {report}", check=False, timeout=900)
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-6000:]
    checks = {c["name"]: c for c in json.loads(report.read_text(encoding="utf-8"))["checks"]}
    # The guide's own: the 90/10 split, the RBAC denials, exit 56, the mTLS metric — each run, or skipped naming
    # the images.
    hints = work.outputs()["verify"]
    expected = {f"split:{s}" for s in hints.get("splits", {})} | {f"l7-denied:{d}" for d in hints["l7Denied"]} \
        | {f"l4-denied:{c}:pod-ip" for c in hints["l4Denied"]} \
        | ({"metrics:mtls"} if "prometheus" in hints["addons"] else set())
    assert expected and expected <= set(checks), sorted(checks)
    for name in expected:
        if gaps:
            assert checks[name]["status"] == "skip" and gaps in checks[name]["summary"], checks[name]
        else:
            assert checks[name]["status"] == "pass", checks[name]


def test_destroy_leaves_nothing_behind(up: dict[str, Any]) -> None:
    work = up["work"]
    work.make("destroy", timeout=900)
    assert not tier.docker("ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={tier.CLUSTER_NAME}").stdout.strip()
    assert f"kind-{tier.CLUSTER_NAME}" not in tier.kubeconfig_names(work)
    assert not work.outputs()
