"""Engine tests: the real Pulumi CLI, the real kubernetes provider and the stack's own program, through the
Automation API, offline, against a local kwok control plane (tests/engine/kwok.py).

Needs the engine tier that tools/testkit/bootstrap-engine.sh builds (the tests skip, saying so, when it is missing) and
the project's virtualenv (.venv). Each test module works on a throw-away copy of the project (Pulumi.yaml and a
stack file copied, program, components and .venv linked) with a file backend in a temp dir, so nothing in the
repo changes; PULUMI_HOME is the engine cache's own, and plugins are never downloaded.

Against kwok the stack runs with cluster.provider=existing and kwok's kubeconfig, istio.repository = the local
stand-in charts (tests/engine/charts) and gatewayApi.source = a local CRD file (tests/engine/gateway-api-crds.yaml).

Timings go to $AMBIENT_MESH_ENGINE_CACHE/engine-test-times.json (see bench/engine.md).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from tests.engine.kwok import CONTROL_PLANE, ENGINE, KwokCluster, engine_cache, missing_binaries

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHARTS = HERE / "charts"
GATEWAY_API_CRDS = HERE / "gateway-api-crds.yaml"
PROJECT = "ambient-mesh"
NOT_BUILT = missing_binaries(ENGINE) + [
    f"plugin {name} (in PULUMI_HOME)" for name in ("kubernetes",)
    if not any((engine_cache() / "pulumi-home" / "plugins").glob(f"resource-{name}-v*"))]

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(bool(NOT_BUILT), reason=f"engine tier not built ({', '.join(NOT_BUILT)} missing in "
                       f"{engine_cache() / 'bin'}): run tools/testkit/bootstrap-engine.sh"),
    pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").exists(),
                       reason="no project virtualenv (.venv): run make venv"),
]

TIMES: dict[str, float] = {}


def record(name: str, seconds: float) -> None:
    TIMES[name] = round(seconds, 1)
    path = engine_cache() / "engine-test-times.json"
    try:
        previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError:
        previous = {}
    previous.update(TIMES)
    path.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def has_plugin(name: str) -> bool:
    return any((engine_cache() / "pulumi-home" / "plugins").glob(f"resource-{name}-v*"))


def engine_env(backend: Path, cache: Path) -> dict[str, str]:
    """Offline Pulumi: own PULUMI_HOME, file backend, no update checks, no plugin downloads, empty passphrase."""
    return {
        "PATH": f"{engine_cache() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(engine_cache() / "pulumi-home"),
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        # The stack's download cache (Gateway API bundle): per test run, never the user's.
        "AMBIENT_MESH_CACHE_DIR": str(cache),
    }


def project_copy(workdir: Path, stack: str, config: dict[str, Any]) -> Path:
    """A copy of the project whose stack file holds `config` (ambient-mesh:* objects, keyed by section)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Pulumi.yaml", workdir / "Pulumi.yaml")
    for name in ("__main__.py", "components", ".venv"):
        (workdir / name).symlink_to(REPO / name)
    write_stack_config(workdir, stack, config)
    return workdir


def write_stack_config(workdir: Path, stack: str, config: dict[str, Any]) -> None:
    path = workdir / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    document = document or {}
    document["config"] = {f"{PROJECT}:{key}": value for key, value in config.items()}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def base_config() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text(encoding="utf-8"))
    prefix = f"{PROJECT}:"
    return {k[len(prefix):]: v for k, v in document["config"].items() if k.startswith(prefix)}


def kwok_config(kubeconfig: Path) -> dict[str, Any]:
    config = base_config()
    config["cluster"] = {**config["cluster"], "provider": "existing", "kubeconfig": str(kubeconfig)}
    config["istio"] = {**config["istio"], "repository": str(CHARTS)}
    config["gatewayApi"] = {**config["gatewayApi"], "source": str(GATEWAY_API_CRDS)}
    # The smoke check sends real traffic through the mesh: kwok's pods are fakes that serve nothing.
    config["verify"] = {**config.get("verify", {}), "smokeCheck": False}
    return config


def new_stack(workdir: Path, stack: str, backend: Path, cache: Path) -> auto.Stack:
    backend.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(workdir),
        pulumi_home=str(engine_cache() / "pulumi-home"),
        env_vars=engine_env(backend, cache),
        pulumi_command=auto.PulumiCommand(root=str(engine_cache())),
    )
    return auto.create_stack(stack, work_dir=str(workdir), opts=options)


def summary(result: Any) -> dict[str, int]:
    """Operation counts of a preview (change_summary) or an up/destroy (summary.resource_changes)."""
    changes = getattr(result, "change_summary", None)
    if changes is None:
        changes = result.summary.resource_changes
    return {getattr(op, "value", str(op)): count for op, count in (changes or {}).items()}


