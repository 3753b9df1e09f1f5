"""The preflight (tools/doctor.py): every check passes and fails against a fake machine, each failure is one line with
the command that fixes it, the facts come from the stack's config, and the real thing runs against fake executables
on PATH, on the standard library alone."""

from __future__ import annotations

import ast
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from components.model import preflight, versions
from tests.conftest import REPO, base_config
from tools import doctor
from tools.doctor import Check, Doctor, Facts, Result

GIB = 1024 ** 3
DOCKER_INFO = {"ServerVersion": "28.1.1", "NCPU": 8, "MemTotal": 16 * GIB, "OperatingSystem": "Ubuntu 24.04 LTS",
               "Name": "laptop"}


@dataclass
class FakeHost(doctor.Host):
    """A machine where everything is fine unless a test says otherwise."""

    tools: dict[str, str] = field(default_factory=lambda: {
        "pulumi": "v3.274.1\n",
        "kubectl": json.dumps({"clientVersion": {"gitVersion": "v1.36.1"}}),
        "kind": "kind v0.32.0 go1.24.4 linux/amd64\n",
        "docker": json.dumps(DOCKER_INFO),
    })
    failing: dict[str, Result] = field(default_factory=dict)
    clusters: list[str] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    files: dict[str, str] = field(default_factory=lambda: {
        "/proc/sys/fs/inotify/max_user_watches": "524288\n", "/proc/sys/fs/inotify/max_user_instances": "512\n"})
    os_name: str = "Linux"
    version: tuple[int, int, int] = (3, 11, 7)
    modules: set[str] = field(default_factory=lambda: {"venv", "ensurepip"})
    export: str | None = None
    ran: list[list[str]] = field(default_factory=list)
    # What each node container is configured to publish (HostConfig.PortBindings; kind's control plane: the ingress
    # and the API server), and the containers that are stopped (`docker port` lists nothing for those).
    ports: dict[str, dict[str, list[dict[str, str]]]] = field(default_factory=lambda: {"ambient-control-plane": {
        "30080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "6443/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41234"}]}})
    stopped: set[str] = field(default_factory=set)
    # Running kind node containers: name -> (their cluster, `docker stats` memory use).
    kind_nodes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> Result:
        self.ran.append(list(argv))
        tool = argv[0]
        if tool in self.failing:
            return self.failing[tool]
        if list(argv[:3]) == ["kind", "get", "clusters"]:
            return Result(0, "".join(f"{c}\n" for c in self.clusters))
        if list(argv[:2]) == ["docker", "ps"]:
            return Result(0, "".join(f"{n}\t{c}\n" for n, (c, _) in self.kind_nodes.items()))
        if list(argv[:2]) == ["docker", "stats"]:
            return Result(0, "".join(f"{n}\t{self.kind_nodes[n][1]} / 16GiB\n" for n in argv[5:]))
        if list(argv[:2]) in (["docker", "port"], ["docker", "inspect"]) and argv[-1] not in self.ports:
            return Result(1, "", f"Error: No such container: {argv[-1]}")
        if list(argv[:2]) == ["docker", "port"]:
            published = {} if argv[-1] in self.stopped else self.ports[argv[-1]]
            return Result(0, "".join(f"{inside} -> {b['HostIp']}:{b['HostPort']}\n"
                                     for inside, bound in published.items() for b in bound))
        if list(argv[:2]) == ["docker", "inspect"]:
            return Result(0, json.dumps(self.ports[argv[-1]]) + "\n")
        if list(argv[:3]) == ["pulumi", "stack", "export"]:
            return Result(0, self.export) if self.export is not None else Result(255, "", "no stack named 'dev'")
        return Result(0, self.tools[tool])

    def which(self, tool: str) -> str | None:
        return f"/usr/bin/{tool}" if tool in self.tools else None

    def python(self) -> tuple[int, int, int]:
        return self.version

    def has_module(self, name: str) -> bool:
        return name in self.modules

    def system(self) -> str:
        return self.os_name

    def machine(self) -> str:
        return "arm64"

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def port_free(self, port: int) -> bool:
        return port not in self.taken


FACTS = Facts(stack="dev", cluster_name="ambient", nodes=3, host_port=8080, need_cpus=2, need_memory_mib=3640)


def checks(host: FakeHost, facts: Facts = FACTS, name: str | None = None) -> list[Check]:
    found = Doctor(facts, host).run()
    return [c for c in found if name is None or c.name == name]


def only(host: FakeHost, name: str, facts: Facts = FACTS) -> Check:
    [check] = checks(host, facts, name)
    return check


def failed(host: FakeHost, name: str, facts: Facts = FACTS) -> Check:
    check = only(host, name, facts)
    assert check.status == "fail", check
    assert "\n" not in check.line() and ". Fix: " in check.line()
    return check


def without(tool: str) -> FakeHost:
    host = FakeHost()
    del host.tools[tool]
    return host


def test_a_ready_machine_passes_every_check() -> None:
    found = checks(FakeHost())
    assert [c.name for c in found] == ["python", "pulumi", "kubectl", "docker", "docker-resources", "cgroup",
                                       "kind", "node-image", "inotify", "cluster", "host-port"]
    assert all(c.status == "ok" for c in found), [c.line() for c in found if c.status != "ok"]


# --- each check, passing and failing ---------------------------------------------------------------------------

def test_cgroup_v1_fails_unless_the_stack_allows_it() -> None:
    """kubelet 1.35+ refuses cgroup v1: doctor says so before kind waits minutes for nodes that never turn Ready."""
    v1 = FakeHost(tools={**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, "CgroupVersion": "1"})})
    check = failed(v1, "cgroup")
    assert "cgroup v1" in check.detail and "allowCgroupV1: true under ambient-mesh:cluster" in check.fix
    allowed = preflight.doctor_argv(base_config(cluster={"allowCgroupV1": True}), "dev")
    facts = doctor.facts_from_args(doctor.parse_args(allowed))
    assert only(v1, "cgroup", facts).status == "ok"
    v2 = FakeHost(tools={**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, "CgroupVersion": "2"})})
    assert only(v2, "cgroup").status == "ok"


