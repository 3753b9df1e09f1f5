"""The kind tier: the dev stack brought up for real, through the project's own make targets, on a real Docker engine
and a real kind cluster (`make test-kind`; tools/testkit/bootstrap-kind.sh builds what it needs offline).

One cluster for the module, in order: a first `make up` from an empty Docker state, what the real system shows,
`make verify`, a no-op second `make up`, `make diagnose` on a healthy and on a broken mesh, the tutorial's tryIt
commands that need no stand-in, and `make destroy` leaving no container, network or kubeconfig entry behind. Checks
that need a real data plane skip, naming the stand-in image, where ztunnel or proxyv2 is one (tests/kind/tier.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from components.model import catalog
from components.model import images as image_model
from components.model.config import PROJECT
from components.model.kind import node_names
from tests.kind import tier
from tools.verify.mesh import HBONE_PORT, TITLE

pytestmark = pytest.mark.kind

UP_TIMEOUT = tier.UP_TIMEOUT
REQUIRED_ENV = tier.REQUIRED_ENV


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    def without_ingress(raw: dict[str, Any]) -> None:
        # A stand-in proxyv2 cannot serve an ingress; a stand-in ztunnel cannot carry the smoke check's requests, so
        # the smoke check (as shipped: on) runs its other checks and skips those, naming the images.
        raw["app"]["ingress"] = "none"

    state = tier.prepared(tmp_path_factory, tier.REPO / "Pulumi.dev.yaml", "dev", without_ingress)
    work, local = state["work"], state["local"]
    try:
        # What is the user's and must outlive every situation below: a context of their kubeconfig, an image of
        # theirs, a kind cluster of theirs.
        tier.make_bystander(work, local, tier.cgroup_v1())
        yield state
    finally:
        tier.tear_down(work)
        tier.remove_bystander(work)


@pytest.fixture(scope="module")
def up(stack: dict[str, Any]) -> dict[str, Any]:
    work = stack["work"]
    assert not tier.docker("ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={tier.CLUSTER_NAME}").stdout.strip()
    started = time.monotonic()
    done = work.make("up", timeout=UP_TIMEOUT, check=False)
    stack["up_seconds"] = time.monotonic() - started
    stack["up_output"] = done.stdout
    print(f"kind tier: first make up {stack['up_seconds']:.0f} s")
    assert done.returncode == 0, f"make up failed:\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
    return stack


def _pods(work: tier.WorkCopy, namespace: str) -> list[dict[str, Any]]:
    return list(work.kubectl_json("get", "pods", "-n", namespace)["items"])


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def test_first_up_creates_the_cluster_and_every_node_is_ready(up: dict[str, Any]) -> None:
    work, config = up["work"], up["config"]
    control_plane, workers = node_names(config.cluster)
    nodes = work.kubectl_json("get", "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted([control_plane, *workers])
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
    assert work.outputs()["clusterName"] == config.cluster.name
    # make up ended in the smoke check, as shipped: verify's core checks passed, those a stand-in cannot support
    # skipped naming it.
    smoke = [r for r in work.resources()
             if r["type"] == "command:local:Command" and r["urn"].endswith("::smoke-verify")]
    assert smoke, "make up ran no smoke check"
    report = smoke[0].get("outputs", {}).get("stdout", "")
    assert "verify: OK" in report, report
    if up["gaps"]:
        assert f"needs a real data plane: {up['gaps']}" in report, report


def test_istio_runs_on_every_node_and_the_app_on_the_workers(up: dict[str, Any]) -> None:
    work, config = up["work"], up["config"]
    control_plane, workers = node_names(config.cluster)
    system = _pods(work, catalog.ISTIO_NAMESPACE)
    assert [p for p in system if p["metadata"]["name"].startswith("istiod-") and _ready(p)]
    for app in ("istio-cni-node", "ztunnel"):  # labelled k8s-app=istio-cni-node, app=ztunnel
        pods = [p for p in system if app in (p["metadata"].get("labels", {}).get(k) for k in ("k8s-app", "app"))]
        assert sorted(p["spec"]["nodeName"] for p in pods if _ready(p)) == sorted([control_plane, *workers]), app
    app_pods = _pods(work, config.app.namespace)
    expected = {f"{s.name}-{v}" for s in catalog.BOOKINFO for v in s.versions} | set(catalog.CLIENT_NAMES)
    running = {}
    for pod in app_pods:
        owner = pod["metadata"]["name"].rsplit("-", 2)[0]
        if pod["status"].get("phase") == "Running":
            running[owner] = pod["spec"]["nodeName"]
    assert set(running) >= expected, f"not running: {sorted(expected - set(running))}"
    assert {running[name] for name in expected} <= set(workers)


def test_the_namespace_is_enrolled_and_gateway_api_is_served(up: dict[str, Any]) -> None:
    work, config = up["work"], up["config"]
    labels = work.kubectl_json("get", "namespace", config.app.namespace)["metadata"]["labels"]
    assert labels.get("istio.io/dataplane-mode") == "ambient"
    crd = work.kubectl_json("get", "crd", "gateways.gateway.networking.k8s.io")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    served = work.kubectl("api-resources", "--api-group", "gateway.networking.k8s.io", "-o", "name")
    assert "gateways.gateway.networking.k8s.io" in served and "httproutes.gateway.networking.k8s.io" in served


def test_every_image_was_loaded_and_no_node_pulled(up: dict[str, Any]) -> None:
    work, config = up["work"], up["config"]
    events = work.kubectl_json("get", "events", "--all-namespaces")["items"]
    pulls = [f"{e['involvedObject'].get('name')}: {e.get('message')}" for e in events if e.get("reason") == "Pulling"]
    assert not pulls, "nodes pulled from a registry:\n" + "\n".join(pulls)
    preload = image_model.preload(config)
    for node, wanted in [(n, preload.every_node_images) for n in preload.every_node] + \
                        [(n, preload.worker_images) for n in preload.workers]:
        listed = tier.docker("exec", node, "crictl", "images", "-o", "json").stdout
        for image in wanted:
            assert image.split("/", 1)[1].rsplit(":", 1)[0] in listed, f"{image} not on {node}"


def test_verify_passes_and_names_what_it_cannot_check(up: dict[str, Any]) -> None:
    work, gaps = up["work"], up["gaps"]
    flags = f"--no-data-plane {shlex.quote(gaps)}" if gaps else ""
    done = work.make("verify", f"VERIFY_ARGS={flags}", check=False, timeout=900)
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-6000:]
    assert "verify: OK" in done.stdout
    if gaps:
        assert f"needs a real data plane: {gaps}" in done.stdout


def test_the_tutorial_traffic_crosses_the_mesh(up: dict[str, Any]) -> None:
    """The tryIt curls and the ztunnel logs: only with real ztunnel and proxyv2 images."""
    work, gaps = up["work"], up["gaps"]
    if gaps:
        pytest.skip(f"needs a real data plane: {gaps}")
    for command in work.outputs()["tryIt"]:
        done = work.run(["bash", "-c", command], timeout=300, check=True)
        if "grep -o" in command:  # each curl, and each turn of the loop, prints the title
            titles = done.stdout.splitlines()
            assert titles and set(titles) == {TITLE}, (command, done.stdout)
        if " logs " in command:  # ztunnel's access log of the requests just made: HBONE on 15008
            assert f":{HBONE_PORT}" in done.stdout, done.stdout[-2000:]


def test_try_it_commands_that_need_no_data_plane(up: dict[str, Any]) -> None:
    work = up["work"]
    commands = [c for c in work.outputs()["tryIt"] if " exec " not in c and " logs " not in c]
    assert len(commands) == 2  # get nodes, get pods -n istio-system
    for command in commands:
        done = work.run(["bash", "-c", command], timeout=120, check=True)
        assert "Ready" in done.stdout or "Running" in done.stdout


def test_a_second_up_changes_nothing(up: dict[str, Any]) -> None:
    work = up["work"]
    started = time.monotonic()
    work.make("up", timeout=900)
    up["noop_seconds"] = time.monotonic() - started
    changes = work.last_update_changes()
    assert set(changes) == {"same"}, changes


def test_diagnose_on_a_healthy_mesh(up: dict[str, Any]) -> None:
    done = up["work"].make("diagnose", check=False, timeout=300)
    assert done.returncode == 0 and "every pod is ready" in done.stdout, done.stdout


def test_diagnose_names_a_missing_image_and_a_deleted_pod(up: dict[str, Any]) -> None:
    """In a namespace of its own, outside the mesh: a new pod in the ambient namespace needs a real ztunnel."""
    work = up["work"]
    probe, missing = "kind-tier-probe", "docker.io/istio/examples-bookinfo-details-v1:0.0.0-not-preloaded"
    work.kubectl("create", "namespace", probe)
    try:
        work.kubectl("-n", probe, "create", "deployment", "details", f"--image={missing}")
        deadline, done = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            done = work.make("diagnose", check=False, timeout=300)
            if "did not preload" in done.stdout:
                break
            time.sleep(5)
        # make reports diagnose's exit 1 (something is not ready) as its own failure.
        assert done is not None and done.returncode != 0, done and done.stdout
        assert "diagnose: 1 of" in done.stdout and f"{probe}/details-" in done.stdout
        assert f"the pod runs {missing}, an image the stack did not preload" in done.stdout
    finally:
        work.kubectl("delete", "namespace", probe, "--wait=true", timeout=300)
    # A deleted istio-cni pod: its DaemonSet brings it back; then diagnose finds every pod ready again.
    victim = next(p["metadata"]["name"] for p in _pods(work, catalog.ISTIO_NAMESPACE)
                  if p["metadata"]["name"].startswith("istio-cni-node-"))
    work.kubectl("-n", catalog.ISTIO_NAMESPACE, "delete", "pod", victim, "--wait=false")
    done = work.make("diagnose", check=False, timeout=300)
    print(done.stdout)
    work.kubectl("-n", catalog.ISTIO_NAMESPACE, "rollout", "status", "ds/istio-cni-node", "--timeout=180s", timeout=240)
    done = work.make("diagnose", check=False, timeout=300)
    assert done.returncode == 0 and "every pod is ready" in done.stdout, done.stdout


# --- a laptop's second day: each situation played on the real cluster, then the next ordinary command -------------

def _cluster_containers() -> dict[str, str]:
    """The tier cluster's node containers: name -> container ID."""
    listed = tier.docker("ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={tier.CLUSTER_NAME}",
                         "--format", "{{.Names}} {{.ID}}").stdout
    return dict(line.split() for line in listed.splitlines() if line.strip())


