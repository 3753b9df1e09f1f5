"""The kind tier's own logic: where its tools and images are, which images are stand-ins, the stack file it runs,
and a work copy of the checkout in which the project's own make targets run (`make up`, `make verify`, ...).

Offline (this workplace): the images, the node image and the kind CLI come from tools/testkit/bootstrap-kind.sh, the
Pulumi CLI and providers from the engine tier, Istio's charts and Gateway API's CRDs from their Go modules; the
stack file is the dev stack's with those local sources. Online (GitHub's e2e job, a laptop): the dev stack as
shipped, pulling real images, with only the cluster's name and host port changed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.model import images as image_model
from components.model.config import PROJECT, StackConfig, read_stack_file
from components.model.validate import parse_config
from tests.engine import kwok, upstream
from tools.verify.cli import NO_DATA_PLANE_ENV

REPO = Path(__file__).resolve().parents[2]
CACHE_ENV = "KIND_TIER_CACHE"
STANDIN_LABEL = "ambient-mesh.standin"
NODE_IMAGE = "ambient-mesh.local/kind-node:v1.36.3"
CLUSTER_NAME = "ambient-tier"
STACK = "dev"


def kind_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ambient-mesh-kind")


def docker(*args: str, timeout: float = 60, check_ok: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check_ok and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def image_labels(image: str) -> dict[str, str] | None:
    """The labels of a local image; None when the host's Docker does not have it."""
    done = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout or "null") or {}


def standins(config: StackConfig) -> dict[str, str]:
    """The stack's images that are stand-ins in the host's Docker (image -> why), as their labels say."""
    found = {}
    for image in image_model.images(config):
        labels = image_labels(image) or {}
        if STANDIN_LABEL in labels:
            found[image] = labels[STANDIN_LABEL]
    return found


def missing_images(config: StackConfig) -> list[str]:
    return [image for image in image_model.images(config) if image_labels(image) is None]


def missing_tools(which: Any = shutil.which) -> list[str]:
    """What the tier lacks: the engine tier's Pulumi or one on PATH, the kind tier's kind or one on PATH."""
    missing = []
    if kwok.missing_binaries(("pulumi",)) and which("pulumi") is None:
        missing.append("pulumi (tools/testkit/bootstrap-engine.sh, or the Pulumi CLI on PATH)")
    if not (kind_cache() / "bin" / "kind").exists() and which("kind") is None:
        missing.append("kind (tools/testkit/bootstrap-kind.sh, or kind on PATH)")
    return missing


UP_TIMEOUT = 1800
# CI sets it: there a tier that is not built fails the run instead of skipping it.
REQUIRED_ENV = "KIND_TIER_REQUIRED"


def prerequisites() -> list[str]:
    """Why the tier cannot run here (empty: it can)."""
    reasons = missing_tools()
    if docker("info").returncode != 0:
        reasons.append("no Docker engine answers (tools/testkit/kind/docker.sh start)")
    if not kwok.missing_binaries(("pulumi",)):
        reasons += [f"engine tier: plugin {p} missing" for p in kwok.missing_plugins(("kubernetes", "command"))]
    return reasons


def offline() -> bool:
    """Whether the kind tier is built here: its node image is in the host's Docker."""
    return image_labels(NODE_IMAGE) is not None


DOCKER_SCRIPT = REPO / "tools" / "testkit" / "kind" / "docker.sh"


def owns_docker() -> bool:
    """Whether the Docker engine is the tier's own daemon (tools/testkit/kind/docker.sh started it): only that one may
    be restarted by a test."""
    pidfile = kind_cache() / "docker" / "dockerd.pid"
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def restart_docker() -> None:
    for step in ("stop", "start"):
        subprocess.run([str(DOCKER_SCRIPT), step], check=True, timeout=180)


def hub_mirror() -> str | None:
    """None when the host's Docker pulls docker.io images through the tier's stand-in for Docker Hub
    (tools/testkit/kind/registry.sh); else why not."""
    done = subprocess.run([str(DOCKER_SCRIPT), "mirror"], capture_output=True, text=True, timeout=30, check=False)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no mirror"])[-1]


def cgroup_v1() -> bool:
    return docker("info", "--format", "{{.CgroupVersion}}").stdout.strip() == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tier_config(base: Mapping[str, Any], host_port: int, *, local: bool, allow_cgroup_v1: bool) -> dict[str, Any]:
    """A stack's config with what this machine needs: its own cluster name and a free host port; offline, the
    tier's node image, Istio's charts, add-on files and Gateway API's CRDs from their pinned Go modules."""
    raw: dict[str, Any] = json.loads(json.dumps(dict(base)))
    cluster = raw.setdefault("cluster", {})
    cluster.update({"name": CLUSTER_NAME, "ingressHostPort": host_port, "allowCgroupV1": allow_cgroup_v1})
    if local:
        config = parse_config(raw)
        cluster["nodeImage"] = NODE_IMAGE
        raw.setdefault("istio", {})["repository"] = str(upstream.charts_dir(config.istio.version))
        raw.setdefault("gatewayApi", {})["source"] = str(upstream.gateway_api_crds(config.gateway_api.version))
        if config.observability.addons and not config.observability.source:
            raw["observability"]["source"] = str(upstream.addons_dir(config.istio.version))
    return raw