def test_python() -> None:
    assert only(FakeHost(version=(3, 12, 1)), "python").status == "ok"
    old = failed(FakeHost(version=(3, 10, 4), files={"/etc/debian_version": "12"}), "python")
    assert "Python 3.10.4 is older than 3.11" in old.detail
    assert old.fix == "sudo apt-get install python3.11 python3.11-venv && make up PYTHON=python3.11"
    assert "make up PYTHON=python3.11" in failed(FakeHost(version=(3, 9, 0)), "python").fix
    version, no_venv = checks(FakeHost(modules={"venv"}, files={"/etc/debian_version": "12"}), name="python")
    assert version.status == "ok" and no_venv.status == "fail"
    assert no_venv.fix == "sudo apt-get install python3.11-venv"


@pytest.mark.parametrize(("tool", "output", "minimum"), [
    ("pulumi", "v3.199.9\n", "3.200"),
    ("kubectl", json.dumps({"clientVersion": {"gitVersion": "v1.31.9"}}), "1.32"),
    ("kind", "kind v0.26.0 go1.23.4 linux/amd64\n", "0.27"),
])
def test_tools_at_their_minimum(tool: str, output: str, minimum: str) -> None:
    assert minimum == versions.PREREQUISITES[tool].minimum
    assert only(FakeHost(), tool).status == "ok"
    old = failed(FakeHost(tools={**FakeHost().tools, tool: output}), tool)
    assert f"older than {minimum}" in old.detail
    missing = failed(without(tool), tool)
    assert f"{tool} is not on PATH" in missing.detail


