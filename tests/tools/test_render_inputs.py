"""The render covers every input that shapes `pulumi up`, not only the Kubernetes objects: the kind cluster's config,
the local commands (their scripts and triggers) and the provider, so that a change of any of them shows in a diff."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, base_config
from tools import render

pytestmark = pytest.mark.tools


def files(**overrides: dict) -> dict[str, render.Rendered]:
    return {item.filename: item for item in render.render_config(base_config(**overrides))}


def test_kind_cluster_is_rendered_from_the_cluster_config() -> None:
    cluster = files()["kindcluster-_-ambient.yaml"]
    assert cluster.role == "kindcluster" and cluster.resource_name == "cluster-kind"
    assert cluster.body["apiVersion"] == "kind.x-k8s.io/v1alpha4" and cluster.body["kind"] == "Cluster"
    control_plane, *workers = cluster.body["nodes"]
    assert len(workers) == 2
    assert control_plane["extraPortMappings"] == [{"containerPort": 30080, "hostPort": 8080,
                                                   "listenAddress": "127.0.0.1", "protocol": "TCP"}]

    changed = files(cluster={"workers": 1, "nodeImage": "kindest/node:v1.36.1", "ingressHostPort": 9090})
    body = changed["kindcluster-_-ambient.yaml"].body
    assert len(body["nodes"]) == 2 and {node["image"] for node in body["nodes"]} == {"kindest/node:v1.36.1"}
    assert body["nodes"][0]["extraPortMappings"][0]["hostPort"] == 9090


def test_commands_are_rendered_with_their_triggers_as_fields() -> None:
    rendered = files()
    kind = rendered["command-_-cluster-kind.yaml"].body
    # The kind config is its own file: the command refers to it instead of repeating it.
    assert kind["stdin"] == kind["triggers"][0] == "(the kind config: kindcluster-_-ambient.yaml)"
    assert "kind create cluster" in kind["create"] and "kind delete cluster" in kind["delete"]
    smoke = rendered["command-_-smoke-verify.yaml"].body
    assert smoke["triggers"]["cluster"]["workers"] == 2 and smoke["triggers"]["istio"]["version"]
    assert smoke["dir"] == "." and smoke["environment"] == render.REDACTED  # the kubeconfig
    assert "--host-url http://localhost:8080/productpage" in smoke["create"]
    assert f"dir: {REPO}" not in rendered["command-_-smoke-verify.yaml"].text


def test_provider_is_rendered_and_names_its_cluster() -> None:
    kind = files()["provider-_-cluster-provider.yaml"].body
    assert kind == {"package": "kubernetes", "kubeconfig": render.REDACTED}
    existing = files(cluster={"provider": "existing", "context": "minikube"})
    assert existing["provider-_-cluster-provider.yaml"].body["context"] == "minikube"
    assert not [name for name in existing if name.startswith(("kindcluster-", "command-_-cluster-"))]


def test_all_stacks_renders_every_stack_file(tmp_path: Path) -> None:
    out = tmp_path / "render"
    fixture = str(REPO / "tests" / "fixtures" / "gateway-api-crds.yaml")
    assert render.main(["--all-stacks", "--out", str(out), "--gateway-api-crds", fixture]) == 0
    stacks = sorted(path.name for path in out.iterdir())
    shipped = ["dev", "getting-started", "zero-trust"]
    assert stacks == sorted(render.stack_name(path) for path in render.stack_files()) == shipped
    for stack in stacks:
        index = yaml.safe_load((out / stack / render.INDEX).read_text(encoding="utf-8"))
        assert index["stackFile"] == f"Pulumi.{stack}.yaml"
    zero_trust = yaml.safe_load((out / "zero-trust" / "kindcluster-_-ambient-zt.yaml").read_text(encoding="utf-8"))
    assert zero_trust["nodes"][0]["extraPortMappings"][0]["hostPort"] == 8081


def test_stack_files_leave_out_what_git_ignores(tmp_path: Path) -> None:
    """An interrupted e2e run's Pulumi.e2e-*.yaml (ignored by .gitignore) is not a stack of the repository."""
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("Pulumi.e2e-*.yaml\n", encoding="utf-8")
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.new.yaml", "Pulumi.e2e-leftover.yaml"):
        (tmp_path / name).write_text("config: {}\n", encoding="utf-8")
    subprocess.run(["git", "add", "Pulumi.dev.yaml"], cwd=tmp_path, check=True)
    assert [path.name for path in render.stack_files(tmp_path)] == ["Pulumi.dev.yaml", "Pulumi.new.yaml"]
    (tmp_path / ".git").rename(tmp_path / "not-git")  # an archive: every stack file there is one
    assert len(render.stack_files(tmp_path)) == 3
