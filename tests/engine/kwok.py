"""A container-free Kubernetes cluster for the engine tests: kwokctl's binary runtime with locally built binaries.

kube-apiserver, kube-controller-manager, kube-scheduler and etcd run as local processes bound to 127.0.0.1; kwok
plays the kubelets of two fake nodes (no taints) and marks their pods Running and Ready, so Deployments and
DaemonSets become Ready and Helm's wait succeeds. Nothing is downloaded: every binary comes from
tools/testkit/bootstrap-engine.sh's cache. LoadBalancer Services never get an address (no cloud), NodePorts are
allocated but serve nothing.

    with KwokCluster.start(tmp_path) as cluster:
        cluster.kubectl("get", "nodes")

Run by hand: `python -m tests.engine.kwok` creates a cluster, prints its kubeconfig path and waits for Enter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "AMBIENT_MESH_ENGINE_CACHE"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "kwokctl")
ENGINE = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-kubernetes")


def engine_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ambient-mesh-engine")


def engine_bin() -> Path:
    return engine_cache() / "bin"


def missing_binaries(names: tuple[str, ...] = CONTROL_PLANE + ENGINE) -> list[str]:
    """Binaries of the engine tier that tools/testkit/bootstrap-engine.sh has not (yet) built."""
    return [name for name in names if not os.access(engine_bin() / name, os.X_OK)]


def missing_plugins(names: tuple[str, ...] = ("kubernetes",)) -> list[str]:
    """Provider plugins the bootstrap's `plugins` piece has not installed into the tier's PULUMI_HOME."""
    plugins = engine_cache() / "pulumi-home" / "plugins"
    return [f"plugin {name} (in PULUMI_HOME)" for name in names if not any(plugins.glob(f"resource-{name}-v*"))]


def pulumi_env() -> dict[str, str]:
    """The tier's Pulumi, offline: its own CLI first on PATH, its own PULUMI_HOME, no update check, no plugin
    downloads, no plugin from the caller's PATH."""
    return {
        "PATH": f"{engine_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(engine_cache() / "pulumi-home"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
    }


def kubectl_binary() -> str | None:
    """kubectl for checks: the cache's own if it was built, else the one on PATH."""
    own = engine_bin() / "kubectl"
    return str(own) if os.access(own, os.X_OK) else shutil.which("kubectl")


class KwokError(RuntimeError):
    pass