def test_install_commands_follow_the_platform_and_the_versions() -> None:
    assert failed(without("kind"), "kind").fix == (
        "curl -Lo ./kind https://kind.sigs.k8s.io/dl/v0.32.0/kind-linux-arm64 && chmod +x ./kind && "
        "sudo mv ./kind /usr/local/bin/kind")
    assert "stable-1.36.txt" in failed(without("kubectl"), "kubectl").fix
    assert failed(without("pulumi"), "pulumi").fix == "curl -fsSL https://get.pulumi.com | sh"
    mac = without("kind")
    mac.os_name = "Darwin"
    assert failed(mac, "kind").fix.startswith("brew install kind")


def test_kubectl_without_json_output() -> None:
    host = FakeHost(tools={**FakeHost().tools, "kubectl": "Client Version: v1.33.2\nKustomize Version: v5\n"})
    assert only(host, "kubectl").detail == "kubectl 1.33.2 (>= 1.32)"


def test_docker_engine() -> None:
    assert only(FakeHost(), "docker").detail == "Docker engine 28.1.1 answers (>= 20.10)"
    assert failed(without("docker"), "docker").fix == "curl -fsSL https://get.docker.com | sh"
    down = Result(1, json.dumps({"ServerErrors": ["Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                                                  "Is the docker daemon running?"]}), "")
    check = failed(FakeHost(failing={"docker": down}), "docker")
    assert "Cannot connect to the Docker daemon" in check.detail and check.fix == "sudo systemctl start docker"
    denied = Result(1, "", "permission denied while trying to connect to the Docker daemon socket")
    assert failed(FakeHost(failing={"docker": denied}), "docker").fix == (
        "sudo usermod -aG docker $USER && newgrp docker")
    mac = FakeHost(failing={"docker": down}, os_name="Darwin")
    assert failed(mac, "docker").fix.startswith("open -a Docker")
    store = {"DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}
    store_27 = FakeHost(tools={**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, **store,
                                                                            "ServerVersion": "27.5.1"})})
    check = failed(store_27, "docker")
    assert "containerd image store" in check.detail and "kind#3795" in check.detail
    assert "preloadImages: false under ambient-mesh:cluster" in check.fix
    unloaded = doctor.facts_from_args(doctor.parse_args(preflight.doctor_argv(
        base_config(cluster={"preloadImages": False}), "dev")))
    assert only(store_27, "docker", unloaded).status == "ok"  # nothing to load: nothing to fail
    store_28 = FakeHost(tools={**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, **store})})
    assert only(store_28, "docker").status == "ok"
    old = FakeHost(tools={**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, "ServerVersion": "19.03.15"})})
    assert "Docker engine 19.03.15 is older than 20.10" in failed(old, "docker").detail


def test_docker_resources_against_what_the_stack_needs() -> None:
    assert only(FakeHost(), "docker-resources").detail == (
        "Docker has 8 CPUs and 16.0 GiB; this stack needs about 2 CPUs and 3.6 GiB")

    def small(**info: Any) -> FakeHost:
        return FakeHost(tools={**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, "NCPU": 1,
                                                                          "MemTotal": 2 * GIB, **info})})
    desktop = failed(small(OperatingSystem="Docker Desktop", Name="docker-desktop"), "docker-resources")
    assert desktop.detail == "Docker has 1 CPUs and 2.0 GiB; this stack needs about 2 CPUs and 3.6 GiB"
    assert desktop.fix.startswith("Docker Desktop > Settings > Resources: CPUs 2, Memory 4 GB")
    assert failed(small(Name="colima"), "docker-resources").fix == "colima stop && colima start --cpu 2 --memory 4"
    assert failed(small(), "docker-resources").fix.startswith(
        "in Pulumi.dev.yaml, set workers: 1 under ambient-mesh:cluster")
    assert only(without("docker"), "docker-resources").status == "skip"


