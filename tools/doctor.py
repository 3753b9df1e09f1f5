"""Preflight: is this machine ready for `make up`? One line per check; each failure says what is wrong and the command
that fixes it.

    python -m tools.doctor --stack dev        # the stack file's facts (needs PyYAML: run it from .venv)
    python -m tools.doctor --python-only      # before .venv exists: this Python's version and its venv module

`make doctor`, `make up` and `make preview` run it before Pulumi starts; on kind the stack runs it again as the first
step of its graph (components/cluster.py), with the facts as flags (components/model/preflight.py: doctor_argv).

Standard library only (and components/model/versions.py, which is too), and no syntax newer than Python 3.8: it must
be able to tell an old Python that it is too old.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from components.model import versions

# kind's recommendation for clusters of several nodes (kind's known issues: "Pod errors due to too many open files").
INOTIFY = (("max_user_watches", 524288), ("max_user_instances", 512))
# Docker's `save --platform`, which the image load needs under the containerd image store.
CONTAINERD_STORE_SAVE = "28"
CHECKS = ("python", "pulumi", "kubectl", "docker", "docker-resources", "cgroup", "kind", "node-image", "host-port",
          "inotify", "cluster")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Host:
    """Everything the checks ask of the machine; tests replace it."""

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> Result:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            return Result(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Result(124, "", f"{argv[0]}: no answer in {timeout:.0f} s")
        return Result(done.returncode, done.stdout, done.stderr)

    def which(self, tool: str) -> str | None:
        return shutil.which(tool)

    def python(self) -> tuple[int, int, int]:
        return sys.version_info[0], sys.version_info[1], sys.version_info[2]

    def has_module(self, name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    def system(self) -> str:
        return platform.system()  # Linux, Darwin, ...

    def machine(self) -> str:
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

    def read(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return None

    def port_free(self, port: int) -> bool:
        """Can 127.0.0.1:<port> be bound, as kind's port mapping will?"""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True


@dataclass(frozen=True)
class Facts:
    """What the stack will ask of the machine (components/model/preflight.py: doctor_argv)."""

    stack: str
    provider: str = "kind"
    istio_version: str = versions.ISTIO_VERSION
    cluster_name: str = "ambient"
    nodes: int = 3
    node_image: str = ""
    host_port: int = 8080
    need_cpus: int = 2
    need_memory_mib: int = 4096
    # A kind cluster of this name is no failure: it is the stack's own, or kind's creation refuses it.
    cluster_may_exist: bool = False
    # The stack's state records that cluster: it is the stack's own (its host port is its own too).
    cluster_owned: bool = False
    # The record the stack's cluster creation leaves beside it names this stack: a creation that never finished.
    cluster_half_made: bool = False
    allow_cgroup_v1: bool = False  # cluster.allowCgroupV1
    preload_images: bool = True  # cluster.preloadImages


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, fail, skip
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.status == "fail":
            return f"  FAIL  {self.detail}. Fix: {self.fix}"
        return f"  {self.status:<4}  {self.detail}"


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


_UNITS = {"b": 1, "kib": 1024, "kb": 1000, "mib": 1024 ** 2, "mb": 1000 ** 2, "gib": 1024 ** 3, "gb": 1000 ** 3,
          "tib": 1024 ** 4, "tb": 1000 ** 4}


