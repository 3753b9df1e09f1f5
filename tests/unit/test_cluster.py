"""The cluster: kind's config and lifecycle commands, and existing clusters through a kubeconfig/context."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from components.cluster import Cluster, ClusterArgs
from components.model.config import PROJECT
from components.model.kind import (
    KIND_CREATE,
    KIND_DELETE,
    KIND_UPDATE,
    kind_config,
    owner_record_path,
    stack_owner,
)
from components.model.outputs import verify_hints
from components.model.preflight import doctor_argv
from tests.conftest import REPO, base_config
from tools.testkit.mockgraph import build_component, run_stack


def test_kind_config_has_a_control_plane_and_the_configured_workers() -> None:
    config = base_config(cluster={"workers": 3, "nodeImage": "kindest/node:v1.35.0"})
    document = yaml.safe_load(kind_config(config.cluster))
    assert document["apiVersion"] == "kind.x-k8s.io/v1alpha4" and document["kind"] == "Cluster"
    roles = [n["role"] for n in document["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    assert {n["image"] for n in document["nodes"]} == {"kindest/node:v1.35.0"}


def test_allow_cgroup_v1_tells_every_kubelet_not_to_refuse_it() -> None:
    """kind applies a cluster-wide kubeadmConfigPatches entry to every node's kubeadm config."""
    assert "kubeadmConfigPatches" not in yaml.safe_load(kind_config(base_config().cluster))
    config = base_config(cluster={"allowCgroupV1": True})
    [patch] = yaml.safe_load(kind_config(config.cluster))["kubeadmConfigPatches"]
    assert yaml.safe_load(patch) == {"kind": "KubeletConfiguration", "failCgroupV1": False}
    # Nothing for a cluster the stack does not create: no kind config, and the preflight does not pass it on.
    existing = base_config(cluster={"provider": "existing", "context": "minikube", "allowCgroupV1": True})
    assert "--allow-cgroup-v1" not in doctor_argv(existing, "dev")
    assert "--allow-cgroup-v1" in doctor_argv(config, "dev")


def test_kind_maps_the_host_port_to_the_gateway_node_port() -> None:
    config = base_config()
    [mapping] = yaml.safe_load(kind_config(config.cluster))["nodes"][0]["extraPortMappings"]
    assert mapping["hostPort"] == config.cluster.ingress_host_port == 8080
    assert mapping["containerPort"] == config.cluster.ingress_node_port
    graph = run_stack(config)
    [gateway] = [r for r in graph.of_type("kubernetes:helm.sh/v3:Release")
                 if r.inputs["name"] == "istio-ingressgateway"]
    node_ports = {p.get("nodePort") for p in gateway.inputs["values"]["service"]["ports"]}
    assert mapping["containerPort"] in node_ports
    assert graph.outputs["ingressUrl"] == f"http://localhost:{mapping['hostPort']}/productpage"


def test_kind_cluster_lifecycle_commands() -> None:
    graph = run_stack(base_config())
    create = graph.get("cluster-kind").inputs
    assert "kind create cluster" in create["create"] and "--config -" in create["create"]
    assert "kind delete cluster" in create["delete"]
    config = base_config()
    assert create["environment"] == {"CLUSTER_NAME": config.cluster.name,
                                     "STACK_OWNER": stack_owner(PROJECT, "dev", str(REPO))}
    # An update (only the scripts changed) must not run the creation again: it would refuse the stack's own cluster.
    assert create["update"] == KIND_UPDATE
    assert yaml.safe_load(create["stdin"]) == yaml.safe_load(kind_config(base_config().cluster))
    assert "already exists" in create["create"]  # refuses to adopt a cluster it did not create
    # ...so a replacement (a change of workers, node image, ports) must delete the old cluster before creating anew.
    assert graph.get("cluster-kind").delete_before_replace
    assert not graph.get("cluster-kubeconfig").delete_before_replace
    read = graph.get("cluster-kubeconfig").inputs
    assert "kind get kubeconfig" in read["create"] and read["environment"] == {"CLUSTER_NAME": "ambient"}


