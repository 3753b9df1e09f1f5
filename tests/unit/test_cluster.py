"""The cluster: kind's config and lifecycle commands, and existing clusters through a kubeconfig/context."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from components.cluster import Cluster, ClusterArgs
from components.model.kind import KIND_DELETE, kind_config
from components.model.outputs import verify_hints
from components.model.preflight import doctor_argv
from tests.conftest import base_config
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
    assert create["environment"] == {"CLUSTER_NAME": "ambient"}
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