class Steps:
    """Collects each resource step (op, type, name) from the engine's event stream."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, str]] = []

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            op = getattr(pre.metadata.op, "value", str(pre.metadata.op))
            self.steps.append((op, pre.metadata.type, pre.metadata.urn.rsplit("::", 1)[-1]))

    def changes(self) -> list[tuple[str, str, str]]:
        return [step for step in self.steps if step[0] != "same"]


# --- the dev stack as a user has it ---------------------------------------------------------------------------


def test_dev_stack_preview_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi preview` of Pulumi.dev.yaml (kind mode, official chart repository) works with no network.

    Kind mode creates the cluster with command:local:Command; where the real command provider could not be built
    (bin/pulumi-resource-command.STANDIN exists) the project's stand-in serves that type.
    """
    if not has_plugin("command"):
        pytest.skip("no command provider plugin: github.com/pulumi/pulumi-command/provider is not served by the "
                    "module proxy (see bench/engine-bootstrap.md), and kind mode creates the cluster with it")
    from components.model.gateway_api import CACHE_ENV, cached_path  # the stack's own cache layout
    from components.model.validate import parse_config

    cache = tmp_path / "cache"
    config = base_config()
    # What a user's first (online) run leaves in the cache: the pinned Gateway API bundle, here our stand-in.
    monkeypatch.setenv(CACHE_ENV, str(cache))
    target = cached_path(parse_config(config).gateway_api.resolved_source)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(GATEWAY_API_CRDS, target)

    workdir = project_copy(tmp_path / "project", "dev", config)
    stack = new_stack(workdir, "dev", tmp_path / "backend", cache)
    steps = Steps()
    started = time.monotonic()
    result = stack.preview(on_event=steps)
    record("preview_dev_kind_mode_s", time.monotonic() - started)
    ops = summary(result)
    assert set(ops) <= {"create", "same"}, ops
    created = {name for op, _, name in steps.steps if op == "create"}
    assert {"cluster-kind", "istio-base", "istio-istiod", "istio-cni", "istio-ztunnel"} <= created, sorted(created)


# --- against kwok -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kwok(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokCluster]:
    missing = missing_binaries(CONTROL_PLANE)
    if missing:
        pytest.skip(f"kwok control plane not built ({', '.join(missing)} missing in {engine_cache() / 'bin'}): "
                    "run tools/testkit/bootstrap-engine.sh")
    started = time.monotonic()
    with KwokCluster.start(tmp_path_factory.mktemp("kwok"), nodes=2) as cluster:
        record("kwok_cluster_up_s", time.monotonic() - started)
        yield cluster


@pytest.fixture(scope="module")
def kwok_stack(kwok: KwokCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[auto.Stack, Path]]:
    root = tmp_path_factory.mktemp("engine")
    workdir = project_copy(root / "project", "engine", kwok_config(kwok.kubeconfig))
    stack = new_stack(workdir, "engine", root / "backend", root / "cache")
    yield stack, workdir
    # Whatever happened above, leave the cluster as it was (the kwok fixture then deletes it anyway).
    try:
        stack.destroy()
    except Exception as error:  # noqa: BLE001 - teardown reports, never masks the test's own failure
        print(f"teardown destroy failed: {error}")


def test_kwok_cluster_runs_a_deployment(kwok: KwokCluster) -> None:
    """The fake cluster itself: two untainted Ready nodes, and a Deployment's pods become Ready."""
    nodes = kwok.get_json("nodes")["items"]
    assert len(nodes) == 2
    assert all(not node["spec"].get("taints") for node in nodes)
    kwok.kubectl("create", "deployment", "probe", "--image=test.invalid/probe:1", "--replicas=2")
    kwok.kubectl("rollout", "status", "deployment/probe", "--timeout=60s")
    assert kwok.get_json("deployment", "probe")["status"].get("readyReplicas") == 2
    kwok.kubectl("delete", "deployment", "probe", "--wait=true")