def test_docker_resources_count_what_other_kind_clusters_hold() -> None:
    """dev and zero-trust on one Docker: the other cluster's nodes use memory this stack cannot have."""
    beside = {"zt-control-plane": ("zero-trust", "1.5GiB"), "zt-worker": ("zero-trust", "900MiB"),
              "ambient-worker": ("ambient", "3GiB")}  # this stack's own node is not counted
    roomy = only(FakeHost(kind_nodes=beside), "docker-resources")
    assert roomy.status == "ok" and "other kind clusters use 2.4 GiB (zero-trust 2.4 GiB)" in roomy.detail

    def docker_of(gib: float) -> dict[str, str]:
        return {**FakeHost().tools, "docker": json.dumps({**DOCKER_INFO, "MemTotal": int(gib * GIB)})}
    tight = failed(FakeHost(tools=docker_of(5), kind_nodes=beside), "docker-resources")
    assert "of which other kind clusters use 2.4 GiB" in tight.detail
    assert tight.fix.startswith("kind delete cluster --name zero-trust (or make destroy in the stack that made it)")
    assert only(FakeHost(tools=docker_of(5)), "docker-resources").status == "ok"  # alone it fits


def test_node_image_of_an_explicit_image() -> None:
    assert only(FakeHost(), "node-image", replace(FACTS, node_image="kindest/node:v1.35.0")).status == "ok"
    digest = only(FakeHost(), "node-image", replace(FACTS, node_image="kindest/node@sha256:0123"))
    assert digest.status == "ok" and "not checked" in digest.detail
    check = failed(FakeHost(), "node-image", replace(FACTS, node_image="kindest/node:v1.37.0"))
    assert check.detail == "kindest/node:v1.37.0 runs Kubernetes 1.37; Istio 1.31 supports Kubernetes 1.32–1.36"


@pytest.mark.parametrize("kind", ["0.33.0", "0.34.2"])
def test_node_image_of_kinds_default(kind: str) -> None:
    assert "creates Kubernetes 1.36 nodes" in only(FakeHost(), "node-image").detail  # kind 0.32
    host = FakeHost(tools={**FakeHost().tools, "kind": f"kind v{kind} go1.25 linux/arm64\n"})
    check = failed(host, "node-image")
    assert check.detail.startswith(f"kind {kind} creates Kubernetes 1.37 nodes by default")
    assert check.fix == ("in Pulumi.dev.yaml, set nodeImage: kindest/node:v1.36.4@sha256:"
                         "099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed under ambient-mesh:cluster")
    assert only(without("kind"), "node-image").status == "skip"


def test_inotify_on_linux_only() -> None:
    low = FakeHost(files={"/proc/sys/fs/inotify/max_user_watches": "8192\n",
                          "/proc/sys/fs/inotify/max_user_instances": "512\n"})
    check = failed(low, "inotify")
    assert check.detail == "fs.inotify.max_user_watches is 8192 (< 524288)"
    assert check.fix == "sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512"
    assert only(FakeHost(os_name="Darwin", files={}), "inotify").status == "skip"


def test_host_port() -> None:
    check = failed(FakeHost(taken={8080, 8081}), "host-port")
    assert check.detail == "host port 8080 is taken (something listens on 127.0.0.1:8080)"
    assert check.fix == "in Pulumi.dev.yaml, set ingressHostPort: 8082 under ambient-mesh:cluster"


def test_a_cluster_of_that_name() -> None:
    check = failed(FakeHost(clusters=["other", "ambient"], taken={8080}), "cluster")
    assert check.fix.startswith("kind delete cluster --name ambient")
    owned = FakeHost(clusters=["ambient"], taken={8080})
    assert only(owned, "cluster", replace(FACTS, cluster_owned=True)).status == "ok"
    assert only(owned, "host-port", replace(FACTS, cluster_owned=True)).status == "skip"  # its own port
    assert only(owned, "cluster", replace(FACTS, cluster_may_exist=True)).status == "ok"
    assert only(without("kind"), "cluster").status == "skip"