def test_existing_cluster_creates_nothing_and_uses_kubeconfig_and_context(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    graph = run_stack(base_config(cluster={"provider": "existing", "kubeconfig": str(kubeconfig),
                                          "context": "minikube"}))
    commands = graph.of_type("command:local:Command")
    assert not [c for c in commands if "kind " in c.inputs["create"]]  # no cluster is created or deleted
    assert [c.name for c in commands] == ["smoke-verify"]
    provider = graph.get("cluster-provider").inputs
    assert provider["context"] == "minikube"
    assert provider["kubeconfig"]["value"] == kubeconfig.read_text()
    assert graph.outputs["clusterName"] == "minikube"
    assert graph.outputs["moreChecks"]["portForward"].startswith("kubectl --context minikube port-forward")
    assert all(c.startswith("kubectl --context minikube ") or "kubectl --context minikube " in c
               for c in graph.outputs["tryIt"])
    reference = f"{graph.get('cluster-provider').urn}::cluster-provider-id"
    assert all(r.provider == reference for r in graph if r.type.startswith("kubernetes:"))


def test_existing_cluster_by_context_only_uses_the_default_kubeconfig() -> None:
    config = base_config(cluster={"provider": "existing", "context": "minikube"})
    graph = build_component(lambda: Cluster("cluster", ClusterArgs(config.cluster)))
    provider = graph.get("cluster-provider").inputs
    assert provider["context"] == "minikube" and "kubeconfig" not in provider


def test_outputs() -> None:
    config = base_config()
    outputs = run_stack(config).outputs
    assert set(outputs) == {"ingressUrl", "clusterName", "kubeconfig", "istioVersion", "appNamespace", "tryIt",
                            "moreChecks", "verify"}
    assert outputs["verify"] == verify_hints(config)
    assert outputs["istioVersion"] == config.istio.version
    assert outputs["clusterName"] == config.cluster.name
    assert outputs["appNamespace"] == config.app.namespace
    assert outputs["moreChecks"]["viaHost"].startswith(f"curl -s {outputs['ingressUrl']} ")
    # tryIt: the tutorial's commands for this cluster (tests/unit/test_stack_files.py compares them with the page)
    assert all(f"--context kind-{config.cluster.name} " in command for command in outputs["tryIt"])


@pytest.mark.parametrize(("attached", "removed"), [("0", True), ("3", False), ("", False)])
def test_deleting_the_cluster_removes_kinds_network_once_nothing_uses_it(tmp_path: Path, attached: str,
                                                                         removed: bool) -> None:
    """kind leaves its shared `kind` network behind; the stack's delete removes it only when no container (another
    cluster's node, say) is attached, and never fails on it."""
    calls = tmp_path / "calls"
    for tool, answer in (("kind", ""), ("docker", attached)):
        script = tmp_path / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n'
                          + (f'[ "$1 $2" = "network inspect" ] && [ -n "{answer}" ] && echo {answer}\n'
                             if tool == "docker" else "") + "exit 0\n")
        script.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CLUSTER_NAME": "ambient"}
    subprocess.run(["sh", "-c", KIND_DELETE], env=env, check=True)
    ran = calls.read_text().splitlines()
    assert ran[0] == "kind delete cluster --name ambient"
    assert ("docker network rm kind" in ran) is removed


FAKE_KIND_CLUSTERS = """#!/bin/sh
echo "kind $*" >> "$CALLS"
case "$1 $2" in
  "get clusters") cat "$CLUSTERS" 2>/dev/null ;;
  "create cluster") [ -n "${INTERRUPTED:-}" ] && { echo "$4" >> "$CLUSTERS"; exit 130; }
    [ -z "${FAIL_CREATE:-}" ] || exit 1; echo "$4" >> "$CLUSTERS" ;;
  "delete cluster") grep -vx "$4" "$CLUSTERS" > "$CLUSTERS.new" 2>/dev/null; mv "$CLUSTERS.new" "$CLUSTERS" ;;
esac
"""