def data_plane_gaps(config: StackConfig, found: Mapping[str, str]) -> str | None:
    """Why the cluster cannot carry traffic through the mesh (a stand-in ztunnel or proxyv2), or None."""
    gaps = [f"{image} is a stand-in ({why})" for image, why in sorted(found.items())
            if "/ztunnel:" in image or "/proxyv2:" in image]
    return "; ".join(gaps) or None


def stack_file_text(raw: Mapping[str, Any]) -> str:
    return yaml.safe_dump({"config": {f"{PROJECT}:{section}": value for section, value in raw.items()}},
                          sort_keys=False)


@dataclass
class WorkCopy:
    """A copy of this checkout (tracked and untracked files, not ignored ones) with its own stack file, state
    backend and kubeconfig: the project's make targets run there exactly as a user runs them."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, raw: Mapping[str, Any]) -> WorkCopy:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split("\0")
        for name in filter(None, listed):
            source = REPO / name
            if source.is_file():
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        venv = REPO / ".venv"
        if venv.is_dir():
            (root / ".venv").symlink_to(venv)
        (root / f"Pulumi.{STACK}.yaml").write_text(stack_file_text(raw), encoding="utf-8")
        env = dict(os.environ)
        if not kwok.missing_binaries(("pulumi",)):
            env.update(kwok.pulumi_env())  # the engine tier's Pulumi, offline; else the pulumi on PATH (GitHub)
        if (kind_cache() / "bin" / "kind").exists():
            env["PATH"] = os.pathsep.join([str(kind_cache() / "bin"), env["PATH"]])
        env.update({"PULUMI_BACKEND_URL": f"file://{root / '.pulumi-state'}", "PULUMI_CONFIG_PASSPHRASE": "kind-tier",
                    "KUBECONFIG": str(root / "kubeconfig"), "PYTHONDONTWRITEBYTECODE": "1"})
        return cls(root, env)

    def run(self, argv: Sequence[str], timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        self.log.append(f"$ {' '.join(argv)}  (exit {done.returncode})\n{done.stdout}{done.stderr}")
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-6000:]}\n"
                                 f"{done.stderr[-6000:]}")
        return done

    def make(self, *target: str, timeout: float = 1500, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["make", *target], timeout=timeout, check=check)

    def kubectl(self, *args: str, timeout: float = 120) -> str:
        return self.run(["kubectl", "--context", f"kind-{CLUSTER_NAME}", *args], timeout=timeout, check=True).stdout

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def outputs(self) -> dict[str, Any]:
        done = self.run(["pulumi", "stack", "output", "--json", "--stack", STACK], check=True)
        return json.loads(done.stdout)

    def resources(self) -> list[dict[str, Any]]:
        """The state's resources, secrets shown (the work copy's own throwaway passphrase)."""
        done = self.run(["pulumi", "stack", "export", "--show-secrets", "--stack", STACK], check=True)
        return list(json.loads(done.stdout)["deployment"].get("resources") or [])

    def last_update_changes(self) -> dict[str, int]:
        done = self.run(["pulumi", "stack", "history", "--json", "--stack", STACK], check=True)
        return dict(json.loads(done.stdout)[0].get("resourceChanges") or {})


# --- what is the user's: it must outlive every situation the tier plays -----------------------------------------

BYSTANDER_CLUSTER = f"{CLUSTER_NAME}-bystander"
BYSTANDER_CONTEXT = "someone-elses-context"
BYSTANDER_IMAGE = "ambient-tier.local/bystander:1"


def make_bystander(work: WorkCopy, local: bool, cgroup_v1: bool) -> None:
    """A context in the user's kubeconfig, an image in the user's Docker and a one-node kind cluster of the user's."""
    kubeconfig = Path(work.env["KUBECONFIG"])
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": BYSTANDER_CONTEXT,
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "someone", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": BYSTANDER_CONTEXT, "context": {"cluster": "elsewhere", "user": "someone"}}],
    }), encoding="utf-8")
    source = NODE_IMAGE if local else "busybox:latest"
    if docker("image", "inspect", source).returncode == 0:
        docker("tag", source, BYSTANDER_IMAGE, check_ok=True)
    config: dict[str, Any] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                              "nodes": [{"role": "control-plane", **({"image": NODE_IMAGE} if local else {})}]}
    if cgroup_v1:
        config["kubeadmConfigPatches"] = [yaml.safe_dump({"kind": "KubeletConfiguration", "failCgroupV1": False})]
    done = subprocess.run(["kind", "create", "cluster", "--name", BYSTANDER_CLUSTER, "--config", "-", "--wait", "0s"],
                          input=yaml.safe_dump(config), cwd=work.root, env=work.env, capture_output=True, text=True,
                          timeout=600, check=False)
    work.log.append(f"$ kind create cluster --name {BYSTANDER_CLUSTER}  (exit {done.returncode})\n{done.stderr}")
    if done.returncode != 0:
        raise AssertionError(f"the bystander cluster could not be made: {done.stderr[-2000:]}")