def _a_working_mesh(stack: dict[str, Any]) -> None:
    """Every node Ready, then make verify (what the stand-ins allow)."""
    work, config, gaps = stack["work"], stack["config"], stack["gaps"]
    control_plane, workers = node_names(config.cluster)
    assert sorted(_cluster_containers()) == sorted([control_plane, *workers])
    work.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=240s", timeout=300)
    flags = f"--no-data-plane {shlex.quote(gaps)}" if gaps else ""
    done = work.make("verify", f"VERIFY_ARGS={flags}", check=False, timeout=900)
    assert done.returncode == 0 and "verify: OK" in done.stdout, done.stdout[-6000:]


def test_docker_restarted_the_next_up_and_verify_pass(up: dict[str, Any]) -> None:
    """The laptop (or Docker) restarted: the node containers come back, or are started; the API answers before
    Pulumi asks it anything."""
    if not tier.owns_docker():
        pytest.skip("the Docker engine is not the tier's own (tools/testkit/kind/docker.sh did not start it): "
                    "restarting it would stop every other container of this machine")
    work = up["work"]
    before = _cluster_containers()
    tier.restart_docker()
    done = work.make("up", timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert _cluster_containers() == before  # the same cluster, not a new one
    assert set(work.last_update_changes()) == {"same"}
    if up["gaps"] and "/ztunnel:" in up["gaps"]:
        # Every restarted pod of the ambient namespace gets its sandbox through istio-cni, whose agent hands it to
        # the node's ztunnel (ZDS): a stand-in ztunnel never takes it ("no ztunnel connection"). The mesh's own
        # pods need no ztunnel: they are checked; the app's, and verify, skip.
        work.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=240s", timeout=300)
        work.kubectl("wait", "--for=condition=Ready", "pods", "--all", "-n", catalog.ISTIO_NAMESPACE,
                     "--timeout=240s", timeout=300)
        pytest.skip(f"the app's pods after a restart need a real ztunnel: {up['gaps']}")
    _a_working_mesh(up)


def test_doctor_sizes_docker_with_another_kind_cluster_counted(up: dict[str, Any]) -> None:
    """Two clusters on one Docker (dev beside zero-trust; here the user's one-node bystander): the first make up's
    preflight counted the other cluster's memory, by name, as used."""
    printed = up["up_output"]
    lines = [line for line in printed.splitlines() if "Docker has " in line]  # doctor's docker-resources check
    assert lines and all("of which other kind clusters use" in line and f"({tier.BYSTANDER_CLUSTER} " in line
                         for line in lines), lines


def test_a_taken_new_host_port_stops_up_before_anything_is_deleted(up: dict[str, Any]) -> None:
    """cluster.ingressHostPort changed to a port something holds: doctor refuses; the cluster stays as it was."""
    work = up["work"]
    stack_file = work.root / f"Pulumi.{tier.STACK}.yaml"
    original = stack_file.read_text(encoding="utf-8")
    before, updates = _cluster_containers(), len(json.loads(work.run(
        ["pulumi", "stack", "history", "--json", "--stack", tier.STACK], check=True).stdout))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        document = yaml.safe_load(original)
        document["config"][f"{PROJECT}:cluster"]["ingressHostPort"] = port
        stack_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        try:
            done = work.make("up", timeout=600, check=False)
        finally:
            stack_file.write_text(original, encoding="utf-8")
    assert done.returncode != 0
    assert f"host port {port} is taken" in done.stdout and "would delete it" in done.stdout, done.stdout[-3000:]
    assert _cluster_containers() == before
    history = json.loads(work.run(["pulumi", "stack", "history", "--json", "--stack", tier.STACK], check=True).stdout)
    assert len(history) == updates  # no update ran


def test_the_cluster_deleted_and_host_images_pruned_the_next_up_rebuilds_everything(up: dict[str, Any]) -> None:
    """`kind delete cluster` (Docker Desktop reset) with the stack's images pruned from the host: make up says what
    it found, creates the cluster again with everything in it, and pulls back what the host lost."""
    work, config = up["work"], up["config"]
    why_not_pruned = tier.hub_mirror()
    pruned = [] if why_not_pruned else list(image_model.preload(config, "app").images)
    for image in pruned:
        tier.docker("image", "rm", image, check_ok=True)
    work.run(["kind", "delete", "cluster", "--name", tier.CLUSTER_NAME], check=True, timeout=300)
    done = work.make("up", timeout=UP_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    assert f"the kind cluster {tier.CLUSTER_NAME} this stack created is gone" in done.stderr
    changes = work.last_update_changes()
    assert changes.get("create", 0) > 30 and changes.get("replace", 0) >= 1, changes
    assert [image for image in pruned if tier.image_labels(image) is None] == []
    _a_working_mesh(up)
    if why_not_pruned:
        pytest.skip(f"the cluster was rebuilt; pruned host images not played: {why_not_pruned}")


def test_a_node_removed_by_hand_the_next_up_rebuilds_the_cluster(up: dict[str, Any]) -> None:
    work, config = up["work"], up["config"]
    _, workers = node_names(config.cluster)
    tier.docker("rm", "-f", workers[-1], check_ok=True)
    done = work.make("up", timeout=UP_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    assert f"lost node(s) {workers[-1]}" in done.stderr
    _a_working_mesh(up)


def test_destroy_with_the_cluster_already_gone_ends_with_an_empty_stack(up: dict[str, Any]) -> None:
    work = up["work"]
    work.run(["kind", "delete", "cluster", "--name", tier.CLUSTER_NAME], check=True, timeout=300)
    done = work.make("destroy", timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    exported = json.loads(work.run(["pulumi", "stack", "export", "--stack", tier.STACK], check=True).stdout)
    assert not exported["deployment"].get("resources")


def test_an_up_interrupted_while_kind_makes_the_nodes_is_finished_by_the_next(up: dict[str, Any]) -> None:
    """Ctrl-C while kind creates the nodes, kind itself interrupted too (as in a terminal, where it is in the
    foreground; Pulumi alone would wait for it): a half-made cluster the state does not hold. The creation's record
    says it is the stack's; the next make up deletes it and makes the whole stack."""
    work, config = up["work"], up["config"]
    if _cluster_containers():
        work.make("destroy", timeout=900)  # this test starts from an empty stack (after the one before it)
    control_plane, _ = node_names(config.cluster)
    running = subprocess.Popen(["make", "up"], cwd=work.root, env=work.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while control_plane not in _cluster_containers() and time.monotonic() < deadline and running.poll() is None:
        time.sleep(1)
    assert control_plane in _cluster_containers(), "kind never started the nodes"
    time.sleep(3)
    os.killpg(running.pid, signal.SIGINT)  # make, Pulumi and its plugins
    subprocess.run(["pkill", "-INT", "-f", f"kind create cluster --name {tier.CLUSTER_NAME}"], check=False)
    try:
        output, _ = running.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(running.pid, signal.SIGKILL)
        output, _ = running.communicate()
    work.log.append(f"$ make up  (interrupted, exit {running.returncode})\n{output}")
    assert running.returncode != 0
    left = sorted(_cluster_containers())
    exported = json.loads(work.run(["pulumi", "stack", "export", "--stack", tier.STACK], check=True).stdout)
    held = [r["urn"] for r in exported["deployment"].get("resources") or [] if r["urn"].endswith("::cluster-kind")]
    print(f"kind tier: the interrupted up left node containers {left}; the state holds the cluster: {bool(held)}")
    assert left and not held, "kind finished before the interruption: the half-made case was not played"
    done = work.make("up", timeout=UP_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    assert "from a creation that never finished" in done.stdout + done.stderr
    _a_working_mesh(up)


def test_destroy_leaves_nothing_behind(up: dict[str, Any]) -> None:
    work = up["work"]
    started = time.monotonic()
    work.make("destroy", timeout=900)
    up["destroy_seconds"] = time.monotonic() - started
    print(f"kind tier: no-op up {up.get('noop_seconds', 0):.0f} s, destroy {up['destroy_seconds']:.0f} s")
    assert not tier.docker("ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={tier.CLUSTER_NAME}").stdout.strip()
    assert tier.CLUSTER_NAME not in work.run(["kind", "get", "clusters"], check=True).stdout.split()
    assert f"kind-{tier.CLUSTER_NAME}" not in tier.kubeconfig_names(work)
    networks = tier.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "kind" not in networks or tier.docker("network", "inspect", "kind", "--format",
                                                 "{{len .Containers}}").stdout.strip() != "0"
    assert not work.outputs()
    # Nothing of the user's was touched by any situation of this module, the destroy included.
    assert tier.bystander_intact(work) == [], tier.bystander_intact(work)