def kind_machine(tmp_path: Path, clusters: list[str], owner: str | None = None) -> dict[str, str]:
    """A fake kind (its clusters in a file) and a HOME; `owner`: the record a former creation left."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "kind").write_text(FAKE_KIND_CLUSTERS)
    (tmp_path / "kind").chmod(0o755)
    (tmp_path / "clusters").write_text("".join(f"{c}\n" for c in clusters))
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "CALLS": str(tmp_path / "calls"),
           "CLUSTERS": str(tmp_path / "clusters"), "CLUSTER_NAME": "ambient", "STACK_OWNER": "ambient-mesh/dev /src"}
    if owner is not None:
        record = Path(owner_record_path("ambient", env))
        record.parent.mkdir(parents=True)
        record.write_text(owner + "\n")
    return env


def sh(script: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], env={**env, **extra}, input="", capture_output=True, text=True,
                          check=False)


def test_creation_records_its_owner_and_refuses_a_cluster_it_did_not_make(tmp_path: Path) -> None:
    env = kind_machine(tmp_path, [])
    assert sh(KIND_CREATE, env).returncode == 0
    assert Path(owner_record_path("ambient", env)).read_text().strip() == env["STACK_OWNER"]
    someone_elses = kind_machine(tmp_path / "other", ["ambient"], owner="ambient-mesh/dev /another/checkout")
    done = sh(KIND_CREATE, someone_elses)
    assert done.returncode == 1 and "this stack did not create it" in done.stderr
    assert "kind delete" not in (tmp_path / "other" / "calls").read_text()


def test_creation_deletes_and_makes_again_its_own_half_made_cluster(tmp_path: Path) -> None:
    """`make up` stopped while kind made the nodes: the state holds no cluster, the record says it is this stack's."""
    env = kind_machine(tmp_path, ["ambient"], owner="ambient-mesh/dev /src")
    done = sh(KIND_CREATE, env)
    assert done.returncode == 0, done.stderr
    assert "creation that never finished" in done.stderr
    ran = (tmp_path / "calls").read_text().splitlines()
    assert ran.index("kind delete cluster --name ambient") < ran.index("kind create cluster --name ambient --config - "
                                                                        "--wait 120s")


def test_a_failed_creation_leaves_no_record_an_interrupted_one_keeps_it(tmp_path: Path) -> None:
    """kind removes the nodes of a creation that failed, not of one interrupted (Ctrl-C): those stay, and so must the
    record that names them the stack's (played for real on the kind tier)."""
    env = kind_machine(tmp_path, [])
    assert sh(KIND_CREATE, env, FAIL_CREATE="1").returncode == 1
    assert not Path(owner_record_path("ambient", env)).exists()
    interrupted = kind_machine(tmp_path / "interrupted", [])
    assert sh(KIND_CREATE, interrupted, INTERRUPTED="1").returncode == 1
    assert Path(owner_record_path("ambient", interrupted)).read_text().strip() == interrupted["STACK_OWNER"]


def test_an_update_records_the_owner_and_fails_on_a_vanished_cluster(tmp_path: Path) -> None:
    env = kind_machine(tmp_path, ["ambient"])
    assert sh(KIND_UPDATE, env).returncode == 0
    assert Path(owner_record_path("ambient", env)).read_text().strip() == env["STACK_OWNER"]
    assert "kind create" not in (tmp_path / "calls").read_text()
    gone = kind_machine(tmp_path / "gone", [])
    done = sh(KIND_UPDATE, gone)
    assert done.returncode == 1 and "is gone: make up creates it again" in done.stderr


def test_the_delete_removes_only_its_own_record(tmp_path: Path) -> None:
    mine = kind_machine(tmp_path, ["ambient"], owner="ambient-mesh/dev /src")
    assert sh(KIND_DELETE, mine).returncode == 0
    assert not Path(owner_record_path("ambient", mine)).exists()
    theirs = kind_machine(tmp_path / "other", [], owner="ambient-mesh/dev /another/checkout")
    sh(KIND_DELETE, theirs)
    assert Path(owner_record_path("ambient", theirs)).exists()