def kubeconfig_names(work: WorkCopy, sections: tuple[str, ...] = ("clusters", "users", "contexts")) -> list[str]:
    """The entry names of the work copy's kubeconfig, compared whole: the bystander's names begin with ours."""
    kubeconfig = Path(work.env["KUBECONFIG"])
    loaded = (yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}) if kubeconfig.exists() else {}
    return [entry["name"] for section in sections for entry in loaded.get(section) or []]


def bystander_intact(work: WorkCopy) -> list[str]:
    """What of the user's is gone or changed (empty: nothing)."""
    lost = []
    contexts = kubeconfig_names(work, ("contexts",))
    if BYSTANDER_CONTEXT not in contexts:
        lost.append(f"the kubeconfig context {BYSTANDER_CONTEXT} (contexts now: {contexts})")
    if f"kind-{BYSTANDER_CLUSTER}" not in contexts:
        lost.append(f"the kubeconfig context kind-{BYSTANDER_CLUSTER}")
    clusters = work.run(["kind", "get", "clusters"]).stdout.split()
    if BYSTANDER_CLUSTER not in clusters:
        lost.append(f"the kind cluster {BYSTANDER_CLUSTER} (kind lists: {clusters})")
    state = docker("inspect", "--format", "{{.State.Status}}", f"{BYSTANDER_CLUSTER}-control-plane").stdout.strip()
    if state != "running":
        lost.append(f"the node container {BYSTANDER_CLUSTER}-control-plane ({state or 'gone'})")
    if docker("image", "inspect", NODE_IMAGE).returncode == 0 and docker("image", "inspect",
                                                                        BYSTANDER_IMAGE).returncode != 0:
        lost.append(f"the image {BYSTANDER_IMAGE}")
    return lost


def remove_bystander(work: WorkCopy) -> None:
    work.run(["kind", "delete", "cluster", "--name", BYSTANDER_CLUSTER], timeout=300)
    docker("image", "rm", BYSTANDER_IMAGE)


def stack_raw(stack_file: Path = REPO / "Pulumi.dev.yaml") -> dict[str, Any]:
    return dict(read_stack_file(stack_file))


def prepared(tmp_path_factory: pytest.TempPathFactory, stack_file: Path, label: str,
             adjust: Any = None) -> dict[str, Any]:
    """A work copy of the checkout running `stack_file` on this machine (tier_config), or the test skipped (the
    tier is not built) or failed (CI requires it, or an image is missing). `adjust(raw, gaps)` changes the config
    for what the stand-ins cannot serve. The smoke check learns the data plane's gaps through the environment."""
    reasons = prerequisites()
    if reasons and os.environ.get(REQUIRED_ENV, "") not in ("", "0", "false"):
        pytest.fail(f"{REQUIRED_ENV} is set but the kind tier is not built: " + "; ".join(reasons))
    if reasons:
        pytest.skip("the kind tier is not built here: " + "; ".join(reasons))
    local = offline()
    raw = tier_config(stack_raw(stack_file), free_port(), local=local, allow_cgroup_v1=cgroup_v1())
    config = parse_config(raw)
    missing = missing_images(config) if local else []
    if missing:
        pytest.fail(f"the kind tier lacks images the {label} stack runs: {', '.join(missing)}")
    found = standins(config)
    gaps = data_plane_gaps(config, found)
    if adjust is not None and gaps:
        adjust(raw)
        config = parse_config(raw)
    for image, why in sorted(found.items()):
        print(f"kind tier ({label}): {image} is a STAND-IN: {why}")
    work = WorkCopy.create(tmp_path_factory.mktemp(f"kind-tier-{label}"), raw)
    if gaps:
        work.env[NO_DATA_PLANE_ENV] = gaps
    return {"work": work, "config": config, "gaps": gaps, "standins": found, "local": local}


def cluster_containers() -> str:
    return docker("ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER_NAME}").stdout.strip()


def tear_down(work: WorkCopy) -> None:
    """Whatever a module left: its log kept, its cluster destroyed through the stack, else deleted."""
    Path(work.root / "kind-tier.log").write_text("\n".join(work.log), encoding="utf-8")
    if cluster_containers():
        work.make("destroy", check=False, timeout=900)
        work.run(["kind", "delete", "cluster", "--name", CLUSTER_NAME], check=False)