def _mebibytes(text: str) -> int | None:
    """`1.25GiB`, `812.3MiB` (docker stats) in MiB."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()] // 1024 ** 2)


def _version_in(text: str) -> str | None:
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


class Doctor:
    def __init__(self, facts: Facts, host: Host) -> None:
        self.facts = facts
        self.host = host
        self.docker_info: dict[str, Any] | None = None
        self.kind_version: str | None = None
        self.compat = versions.compatibility(facts.istio_version)

    # --- how to fix things on this machine ----------------------------------------------------------------

    def _darwin(self) -> bool:
        return self.host.system() == "Darwin"

    def _newest_kind(self) -> str:
        in_range = versions.kind_releases_in_range(self.compat) if self.compat else []
        return f"v{(in_range or sorted(versions.KIND_RELEASES))[-1]}.0"

    def install(self, tool: str) -> str:
        arch = self.host.machine()
        if tool == "kind":
            if self._darwin():
                return "brew install kind (or brew upgrade kind)"
            kind = self._newest_kind()
            return (f"curl -Lo ./kind https://kind.sigs.k8s.io/dl/{kind}/kind-linux-{arch} && chmod +x ./kind && "
                    "sudo mv ./kind /usr/local/bin/kind")
        if tool == "kubectl":
            if self._darwin():
                return "brew install kubectl (or brew upgrade kubectl)"
            newest = self.compat.kubernetes[1] if self.compat else versions.PREREQUISITES["kubectl"].minimum
            return (f'curl -LO "https://dl.k8s.io/release/$(curl -Ls https://dl.k8s.io/release/stable-{newest}.txt)'
                    f'/bin/linux/{arch}/kubectl" && sudo install -m 0755 kubectl /usr/local/bin/kubectl')
        if tool == "pulumi":
            return "curl -fsSL https://get.pulumi.com | sh"
        if tool == "docker":
            return ("brew install --cask docker && open -a Docker" if self._darwin()
                    else "curl -fsSL https://get.docker.com | sh")
        return f"install {tool}"

    def _config_set(self, path: str, value: Any) -> str:
        """An edit of the stack file (which sets every key): it works before the stack exists in any backend, and
        keeps the file's comments."""
        section, key = path.split(".", 1)
        return f"in Pulumi.{self.facts.stack}.yaml, set {key}: {value} under ambient-mesh:{section}"

    # --- the checks ---------------------------------------------------------------------------------------

    def python(self) -> list[Check]:
        minimum = versions.PREREQUISITES["python"].minimum
        have = "{}.{}.{}".format(*self.host.python())
        checks = []
        if not versions.at_least(have, minimum):
            debian = self.host.read("/etc/debian_version") is not None
            fix = (f"sudo apt-get install python{minimum} python{minimum}-venv && make up PYTHON=python{minimum}"
                   if debian else f"install Python {minimum} or newer, then: make up PYTHON=python{minimum}")
            checks.append(fail("python", f"Python {have} is older than {minimum}", fix))
        else:
            checks.append(ok("python", f"Python {have} (>= {minimum})"))
        if not (self.host.has_module("venv") and self.host.has_module("ensurepip")):
            major_minor = "{}.{}".format(*self.host.python()[:2])
            fix = (f"sudo apt-get install python{major_minor}-venv" if self.host.read("/etc/debian_version")
                   is not None else "install your Python's venv module (venv and ensurepip)")
            checks.append(fail("python", f"Python {have} cannot create a virtual environment (no venv/ensurepip)",
                               fix))
        return checks

    def tool(self, tool: str, argv: Sequence[str], parse: Callable[[str], str | None]) -> tuple[Check, str]:
        """A tool on PATH at the minimum version: (the check, the version found or "")."""
        minimum = versions.PREREQUISITES[tool].minimum
        if self.host.which(tool) is None:
            return fail(tool, f"{tool} is not on PATH (needed: {minimum} or newer)", self.install(tool)), ""
        result = self.host.run(argv)
        found = parse(result.stdout) if result.returncode == 0 else None
        if found is None:
            said = _first_line(result.stderr or result.stdout) or f"exit {result.returncode}"
            return fail(tool, f"`{' '.join(argv)}` gives no version ({said})", self.install(tool)), ""
        if not versions.at_least(found, minimum):
            return fail(tool, f"{tool} {found} is older than {minimum}", self.install(tool)), found
        return ok(tool, f"{tool} {found} (>= {minimum})"), found

    def pulumi(self) -> list[Check]:
        return [self.tool("pulumi", ["pulumi", "version"], _version_in)[0]]

    def kubectl(self) -> list[Check]:
        def parse(stdout: str) -> str | None:
            try:
                return _version_in(json.loads(stdout)["clientVersion"]["gitVersion"])
            except (ValueError, KeyError, TypeError):
                return _version_in(stdout)
        return [self.tool("kubectl", ["kubectl", "version", "--client", "-o", "json"], parse)[0]]

    def docker(self) -> list[Check]:
        minimum = versions.PREREQUISITES["docker"].minimum
        if self.host.which("docker") is None:
            return [fail("docker", f"docker is not on PATH (needed: Docker {minimum} or newer, running)",
                         self.install("docker"))]
        result = self.host.run(["docker", "info", "--format", "{{json .}}"])
        try:
            info: dict[str, Any] = json.loads(result.stdout or "{}") or {}
        except ValueError:
            info = {}
        if not isinstance(info, dict):
            info = {}
        if result.returncode != 0 or not info.get("ServerVersion"):
            errors = info.get("ServerErrors") or []
            said = _first_line(result.stderr) or (errors[0] if errors else "") or "no answer"
            if self._darwin():
                fix = "open -a Docker (or: colima start), then wait for the engine to run"
            elif "permission denied" in said.lower():
                fix = "sudo usermod -aG docker $USER && newgrp docker"
            else:
                fix = "sudo systemctl start docker"
            return [fail("docker", f"the Docker engine does not answer ({said})", fix)]
        self.docker_info = info
        version = str(info["ServerVersion"])
        name = "Docker engine"
        if "podman" in json.dumps(info).lower():
            return [ok("docker", f"Podman {version} behind the docker CLI (not checked against Docker {minimum})")]
        upgrade = "brew upgrade --cask docker" if self._darwin() else "curl -fsSL https://get.docker.com | sh"
        if not versions.at_least(version, minimum):
            return [fail("docker", f"{name} {version} is older than {minimum}", upgrade)]
        containerd_store = any(isinstance(pair, list) and "io.containerd.snapshotter.v1" in pair
                               for pair in info.get("DriverStatus") or [])
        if containerd_store and self.facts.preload_images and not versions.at_least(version, CONTAINERD_STORE_SAVE):
            # kind's import of a whole-index archive fails (kubernetes-sigs/kind#3795); `docker save --platform`,
            # which the image load uses to avoid it, came with Docker 28.
            return [fail("docker", f"{name} {version} with the containerd image store: the image load would fail "
                                   "mid-update (`ctr: content digest ... not found`, kubernetes-sigs/kind#3795)",
                         f"{upgrade} (Docker {CONTAINERD_STORE_SAVE} or newer), or turn the containerd image store "
                         "off, or " + self._config_set("cluster.preloadImages", "false"))]
        return [ok("docker", f"{name} {version} answers (>= {minimum})")]

    def docker_resources(self) -> list[Check]:
        info, facts = self.docker_info, self.facts
        if info is None:
            return [skip("docker-resources", "Docker's CPUs and memory: no engine to ask")]
        cpus, memory_mib = int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0) // (1024 * 1024)
        need = f"{facts.need_cpus} CPUs and {facts.need_memory_mib / 1024:.1f} GiB"
        has = f"{cpus} CPUs and {memory_mib / 1024:.1f} GiB"
        # Another stack's cluster (dev beside zero-trust) holds its memory whatever this one needs: counted as used.
        others = self.other_clusters_memory_mib()
        if others:
            used = sum(others.values())
            held = ", ".join(f"{name} {mib / 1024:.1f} GiB" for name, mib in sorted(others.items()))
            has += f", of which other kind clusters use {used / 1024:.1f} GiB ({held})"
            memory_mib -= used
        if cpus >= facts.need_cpus and memory_mib >= facts.need_memory_mib:
            return [ok("docker-resources", f"Docker has {has}; this stack needs about {need}")]
        if others and cpus >= facts.need_cpus and memory_mib + sum(others.values()) >= facts.need_memory_mib:
            names = sorted(others)
            return [fail("docker-resources", f"Docker has {has}; this stack needs about {need}",
                         f"kind delete cluster --name {names[0]} (or make destroy in the stack that made it)"
                         + (f", and likewise {', '.join(names[1:])}" if names[1:] else "")
                         + ", or give Docker more memory")]
        gib = max(2, -(-facts.need_memory_mib // 1024))
        cpus_wanted = max(facts.need_cpus, cpus)
        flavour = f"{info.get('OperatingSystem', '')} {info.get('Name', '')}".lower()
        if "docker desktop" in flavour:
            fix = f"Docker Desktop > Settings > Resources: CPUs {cpus_wanted}, Memory {gib} GB, then Apply & restart"
        elif "colima" in flavour:
            fix = f"colima stop && colima start --cpu {cpus_wanted} --memory {gib}"
        elif facts.nodes > 1:
            fix = self._config_set("cluster.workers", 1) + " (fewer nodes), or free memory on this machine"
        else:
            fix = "free memory on this machine, or run the stack where Docker has more"
        return [fail("docker-resources", f"Docker has {has}; this stack needs about {need}", fix)]

    def other_clusters_memory_mib(self) -> dict[str, int]:
        """Memory each other kind cluster's running nodes use now (`docker stats`), by cluster name."""
        listed = self.host.run(["docker", "ps", "--filter", "label=io.x-k8s.kind.cluster", "--format",
                                '{{.Names}}\t{{.Label "io.x-k8s.kind.cluster"}}'])
        nodes = dict(line.split("\t", 1) for line in listed.stdout.splitlines() if "\t" in line) \
            if listed.returncode == 0 else {}
        nodes = {node: cluster for node, cluster in nodes.items() if cluster != self.facts.cluster_name}
        if not nodes:
            return {}
        stats = self.host.run(["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *nodes])
        used: dict[str, int] = {}
        for line in stats.stdout.splitlines() if stats.returncode == 0 else []:
            node, _, usage = line.partition("\t")
            mib = _mebibytes(usage.split("/")[0])
            if node in nodes and mib is not None:
                used[nodes[node]] = used.get(nodes[node], 0) + mib
        return used

    def cgroup(self) -> list[Check]:
        """kubelet 1.35+ refuses to start on cgroup v1 (a Linux host that still boots it, Docker in such a VM):
        kind's nodes would never turn Ready, after minutes of waiting."""
        info = self.docker_info
        if info is None:
            return [skip("cgroup", "Docker's cgroup version: no engine to ask")]
        if str(info.get("CgroupVersion", "2")) != "1":
            return [ok("cgroup", f"Docker runs cgroup v{info.get('CgroupVersion', 2)}")]
        if self.facts.allow_cgroup_v1:
            return [ok("cgroup", "Docker runs cgroup v1; kubelet is told to run there (cluster.allowCgroupV1)")]
        return [fail("cgroup", "Docker runs cgroup v1, where kubelet 1.35 and newer refuses to start",
                     self._config_set("cluster.allowCgroupV1", "true") + " (kubelet's failCgroupV1: false), or "
                     "boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1)")]

    def kind(self) -> list[Check]:
        check, found = self.tool("kind", ["kind", "version"], _version_in)
        self.kind_version = found or None
        return [check]

    def node_image(self) -> list[Check]:
        facts, compat = self.facts, self.compat
        if compat is None:
            return [skip("node-image", f"Istio {facts.istio_version}: not in the compatibility table")]
        low, high = compat.kubernetes
        span = f"Istio {versions.minor(facts.istio_version)} supports Kubernetes {low}–{high}"
        if facts.node_image:
            kubernetes = versions.node_image_kubernetes(facts.node_image)
            if kubernetes is None:
                return [ok("node-image", f"{facts.node_image}: pinned by digest, its Kubernetes is not checked")]
            if versions.supports_kubernetes(compat, kubernetes):
                return [ok("node-image", f"{facts.node_image}: Kubernetes {kubernetes} ({span})")]
            return [fail("node-image", f"{facts.node_image} runs Kubernetes {kubernetes}; {span}",
                         self._config_set("cluster.nodeImage", f"kindest/node:v{high}.<patch>"))]
        if self.kind_version is None:
            return [skip("node-image", "kind's default node image: no kind to ask")]
        entry = versions.kind_release(self.kind_version)
        if entry is None:
            return [skip("node-image", f"kind {self.kind_version}: older than this project knows")]
        known, release = entry
        image = release.default_node_image
        kubernetes = versions.node_image_kubernetes(image) or "?"
        newer = "" if known == versions.minor(self.kind_version) else f" (as kind {known}'s, or newer)"
        if versions.supports_kubernetes(compat, kubernetes):
            return [ok("node-image", f"kind {self.kind_version} creates Kubernetes {kubernetes} nodes ({span})")]
        supported = versions.supported_node_image(release, compat)
        fix = (self._config_set("cluster.nodeImage", supported) if supported else
               self._config_set("cluster.nodeImage", f"kindest/node:v{high}.<patch>@sha256:<digest>") +
               f" (an image of your kind release's notes), or install kind {self._newest_kind()}")
        return [fail("node-image", f"kind {self.kind_version} creates Kubernetes {kubernetes} nodes by default"
                                   f"{newer}; {span}", fix)]

    def inotify(self) -> list[Check]:
        if self.host.system() != "Linux":
            return [skip("inotify", "inotify limits: not Linux (they live in Docker's VM)")]
        low = []
        for name, wanted in INOTIFY:
            text = self.host.read(f"/proc/sys/fs/inotify/{name}")
            have = int(text.strip()) if text and text.strip().isdigit() else 0
            if have < wanted:
                low.append((name, have, wanted))
        if not low:
            return [ok("inotify", "inotify max_user_watches and max_user_instances at kind's recommended values")]
        said = ", ".join(f"fs.inotify.{n} is {have} (< {wanted})" for n, have, wanted in low)
        fix = "sudo sysctl " + " ".join(f"fs.inotify.{n}={wanted}" for n, wanted in INOTIFY)
        return [fail("inotify", said, fix)]

    def cluster_and_port(self) -> list[Check]:
        facts = self.facts
        exists: bool | None = None
        if self.host.which("kind") is None or self.docker_info is None:
            checks = [skip("cluster", f"kind cluster {facts.cluster_name}: needs kind and a running Docker")]
        else:
            listed = self.host.run(["kind", "get", "clusters"])
            if listed.returncode != 0:
                checks = [skip("cluster", f"`kind get clusters` failed ({_first_line(listed.stderr)})")]
            else:
                exists = facts.cluster_name in listed.stdout.split()
                if not exists and facts.cluster_owned:
                    checks = [ok("cluster", f"the kind cluster {facts.cluster_name} this stack created is gone: "
                                            "make up creates it again, with everything in it")]
                elif not exists:
                    checks = [ok("cluster", f"no kind cluster named {facts.cluster_name} yet")]
                elif facts.cluster_owned:
                    checks = [ok("cluster", f"kind cluster {facts.cluster_name} is this stack's own")]
                elif facts.cluster_half_made:
                    checks = [ok("cluster", f"kind cluster {facts.cluster_name} is this stack's, from a creation "
                                            "that never finished: make up deletes it and creates it again")]
                elif facts.cluster_may_exist:
                    checks = [ok("cluster", f"kind cluster {facts.cluster_name} exists: the cluster's creation "
                                            "refuses it unless this stack made it")]
                else:
                    checks = [fail("cluster", f"a kind cluster named {facts.cluster_name} already exists and this "
                                              f"stack did not create it",
                                   f"kind delete cluster --name {facts.cluster_name} (or set cluster.name to "
                                   "another name)")]
        moved = False
        if exists and (facts.cluster_owned or facts.cluster_may_exist or facts.cluster_half_made):
            mapped = self.mapped_host_ports(facts.cluster_name)
            if mapped is None or facts.host_port in mapped:
                checks.append(skip("host-port", f"host port {facts.host_port}: the existing cluster's"))
                return checks
            # Another port: the update replaces the cluster, and its new one must be able to take this port.
            moved = True
        if self.host.port_free(facts.host_port):
            checks.append(ok("host-port", f"host port {facts.host_port} is free"))
        else:
            spare = next((p for p in range(facts.host_port + 1, facts.host_port + 50) if self.host.port_free(p)),
                         None)
            why = (f"; the cluster {facts.cluster_name} maps another, so the update would delete it and then fail "
                   "to create the new one" if moved else "")
            checks.append(fail("host-port", f"host port {facts.host_port} is taken (something listens on "
                                            f"127.0.0.1:{facts.host_port}){why}",
                               self._config_set("cluster.ingressHostPort", spare if spare else "<a free port>")))
        return checks

    def mapped_host_ports(self, cluster: str) -> set[int] | None:
        """The host ports the cluster's control plane publishes (kind's extraPortMappings and its API server), from
        its configuration: `docker port` lists nothing for a stopped container, so its own port would look moved.
        None when Docker cannot say."""
        result = self.host.run(["docker", "inspect", "--format", "{{json .HostConfig.PortBindings}}",
                                f"{cluster}-control-plane"])
        if result.returncode != 0:
            return None
        try:
            bindings = json.loads(result.stdout) or {}
        except ValueError:
            return None
        return {int(port) for bound in bindings.values() for binding in bound or []
                if (port := str(binding.get("HostPort") or "")).isdigit() and int(port) > 0}

    def run(self, skipped: Sequence[str] = ()) -> list[Check]:
        kind = self.facts.provider == "kind"
        plan: list[tuple[str, Callable[[], list[Check]]]] = [
            ("python", self.python), ("pulumi", self.pulumi), ("kubectl", self.kubectl)]
        if kind:
            plan += [("docker", self.docker), ("docker-resources", self.docker_resources), ("cgroup", self.cgroup),
                     ("kind", self.kind),
                     ("node-image", self.node_image), ("inotify", self.inotify), ("cluster", self.cluster_and_port)]
        checks: list[Check] = []
        for name, check in plan:
            if name not in skipped:
                checks += check()
        return checks


# --- the command line ------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev",
                        help="the stack (default dev); without --provider its Pulumi.<stack>.yaml is read")
    parser.add_argument("--python-only", action="store_true", help="only this Python's version and venv module")
    parser.add_argument("--provider", choices=("kind", "existing"), help="cluster.provider (facts as flags)")
    parser.add_argument("--istio-version", default=versions.ISTIO_VERSION)
    parser.add_argument("--cluster-name", default="ambient")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--node-image", default="")
    parser.add_argument("--host-port", type=int, default=8080)
    parser.add_argument("--need-cpus", type=int, default=2)
    parser.add_argument("--need-memory-mib", type=int, default=4096)
    parser.add_argument("--allow-cgroup-v1", action="store_true", help="cluster.allowCgroupV1")
    parser.add_argument("--no-preload-images", action="store_true", help="cluster.preloadImages false")
    parser.add_argument("--cluster-may-exist", action="store_true",
                        help="a kind cluster of that name is no failure (the graph's own run)")
    parser.add_argument("--skip", action="append", default=[], choices=CHECKS, help="leave a check out")
    return parser.parse_args(argv)


def facts_from_stack_file(stack: str, host: Host) -> Facts:
    """The stack file's facts, through the model (PyYAML: from .venv), and whether the stack already owns its kind
    cluster (its state, `pulumi stack export`, holds the cluster's command)."""
    from components.model.config import PROJECT, read_stack_file
    from components.model.kind import owner_record_path, stack_owner
    from components.model.preflight import doctor_argv
    from components.model.validate import parse_config

    checkout = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # as components/cluster.py
    config = parse_config(read_stack_file(os.path.join(checkout, f"Pulumi.{stack}.yaml")))
    facts = facts_from_args(parse_args(doctor_argv(config, stack)))
    owned = owns_cluster(host, stack, facts.cluster_name)
    record = host.read(owner_record_path(facts.cluster_name, os.environ)) or ""
    # State that cannot be read says nothing either way: kind's creation still refuses a cluster it did not make.
    return replace(facts, cluster_owned=owned is True, cluster_may_exist=owned is None,
                   cluster_half_made=record.strip() == stack_owner(PROJECT, stack, checkout))


def owns_cluster(host: Host, stack: str, cluster_name: str) -> bool | None:
    """Whether the stack's state (`pulumi stack export`) holds the kind cluster's command; None when unreadable."""
    if host.which("pulumi") is None:
        return None
    exported = host.run(["pulumi", "stack", "export", "--stack", stack], timeout=60)
    if exported.returncode != 0:
        # A stack not made yet owns nothing; any other failure leaves the question open.
        return False if "no stack named" in (exported.stderr + exported.stdout).lower() else None
    try:
        resources = json.loads(exported.stdout)["deployment"].get("resources") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return any(str(r.get("urn", "")).endswith("::cluster-kind")
               and ((r.get("inputs") or {}).get("environment") or {}).get("CLUSTER_NAME") == cluster_name
               for r in resources)


def facts_from_args(args: argparse.Namespace) -> Facts:
    return Facts(stack=args.stack, provider=args.provider or "kind", istio_version=args.istio_version,
                 cluster_name=args.cluster_name, nodes=args.nodes, node_image=args.node_image,
                 host_port=args.host_port, need_cpus=args.need_cpus, need_memory_mib=args.need_memory_mib,
                 cluster_may_exist=args.cluster_may_exist, allow_cgroup_v1=args.allow_cgroup_v1,
                 preload_images=not args.no_preload_images)


def main(argv: Sequence[str] | None = None, host: Host | None = None, out: Any = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    host = host or Host()
    out = out if out is not None else sys.stdout
    if args.python_only:
        facts = Facts(stack=args.stack)
        checks = Doctor(facts, host).python()
        what = "Python for .venv"
    else:
        if args.provider is None:
            try:
                facts = facts_from_stack_file(args.stack, host)
            except ImportError as error:
                print(f"doctor: reading Pulumi.{args.stack}.yaml needs the project's requirements ({error}); run "
                      "`make doctor`, or pass the facts as flags (--provider ...)", file=out)
                return 2
        else:
            facts = facts_from_args(args)
        checks = Doctor(facts, host).run(args.skip)
        what = (f"stack {facts.stack}: kind cluster {facts.cluster_name}, {facts.nodes} nodes"
                if facts.provider == "kind" else f"stack {facts.stack}: an existing cluster")
    print(f"doctor: is this machine ready for {what}?", file=out)
    for check in checks:
        print(check.line(), file=out)
    failed = [c for c in checks if c.status == "fail"]
    elapsed = time.monotonic() - started
    if failed:
        print(f"doctor: {len(failed)} problem(s), nothing was created ({elapsed:.1f} s)", file=out)
        return 1
    print(f"doctor: ready ({len(checks)} checks, {elapsed:.1f} s)", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