def test_up_creates_everything(kwok: KwokCluster, kwok_stack: tuple[auto.Stack, Path]) -> None:
    stack, _ = kwok_stack
    started = time.monotonic()
    result = stack.up(on_output=print)
    record("up_from_empty_s", time.monotonic() - started)
    ops = summary(result)
    assert set(ops) <= {"create", "same"}, ops
    assert result.summary.result == "succeeded"

    def ready(kind: str, namespace: str, name: str) -> dict[str, Any]:
        return kwok.get_json(kind, name, "-n", namespace)["status"]

    assert ready("deployment", "istio-system", "istiod").get("readyReplicas") == 1
    assert ready("deployment", "istio-system", "istio-ingressgateway").get("readyReplicas") == 1
    for daemonset in ("istio-cni-node", "ztunnel"):
        status = ready("daemonset", "istio-system", daemonset)
        assert status["numberReady"] == status["desiredNumberScheduled"] == 2, status
    service = kwok.get_json("service", "istio-ingressgateway", "-n", "istio-system")["spec"]
    assert service["type"] == "NodePort"
    assert {p["name"]: p.get("nodePort") for p in service["ports"]}["http2"] == 30080
    pods = kwok.get_json("pods", "-n", "istio-system", "-l", "istio=ingressgateway")["items"]
    assert len(pods) == 1
    namespace = kwok.get_json("namespace", "default")["metadata"]["labels"]
    assert namespace.get("istio.io/dataplane-mode") == "ambient"
    for crd in ("gateways.networking.istio.io", "virtualservices.networking.istio.io",
                "httproutes.gateway.networking.k8s.io"):
        kwok.kubectl("get", "crd", crd)
    kwok.kubectl("get", "gateways.networking.istio.io", "-n", "default")
    outputs = stack.outputs()
    assert outputs, "the stack exports nothing"


def test_second_preview_reports_no_changes(kwok_stack: tuple[auto.Stack, Path]) -> None:
    stack, _ = kwok_stack
    steps = Steps()
    started = time.monotonic()
    result = stack.preview(on_event=steps)
    record("noop_preview_s", time.monotonic() - started)
    assert steps.changes() == []
    assert set(summary(result)) == {"same"}, summary(result)


def test_preview_with_the_policy_pack(kwok_stack: tuple[auto.Stack, Path], tmp_path: Path) -> None:
    """The CrossGuard pack (policy/) runs in the real engine, through the language host's RunPlugin, and passes."""
    if not (REPO / "policy" / "PulumiPolicy.yaml").is_file():
        pytest.skip("no policy pack in this checkout")
    stack, _ = kwok_stack
    pack = tmp_path / "policy"
    shutil.copytree(REPO / "policy", pack, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    # The pack's virtualenv (runtime option virtualenv: venv): the project's, which has pulumi-policy.
    (pack / "venv").symlink_to(REPO / ".venv")
    # Our stand-in charts are a local directory: the pack's own switch for air-gapped chart sources.
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"helm-release-chart-repository": {"localChartDirectories": [str(CHARTS)]}}),
                      encoding="utf-8")
    lines: list[str] = []
    started = time.monotonic()
    result = stack.preview(policy_packs=[str(pack)], policy_pack_configs=[str(config)], on_output=lines.append)
    record("preview_with_policy_pack_s", time.monotonic() - started)
    output = "\n".join(lines)
    assert set(summary(result)) == {"same"}, summary(result)
    # The engine lists each pack that ran, passed or not, under "Policies:".
    assert "Policies:" in output and "ambient-mesh@v" in output, output[-2000:]


def test_one_value_change_is_one_update(kwok: KwokCluster, kwok_stack: tuple[auto.Stack, Path]) -> None:
    """cluster.ingressNodePort feeds only the gateway release's values: one in-place update, no replacement."""
    stack, workdir = kwok_stack
    config = kwok_config(kwok.kubeconfig)
    config["cluster"] = {**config["cluster"], "ingressNodePort": 30081}
    write_stack_config(workdir, "engine", config)
    try:
        steps = Steps()
        started = time.monotonic()
        result = stack.preview(on_event=steps, diff=True)
        record("one_change_preview_s", time.monotonic() - started)
        ops = summary(result)
        assert steps.changes() == [("update", "kubernetes:helm.sh/v3:Release", "istio-ingress-gateway")], \
            steps.changes()
        assert ops.get("update") == 1, ops
        assert not set(ops) & {"replace", "create-replacement", "delete-replaced", "create", "delete"}, ops
    finally:
        write_stack_config(workdir, "engine", kwok_config(kwok.kubeconfig))


def test_destroy_leaves_the_cluster_clean(kwok: KwokCluster, kwok_stack: tuple[auto.Stack, Path]) -> None:
    stack, _ = kwok_stack
    before = (stack.export_stack().deployment or {}).get("resources", [])
    assert before, "nothing to destroy: test_up_creates_everything did not run"
    started = time.monotonic()
    result = stack.destroy()
    record("destroy_s", time.monotonic() - started)
    assert result.summary.result == "succeeded"
    assert (stack.export_stack().deployment or {}).get("resources", []) == []
    leftovers = kwok.user_objects()
    assert leftovers == [], leftovers
    labels = kwok.get_json("namespace", "default")["metadata"].get("labels", {})
    assert "istio.io/dataplane-mode" not in labels, labels