def test_the_stacks_own_cluster_gone_or_half_made_is_said_and_passes() -> None:
    """Gone (the state holds it, kind lists none): make up creates it again. Half-made (the state holds none, the
    creation's record names this stack): make up deletes it and creates it again. Neither stops the update."""
    gone = only(FakeHost(), "cluster", replace(FACTS, cluster_owned=True))
    assert gone.status == "ok" and "this stack created is gone: make up creates it again" in gone.detail
    half = only(FakeHost(clusters=["ambient"]), "cluster", replace(FACTS, cluster_half_made=True))
    assert half.status == "ok" and "a creation that never finished" in half.detail
    assert only(FakeHost(), "cluster").detail == "no kind cluster named ambient yet"


def test_the_creations_record_tells_a_half_made_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.model.config import PROJECT
    from components.model.kind import owner_record_path, stack_owner
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    record = owner_record_path("ambient", {"XDG_STATE_HOME": str(tmp_path)})
    mine = FakeHost(files={record: stack_owner(PROJECT, "dev", str(REPO)) + "\n"})
    assert doctor.facts_from_stack_file("dev", mine).cluster_half_made
    theirs = FakeHost(files={record: stack_owner(PROJECT, "dev", "/another/checkout") + "\n"})
    assert not doctor.facts_from_stack_file("dev", theirs).cluster_half_made
    assert not doctor.facts_from_stack_file("dev", FakeHost()).cluster_half_made


def test_a_new_host_port_for_the_stacks_cluster_must_be_free_before_anything_is_deleted() -> None:
    """cluster.ingressHostPort changed: the update replaces the cluster (delete, then create); a taken port would
    leave the stack with no cluster at all, so doctor refuses first."""
    owned = replace(FACTS, cluster_owned=True, host_port=9090)
    check = failed(FakeHost(clusters=["ambient"], taken={9090}), "host-port", owned)
    assert "would delete it and then fail to create the new one" in check.detail
    assert check.fix == "in Pulumi.dev.yaml, set ingressHostPort: 9091 under ambient-mesh:cluster"
    assert only(FakeHost(clusters=["ambient"]), "host-port", owned).status == "ok"  # 9090 free: the move can go
    # Docker cannot say what the cluster maps: left to kind, as before.
    assert only(FakeHost(clusters=["ambient"], taken={9090}, ports={}), "host-port", owned).status == "skip"


def test_a_stopped_clusters_own_port_is_still_its_own() -> None:
    """Docker restarted without the nodes: the stopped control plane publishes nothing now, yet it keeps its
    configured port, so the stack's port has not moved (the update keeps the cluster)."""
    owned = replace(FACTS, cluster_owned=True)
    stopped = FakeHost(clusters=["ambient"], stopped={"ambient-control-plane"})
    check = only(stopped, "host-port", owned)
    assert check.status == "skip" and check.detail.endswith("the existing cluster's")
    # Moved to a taken port, the stopped cluster is refused as a running one is.
    moved = failed(FakeHost(clusters=["ambient"], taken={9090}, stopped={"ambient-control-plane"}), "host-port",
                   replace(owned, host_port=9090))
    assert "would delete it and then fail to create the new one" in moved.detail


def test_an_existing_cluster_needs_no_docker_or_kind() -> None:
    assert [c.name for c in checks(without("docker"), replace(FACTS, provider="existing"))] == [
        "python", "pulumi", "kubectl"]


def test_skip_leaves_a_check_out() -> None:
    assert "python" not in {c.name for c in Doctor(FACTS, FakeHost(version=(3, 8, 0))).run(["python"])}


# --- the verdict -----------------------------------------------------------------------------------------------