@dataclass
class KwokCluster:
    name: str
    workdir: Path
    nodes: int = 2
    # Label selector of pods kwok must leave alone (their status is someone else's: tests/engine/istiod.py).
    disregard: str | None = None
    bin_dir: Path = field(default_factory=engine_bin)
    log: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig.yaml"

    @property
    def config_file(self) -> Path:
        return self.workdir / "kwokctl.yaml"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # kwokctl keeps each cluster's files (pki, etcd data, logs, pids) under KWOK_WORKDIR/clusters/<name>.
        env["KWOK_WORKDIR"] = str(self.workdir / "kwok")
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _run(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(args, env=self._env(), capture_output=True, text=True, timeout=timeout,
                                check=False)
        self.log.append(f"$ {' '.join(args)}  # {time.monotonic() - started:.1f}s, exit {result.returncode}\n"
                        f"{result.stdout}{result.stderr}")
        if check and result.returncode != 0:
            raise KwokError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def write_config(self) -> None:
        b = self.bin_dir
        options: dict[str, str] = {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeApiserverBinary": str(b / "kube-apiserver"),
            "kubeControllerManagerBinary": str(b / "kube-controller-manager"),
            "kubeSchedulerBinary": str(b / "kube-scheduler"),
            "kwokControllerBinary": str(b / "kwok"),
            "etcdBinary": str(b / "etcd"),
            "cacheDir": str(self.workdir / "kwok-cache"),
        }
        kubectl = kubectl_binary()
        if kubectl:
            options["kubectlBinary"] = kubectl
        documents: list[dict[str, object]] = [
            {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration", "options": options}]
        if self.disregard:
            # kwokctl hands KwokConfiguration documents to the kwok controller, which then takes this one as is:
            # the fields kwok v0.8.0 defaults (+default in its v1alpha1 types) are repeated, or they stay zero.
            documents.append({"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration",
                              "options": {"disregardStatusWithLabelSelector": self.disregard,
                                          "cidr": "10.0.0.0/24", "podPlayStageParallelism": 4,
                                          "nodePlayStageParallelism": 4, "nodeLeaseParallelism": 4,
                                          "podsOnNodeSyncParallelism": 1, "enablePodsOnNodeSyncListPager": True,
                                          "enablePodsOnNodeSyncStreamWatch": False}})
        # kwokctl reads YAML; JSON is YAML.
        self.config_file.write_text("\n---\n".join(json.dumps(d, indent=2) for d in documents), encoding="utf-8")

    def create(self, timeout: float = 240) -> None:
        missing = missing_binaries(CONTROL_PLANE)
        if missing:
            raise KwokError(f"missing {', '.join(missing)} in {self.bin_dir}: run tools/testkit/bootstrap-engine.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        kwokctl = str(self.bin_dir / "kwokctl")
        self._run(kwokctl, "create", "cluster", "--name", self.name, "--config", str(self.config_file),
                  "--kubeconfig", str(self.kubeconfig), "--wait", f"{int(timeout)}s", timeout=timeout + 30)
        self._run(kwokctl, "scale", "node", "--name", self.name, "--replicas", str(self.nodes))
        self.wait_nodes_ready(timeout=120)

    def delete(self) -> None:
        kwokctl = str(self.bin_dir / "kwokctl")
        self._run(kwokctl, "delete", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig),
                  timeout=120, check=False)

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        kubectl = kubectl_binary()
        if kubectl is None:
            raise KwokError("no kubectl on PATH")
        return self._run(kubectl, "--kubeconfig", str(self.kubeconfig), *args, timeout=timeout,
                         check=check).stdout

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def wait_nodes_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.get_json("nodes")["items"]
            # Ready, and the node controller has lifted its start-up taint (node.kubernetes.io/not-ready).
            ready = [n for n in nodes if not n["spec"].get("taints")
                     and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))]
            if len(ready) >= self.nodes:
                return
            if time.monotonic() > deadline:
                raise KwokError(f"{len(ready)}/{self.nodes} nodes Ready and untainted after {timeout}s: "
                                f"{[(n['metadata']['name'], n['spec'].get('taints')) for n in nodes]}")
            time.sleep(1)

    def user_objects(self) -> list[str]:
        """Objects that a test left behind: everything outside the cluster's own defaults, as kind/ns/name."""
        kinds = "deployments,daemonsets,services,serviceaccounts,configmaps,secrets,customresourcedefinitions"
        items = self.get_json(kinds + ",namespaces", "--all-namespaces")["items"]
        leftovers = []
        for item in items:
            meta = item["metadata"]
            namespace = meta.get("namespace", "")
            kind = item["kind"]
            if namespace.startswith("kube-") or kind == "Namespace" and (
                    meta["name"] in ("default", "kube-system", "kube-public", "kube-node-lease")):
                continue
            if kind == "Service" and (namespace, meta["name"]) == ("default", "kubernetes"):
                continue
            if kind == "ServiceAccount" and meta["name"] == "default":
                continue
            if kind == "ConfigMap" and meta["name"] == "kube-root-ca.crt":
                continue
            leftovers.append(f"{kind}/{namespace}/{meta['name']}")
        return sorted(leftovers)

    @classmethod
    @contextmanager
    def start(cls, workdir: Path, nodes: int = 2, name: str | None = None,
              disregard: str | None = None) -> Iterator[KwokCluster]:
        cluster = cls(name=name or f"engine-{uuid.uuid4().hex[:8]}", workdir=Path(workdir), nodes=nodes,
                      disregard=disregard)
        try:
            cluster.create()
            yield cluster
        finally:
            cluster.delete()


def main() -> None:
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="kwok-"))
    started = time.monotonic()
    with KwokCluster.start(workdir) as cluster:
        print(f"cluster {cluster.name} up in {time.monotonic() - started:.1f}s")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(cluster.kubectl("get", "nodes", "-o", "wide"))
        input("Enter deletes the cluster: ")


if __name__ == "__main__":
    main()