def test_the_verdict_counts_problems_one_line_each() -> None:
    host = FakeHost(taken={8080}, clusters=["ambient"], version=(3, 10, 0))
    del host.tools["pulumi"]
    out = io.StringIO()
    argv = ["--provider", "kind", "--need-memory-mib", "3640"]
    assert doctor.main(argv, host, out) == 1
    text = out.getvalue()
    fails = [line for line in text.splitlines() if line.startswith("  FAIL")]
    assert len(fails) == 4 and all(". Fix: " in line for line in fails)
    assert "doctor: 4 problem(s), nothing was created" in text
    good = io.StringIO()
    assert doctor.main(argv, FakeHost(), good) == 0 and "doctor: ready (11 checks" in good.getvalue()


def test_python_only_runs_before_the_venv() -> None:
    out = io.StringIO()
    assert doctor.main(["--python-only"], FakeHost(version=(3, 9, 18)), out) == 1
    assert "Python 3.9.18 is older than 3.11" in out.getvalue() and "docker" not in out.getvalue()


# --- the facts -------------------------------------------------------------------------------------------------

def test_the_facts_are_the_stack_configs() -> None:
    config = base_config(cluster={"nodeImage": "kindest/node:v1.35.0", "workers": 1, "ingressHostPort": 9090})
    facts = doctor.facts_from_args(doctor.parse_args(preflight.doctor_argv(config, "dev")))
    need = preflight.need(config)
    assert facts == Facts(stack="dev", provider="kind", istio_version=config.istio.version, cluster_name="ambient",
                          nodes=2, node_image="kindest/node:v1.35.0", host_port=9090, need_cpus=need.cpus,
                          need_memory_mib=need.memory_mib)
    graph = doctor.parse_args(preflight.doctor_argv(config, "dev", in_graph=True))
    assert graph.cluster_may_exist and graph.skip == ["python"]


def test_the_stack_file_and_whether_the_stack_owns_its_cluster() -> None:
    export = json.dumps({"deployment": {"resources": [
        {"urn": "urn:pulumi:dev::ambient-mesh::ambient-mesh:cluster:Cluster$command:local:Command::cluster-kind",
         "inputs": {"environment": {"CLUSTER_NAME": "ambient"}}}]}})
    facts = doctor.facts_from_stack_file("dev", FakeHost(export=export))
    assert facts.cluster_name == "ambient" and facts.cluster_owned and not facts.cluster_may_exist
    assert facts.need_memory_mib == preflight.need(base_config()).memory_mib
    fresh = doctor.facts_from_stack_file("dev", FakeHost())  # no stack yet
    assert not fresh.cluster_owned and not fresh.cluster_may_exist
    unreadable = FakeHost(failing={"pulumi": Result(255, "", "error: passphrase must be set")})
    assert doctor.facts_from_stack_file("dev", unreadable).cluster_may_exist  # kind's creation still refuses
    other = export.replace('"ambient"', '"elsewhere"')
    assert not doctor.facts_from_stack_file("dev", FakeHost(export=other)).cluster_owned


def test_what_the_stack_needs() -> None:
    laptop = preflight.need(base_config())
    assert (laptop.cpus, laptop.cpu_millicores, laptop.memory_mib) == (2, 1480, 3640)
    defaults = preflight.need(base_config(istio={"resourceProfile": "chart-defaults"}))
    assert (defaults.cpus, defaults.memory_mib) == (3, 6836)
    more = preflight.need(base_config(waypoint={"mode": "namespace"}, sidecar={"enabled": True}))
    assert more.memory_mib == laptop.memory_mib + 2 * 128 + 20  # two Envoys, the sidecar namespace's curl


# --- the real thing: standard library only, old Pythons, fake executables on PATH ---------------------------

def test_doctor_imports_only_the_standard_library_and_versions() -> None:
    """Without site-packages (-S): no PyYAML, no Pulumi, nothing from .venv."""
    code = "import sys, tools.doctor; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=60)
    ours = {m for m in done.stdout.split() if m.split(".")[0] not in sys.stdlib_module_names and m != "__main__"}
    assert ours == {"tools", "tools.doctor", "components", "components.model", "components.model.versions"}


@pytest.mark.parametrize("path", ["tools/doctor.py", "components/model/versions.py"])
def test_doctor_parses_on_python_3_8(path: str) -> None:
    """It must tell an old Python that it is too old, not fail on a SyntaxError."""
    ast.parse((REPO / path).read_text(encoding="utf-8"), feature_version=(3, 8))


FAKES = {
    "pulumi": 'echo "v3.274.1"',
    "kubectl": """echo '{"clientVersion": {"gitVersion": "v1.36.1"}}'""",
    "kind": 'if [ "$1" = version ]; then echo "kind v0.32.0 go1.24.4 linux/amd64"; else echo "$FAKE_CLUSTERS"; fi',
    "docker": ('[ -n "${FAKE_DOCKER_DOWN:-}" ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }; '
               """echo '{"ServerVersion": "28.1.1", "NCPU": 4, "MemTotal": 8589934592, "Name": "x"}'"""),
}


def fake_path(tmp_path: Path) -> str:
    for name, body in FAKES.items():
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return f"{tmp_path}:{os.environ['PATH']}"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("clusters", "down", "code"), [("", "", 0), ("ambient", "", 1), ("", "1", 1)])
def test_fake_executables_on_path(tmp_path: Path, clusters: str, down: str, code: int) -> None:
    argv = preflight.doctor_argv(base_config(cluster={"ingressHostPort": free_port()}), "dev")
    env = {**os.environ, "PATH": fake_path(tmp_path), "FAKE_CLUSTERS": clusters, "FAKE_DOCKER_DOWN": down}
    done = subprocess.run([sys.executable, "-m", "tools.doctor", *argv, "--skip", "inotify"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == code, done.stdout + done.stderr
    if code == 0:
        assert "doctor: ready (10 checks" in done.stdout
    elif down:
        assert "FAIL  the Docker engine does not answer (Cannot connect to the Docker daemon)" in done.stdout
    else:
        assert "FAIL  a kind cluster named ambient already exists" in done.stdout


# --- in the graph ----------------------------------------------------------------------------------------------

def test_the_preflight_is_the_graphs_first_step(graph: Any) -> None:
    """A failed check creates nothing: every other resource waits for it."""
    preflight_command = graph.get("cluster-preflight")
    assert preflight_command.inputs["create"] == preflight.doctor_script(
        preflight.doctor_argv(base_config(), "dev", in_graph=True))
    assert preflight_command.inputs["dir"] == str(REPO)
    assert graph.depends_on("cluster-preflight") == set()
    assert "cluster-preflight" in graph.explicit("cluster-kind") and "cluster-preflight" in graph.explicit(
        "images-pull")
    def before(urn: str) -> set[str]:
        """Everything a resource waits for: its dependencies and its provider, and theirs."""
        seen: set[str] = set()
        todo = [urn]
        while todo:
            registration = graph.by_urn(todo.pop())
            for found in [*registration.dependencies, registration.provider.rsplit("::", 1)[0]]:
                if found and found not in seen:
                    seen.add(found)
                    todo.append(found)
        return seen

    first = graph.get("cluster-preflight").urn
    for resource in graph:
        if resource.custom and resource.urn != first:
            assert first in before(resource.urn), resource.name


def test_an_existing_cluster_has_no_preflight_in_the_graph() -> None:
    from tools.testkit.mockgraph import run_stack

    graph = run_stack(base_config(cluster={"provider": "existing", "context": "minikube"}))
    assert not [r for r in graph if r.name == "cluster-preflight"]


def test_the_preflight_and_the_smoke_check_run_the_same_python() -> None:
    from components.model import outputs

    assert preflight.PYTHON == outputs.PYTHON
