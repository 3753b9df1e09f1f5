"""Engine tests: the real Pulumi CLI, the real kubernetes provider and the stack's own program, through the
Automation API, offline, against a local kwok control plane (tests/engine/kwok.py).

Needs the engine tier that tools/testkit/bootstrap-engine.sh builds (the tests skip, saying so, when it is missing) and
the project's virtualenv (.venv). Each test module works on a throw-away copy of the project (Pulumi.yaml and a
stack file copied, program, components and .venv linked) with a file backend in a temp dir, so nothing in the
repo changes; PULUMI_HOME is the engine cache's own, and plugins are never downloaded.

Against kwok, every Pulumi.<stack>.yaml of the repo runs with cluster.provider=existing and kwok's kubeconfig,
istio.repository = Istio's own charts and gatewayApi.source = Gateway API's own CRDs (both extracted from pinned,
checksum-verified Go modules by tests/engine/upstream.py), and the real istiod (pilot-discovery, out of cluster:
tests/engine/istiod.py) as webhook server and Gateway controller. The program is the repo's own, run through
tests/engine/engine_main.py, which adds the engine tier's only values override (istiod's webhook URLs).

Timings go to $AMBIENT_MESH_ENGINE_CACHE/engine-test-times.json (see bench/engine.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from tests.engine import istiod as istiod_module
from tests.engine import upstream
from tests.engine.istiod import Istiod
from tests.engine.kwok import (
    CONTROL_PLANE,
    ENGINE,
    KwokCluster,
    engine_cache,
    kubectl_binary,
    missing_binaries,
    missing_plugins,
    pulumi_env,
)

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = "ambient-mesh"
# Every stack file the repo ships comes up (and goes) against kwok.
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO.glob("Pulumi.*.yaml"))
NOT_BUILT = missing_binaries(ENGINE + ("pilot-discovery",)) + missing_plugins()

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(bool(NOT_BUILT), reason=f"engine tier not built ({', '.join(NOT_BUILT)} missing in "
                       f"{engine_cache() / 'bin'}): run tools/testkit/bootstrap-engine.sh"),
    pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").exists(),
                       reason="no project virtualenv (.venv): run make venv"),
    pytest.mark.skipif(bool(upstream.missing()), reason="Istio's charts / Gateway API's CRDs not extracted: run "
                       "tools/testkit/bootstrap-engine.sh upstream-charts"),
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


def engine_env(backend: Path, cache: Path) -> dict[str, str]:
    """Offline Pulumi: own PULUMI_HOME, file backend, no update checks, no plugin downloads, empty passphrase."""
    return {
        **pulumi_env(),
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        # The stack's download cache (Gateway API bundle): per test run, never the user's.
        "AMBIENT_MESH_CACHE_DIR": str(cache),
    }


def project_copy(workdir: Path, stack: str, config: dict[str, Any],
                 tier_values: dict[str, Any] | None = None) -> Path:
    """A copy of the project whose stack file holds `config` (ambient-mesh:* objects, keyed by section).

    With `tier_values` (chart -> Helm values) the program runs through tests/engine/engine_main.py, which
    merges them into those releases; without, it is the repo's __main__.py as is.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Pulumi.yaml", workdir / "Pulumi.yaml")
    for name in ("components", ".venv"):
        (workdir / name).symlink_to(REPO / name)
    if tier_values is None:
        (workdir / "__main__.py").symlink_to(REPO / "__main__.py")
    else:
        (workdir / "program.py").symlink_to(REPO / "__main__.py")
        shutil.copy(HERE / "engine_main.py", workdir / "__main__.py")
        (workdir / "engine-tier-values.json").write_text(json.dumps(tier_values, indent=2), encoding="utf-8")
    write_stack_config(workdir, stack, config)
    return workdir


def write_stack_config(workdir: Path, stack: str, config: dict[str, Any]) -> None:
    path = workdir / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    document = document or {}
    document["config"] = {f"{PROJECT}:{key}": value for key, value in config.items()}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def stack_file_config(stack: str) -> dict[str, Any]:
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    prefix = f"{PROJECT}:"
    return {k[len(prefix):]: v for k, v in document["config"].items() if k.startswith(prefix)}


def dev_config() -> dict[str, Any]:
    return stack_file_config("dev")


def local_sources(config: dict[str, Any], istio_label: str | None = None) -> dict[str, Any]:
    """The stack's Istio version and Gateway API version, taken from the cache of upstream's own files."""
    label = istio_label or config["istio"]["version"]
    version = config["gatewayApi"]["version"]
    if label not in upstream.ISTIO_SNAPSHOTS:
        pytest.skip(f"no Istio chart snapshot for istio.version {label} (tests/engine/upstream.py)")
    if version not in upstream.GATEWAY_API:
        pytest.skip(f"gatewayApi.version {version} is not pinned in tests/engine/upstream.py")
    config = dict(config)
    config["istio"] = {**config["istio"], "version": label, "repository": str(upstream.charts_dir(label))}
    config["gatewayApi"] = {**config["gatewayApi"], "source": str(upstream.gateway_api_crds(version))}
    if (config.get("observability") or {}).get("addons"):
        config["observability"] = {**config["observability"], "source": str(upstream.addons_dir(label))}
    return config


def kwok_config(kubeconfig: Path, stack: str = "dev", istio_label: str | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    config = stack_file_config(stack)
    for section, values in (overrides or {}).items():
        config[section] = {**config.get(section, {}), **values}
    config = local_sources(config, istio_label)
    config["cluster"] = {**config["cluster"], "provider": "existing", "kubeconfig": str(kubeconfig)}
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
        """Every step that changes something (a --refresh preview also reports each read as a `refresh` step)."""
        return [step for step in self.steps if step[0] not in ("same", "refresh")]


# --- the dev stack as a user has it ---------------------------------------------------------------------------


def test_dev_stack_preview_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi preview` of Pulumi.dev.yaml (kind mode, official chart repository) works with no network.

    Kind mode creates the cluster with command:local:Command; where the real command provider could not be built
    (bin/pulumi-resource-command.STANDIN exists) the project's stand-in serves that type.
    """
    if missing_plugins(("command",)):
        pytest.skip("no command provider plugin: github.com/pulumi/pulumi-command/provider is not served by the "
                    "module proxy (see bench/engine-bootstrap.md), and kind mode creates the cluster with it")
    from components.model.gateway_api import CACHE_ENV, cached_path  # the stack's own cache layout
    from components.model.validate import parse_config

    cache = tmp_path / "cache"
    config = dev_config()
    # What a user's first (online) run leaves in the cache: the pinned Gateway API bundle, here the same CRDs
    # from the pinned Go module.
    monkeypatch.setenv(CACHE_ENV, str(cache))
    target = cached_path(parse_config(config).gateway_api.resolved_source)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(upstream.gateway_api_crds(config["gatewayApi"]["version"]), target)

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


# --- every stack file against kwok, with Istio's charts and CRDs and the real istiod -------------------------


@dataclass
class Engine:
    """One stack file brought up against its own kwok cluster, with the real istiod beside it."""

    name: str
    kwok: KwokCluster
    istiod: Istiod
    stack: auto.Stack
    workdir: Path
    backend: Path
    cache: Path

    def config(self, istio_label: str | None = None) -> dict[str, Any]:
        return kwok_config(self.kwok.kubeconfig, self.name, istio_label)

    def write_config(self, config: dict[str, Any]) -> None:
        write_stack_config(self.workdir, "engine", config)


@contextmanager
def engine_for(stack_name: str, root: Path, istio_label: str | None = None,
               graph_variant: dict[str, dict[str, list[str]]] | None = None,
               overrides: dict[str, dict[str, Any]] | None = None) -> Iterator[Engine]:
    missing = missing_binaries(CONTROL_PLANE)
    if missing:
        pytest.skip(f"kwok control plane not built ({', '.join(missing)} missing in {engine_cache() / 'bin'}): "
                    "run tools/testkit/bootstrap-engine.sh")
    started = time.monotonic()
    with KwokCluster.start(root / "kwok", nodes=2, disregard=istiod_module.LABEL) as cluster:
        record("kwok_cluster_up_s", time.monotonic() - started)
        with Istiod(cluster, root / "istiod") as istiod:
            workdir = project_copy(root / "project", "engine",
                                   kwok_config(cluster.kubeconfig, stack_name, istio_label, overrides),
                                   tier_values=istiod.chart_values())
            if graph_variant:
                (workdir / "engine-graph-variant.json").write_text(json.dumps(graph_variant), encoding="utf-8")
            stack = new_stack(workdir, "engine", root / "backend", root / "cache")
            engine = Engine(stack_name, cluster, istiod, stack, workdir, root / "backend", root / "cache")
            try:
                yield engine
            finally:
                # Whatever happened above, leave the cluster as it was (the cluster is deleted anyway).
                try:
                    stack.destroy()
                except Exception as error:  # noqa: BLE001 - teardown reports, never masks the test's own failure
                    print(f"teardown destroy failed: {error}")
                print("istiod:\n  " + "\n  ".join(istiod.events))


@pytest.fixture(scope="module", params=STACKS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with engine_for(request.param, tmp_path_factory.mktemp(f"engine-{request.param}")) as made:
        yield made


def test_kwok_cluster_runs_a_deployment(engine: Engine) -> None:
    """The fake cluster itself: two untainted Ready nodes, and a Deployment's pods become Ready."""
    kwok = engine.kwok
    nodes = kwok.get_json("nodes")["items"]
    assert len(nodes) == 2
    assert all(not node["spec"].get("taints") for node in nodes)
    kwok.kubectl("create", "deployment", "probe", "--image=test.invalid/probe:1", "--replicas=2")
    kwok.kubectl("rollout", "status", "deployment/probe", "--timeout=60s")
    assert kwok.get_json("deployment", "probe")["status"].get("readyReplicas") == 2
    kwok.kubectl("delete", "deployment", "probe", "--wait=true")


ISTIO_KIND_PREFIXES = ("kubernetes:networking.istio.io/", "kubernetes:security.istio.io/",
                       "kubernetes:gateway.networking.k8s.io/")


def kubectl_path() -> str:
    path = kubectl_binary()
    if path is None:
        pytest.skip("no kubectl")
    return path


def created_custom_objects(stack: auto.Stack) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every Istio and Gateway API object in the stack's state."""
    out = []
    for resource in (stack.export_stack().deployment or {}).get("resources", []):
        if resource.get("type", "").startswith(ISTIO_KIND_PREFIXES):
            outputs = resource.get("outputs") or {}
            meta = outputs.get("metadata") or {}
            out.append((f"{outputs.get('kind')}.{outputs.get('apiVersion', '').split('/')[0]}",
                        meta.get("namespace", ""), meta.get("name", "")))
    return sorted(out)


def test_up_creates_everything(engine: Engine) -> None:
    kwok, stack = engine.kwok, engine.stack
    config = engine.config()
    started = time.monotonic()
    result = stack.up(on_output=print)
    record(f"up_from_empty_{engine.name}_s", time.monotonic() - started)
    ops = summary(result)
    assert set(ops) <= {"create", "same"}, ops
    assert result.summary.result == "succeeded"
    assert engine.istiod.errors == [], engine.istiod.errors

    def status(kind: str, namespace: str, name: str) -> dict[str, Any]:
        return dict(kwok.get_json(kind, name, "-n", namespace)["status"])

    # Every release of Istio's own charts installed, and Helm's waits ended: workloads Ready.
    assert status("deployment", "istio-system", "istiod").get("readyReplicas") == 1
    for daemonset in ("istio-cni-node", "ztunnel"):
        ready = status("daemonset", "istio-system", daemonset)
        assert ready["numberReady"] == ready["desiredNumberScheduled"] == 2, ready
    releases = kwok.get_json("secrets", "-n", "istio-system", "-l", "owner=helm,status=deployed")["items"]
    deployed = {item["metadata"]["labels"]["name"] for item in releases}
    assert {"istio-base", "istiod", "istio-cni", "ztunnel"} <= deployed, deployed
    # istiod was Ready only once the real pilot-discovery served.
    assert engine.istiod.ready_at is not None, engine.istiod.events

    if config["app"]["ingress"] == "istio":
        assert "istio-ingressgateway" in deployed
        assert status("deployment", "istio-system", "istio-ingressgateway").get("readyReplicas") == 1
        service = kwok.get_json("service", "istio-ingressgateway", "-n", "istio-system")["spec"]
        assert service["type"] == "NodePort"
        assert {p["name"]: p.get("nodePort") for p in service["ports"]}["http2"] == 30080
        pods = kwok.get_json("pods", "-n", "istio-system", "-l", "istio=ingressgateway")["items"]
        assert len(pods) == 1
        # The chart's image "auto" is istiod's to fill in: the real injector did.
        images = {c["name"]: c["image"] for c in pods[0]["spec"]["containers"]}
        assert images.get("istio-proxy") not in (None, "auto"), images

    namespace = kwok.get_json("namespace", config["app"]["namespace"])["metadata"]["labels"]
    assert namespace.get("istio.io/dataplane-mode") == "ambient"

    # Every Istio and Gateway API object of the stack went through the real CRDs (and istiod's validation).
    created = created_custom_objects(stack)
    assert created, "the stack created no Istio or Gateway API object"
    for kind, ns, name in created:
        kwok.kubectl("get", kind, name, *(("-n", ns) if ns else ()))

    if config["waypoint"]["mode"] != "none":
        # The real istiod is the Gateway controller: it deployed the waypoint and reported it Programmed.
        name, ns = config["waypoint"]["name"], config["app"]["namespace"]
        gateway = kwok.get_json("gateways.gateway.networking.k8s.io", name, "-n", ns)
        conditions = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
        assert conditions.get("Programmed") == "True", gateway["status"]
        deployment = kwok.get_json("deployment", name, "-n", ns)
        assert deployment["status"].get("readyReplicas") == 1
        owners = {o["kind"] for o in deployment["metadata"].get("ownerReferences", [])}
        assert owners == {"Gateway"}, owners
    assert stack.outputs(), "the stack exports nothing"


# Objects the real CRDs (schema, CEL rules, list-map keys) or istiod's validation webhook must refuse:
# (what is wrong, the object, what the API server's answer says).
REFUSED: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("AuthorizationPolicy action MAYBE: the CRD's enum",
     {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": "bad-action"},
      "spec": {"action": "MAYBE"}},
     'Unsupported value: "MAYBE"'),
    ("PeerAuthentication portLevelMtls without a selector: a CEL rule of the CRD",
     {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "bad-ports"},
      "spec": {"portLevelMtls": {"9080": {"mode": "DISABLE"}}}},
     "portLevelMtls requires selector"),
    ("HTTPRoute PathPrefix without a leading slash: a CEL rule of the CRD",
     {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "bad-path"},
      "spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "static"}}]}]}},
     "value must be an absolute path"),
    ("Gateway with two listeners named http: the CRD's list-map key",
     {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "bad-listeners"},
      "spec": {"gatewayClassName": "istio", "listeners": [
          {"name": "http", "port": 80, "protocol": "HTTP"}, {"name": "http", "port": 8080, "protocol": "HTTP"}]}},
     "Duplicate value"),
    ("VirtualService whose route has no destination host: istiod's validation webhook",
     {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "bad-route"},
      "spec": {"hosts": ["productpage"], "http": [{"route": [{"destination": {"host": ""}}]}]}},
     'validation.istio.io" denied the request: configuration is invalid: empty domain name not allowed'),
)


@pytest.mark.parametrize("case", [case[0] for case in REFUSED])
def test_the_real_validation_refuses_a_bad_object(engine: Engine, case: str, tmp_path: Path) -> None:
    """The API server, with Istio's and Gateway API's own CRDs and istiod's webhook, refuses each bad object."""
    _, obj, expected = next(c for c in REFUSED if c[0] == case)
    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps({**obj, "metadata": {**obj["metadata"], "namespace": "default"}}),
                        encoding="utf-8")
    result = engine.kwok._run(kubectl_path(), "--kubeconfig", str(engine.kwok.kubeconfig), "create", "-f",
                              str(manifest), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert expected in result.stderr, result.stderr


def test_second_preview_reports_no_changes(engine: Engine) -> None:
    steps = Steps()
    started = time.monotonic()
    result = engine.stack.preview(on_event=steps)
    record(f"noop_preview_{engine.name}_s", time.monotonic() - started)
    assert steps.changes() == []
    assert set(summary(result)) == {"same"}, summary(result)


def test_preview_with_the_policy_pack(engine: Engine, tmp_path: Path) -> None:
    """The CrossGuard pack (policy/) runs in the real engine, through the language host's RunPlugin, and passes."""
    if not (REPO / "policy" / "PulumiPolicy.yaml").is_file():
        pytest.skip("no policy pack in this checkout")
    pack = tmp_path / "policy"
    shutil.copytree(REPO / "policy", pack, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    # The pack's virtualenv (runtime option virtualenv: venv): the project's, which has pulumi-policy.
    (pack / "venv").symlink_to(REPO / ".venv")
    # The stack's own pack config when it has one, plus the pack's switch for a local chart directory.
    own = REPO / "policy" / f"config.{engine.name}.json"
    settings = json.loads(own.read_text(encoding="utf-8")) if own.is_file() else {}
    charts = engine.config()["istio"]["repository"]
    settings["helm-release-chart-repository"] = {"localChartDirectories": [charts]}
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps(settings), encoding="utf-8")
    lines: list[str] = []
    started = time.monotonic()
    result = engine.stack.preview(policy_packs=[str(pack)], policy_pack_configs=[str(config)],
                                  on_output=lines.append)
    record(f"preview_with_policy_pack_{engine.name}_s", time.monotonic() - started)
    output = "\n".join(lines)
    assert set(summary(result)) == {"same"}, summary(result)
    # The engine lists each pack that ran, passed or not, under "Policies:".
    assert "Policies:" in output and "ambient-mesh@v" in output, output[-2000:]


def test_one_value_change_is_one_update(engine: Engine) -> None:
    """cluster.ingressNodePort feeds only the gateway release's values: one in-place update, no replacement."""
    config = engine.config()
    if config["app"]["ingress"] != "istio":
        pytest.skip("the stack has no Istio ingress gateway")
    config["cluster"] = {**config["cluster"], "ingressNodePort": 30081}
    engine.write_config(config)
    try:
        steps = Steps()
        started = time.monotonic()
        result = engine.stack.preview(on_event=steps, diff=True)
        record(f"one_change_preview_{engine.name}_s", time.monotonic() - started)
        ops = summary(result)
        assert steps.changes() == [("update", "kubernetes:helm.sh/v3:Release", "istio-ingress-gateway")], \
            steps.changes()
        assert ops.get("update") == 1, ops
        assert not set(ops) & {"replace", "create-replacement", "delete-replaced", "create", "delete"}, ops
    finally:
        engine.write_config(engine.config())


# What a destroy leaves on purpose, not the stack's doing: the ConfigMaps istiod itself writes into every namespace
# it watches (its CA's root certificate and revocation list), and Istio's CRDs, which base's chart marks
# helm.sh/resource-policy: keep so that an uninstall never deletes the Istio objects users made (Istio's docs
# delete them by hand). Checked against the cluster: a kept CRD must carry the annotation.
ISTIOD_CONFIGMAPS = ("istio-ca-root-cert", "istio-ca-crl")


def kept_by_design(kwok: KwokCluster, leftovers: list[str]) -> tuple[list[str], list[str]]:
    """(kept on purpose, everything else) of kwok.user_objects()."""
    crds = {item["metadata"]["name"]: item["metadata"].get("annotations", {})
            for item in kwok.get_json("customresourcedefinitions")["items"]}
    kept: list[str] = []
    other: list[str] = []
    for item in leftovers:
        kind, _, name = item.split("/", 2)
        istiod_own = kind == "ConfigMap" and name in ISTIOD_CONFIGMAPS
        kept_crd = (kind == "CustomResourceDefinition" and name.endswith(".istio.io")
                    and crds.get(name, {}).get("helm.sh/resource-policy") == "keep")
        (kept if istiod_own or kept_crd else other).append(item)
    return kept, other


def test_destroy_leaves_the_cluster_clean(engine: Engine) -> None:
    kwok, stack = engine.kwok, engine.stack
    before = (stack.export_stack().deployment or {}).get("resources", [])
    assert before, "nothing to destroy: test_up_creates_everything did not run"
    timeline = Timeline()
    started = time.monotonic()
    result = stack.destroy(on_event=timeline)
    record(f"destroy_{engine.name}_s", time.monotonic() - started)
    assert result.summary.result == "succeeded"
    assert (stack.export_stack().deployment or {}).get("resources", []) == []
    # Destroy runs the graph backwards: what needs a release goes before it (the ambient label before ztunnel and
    # istio-cni; cni, ztunnel and the gateway before istiod; istiod before base's CRDs).
    print("destroy order:", timeline.release_order())
    # The rules between what this stack has (getting-started has no Istio ingress gateway release).
    present = {str(r.get("urn", "")).rsplit("::", 1)[-1] for r in before}
    rules = tuple(rule for rule in DESTROY_RULES if set(rule) <= present)
    assert rules and timeline.order_violations(rules) == [], timeline.release_order()
    namespace = engine.config()["app"]["namespace"]
    kept, leftovers = kept_by_design(kwok, kwok.user_objects())
    print("kept by design:\n  " + "\n  ".join(kept))
    assert leftovers == [], "\n".join(leftovers)
    labels = kwok.get_json("namespace", namespace)["metadata"].get("labels", {})
    assert "istio.io/dataplane-mode" not in labels, labels


# --- observability: Istio's own add-ons -------------------------------------------------------------------------

ADDONS = ("prometheus", "kiali", "grafana")


def test_istios_addons_are_accepted_by_a_real_api_server(tmp_path: Path) -> None:
    """Istio's samples/addons of the pinned snapshot (not stand-ins), through the getting-started stack with every
    add-on on: each object created by the real API server, each Deployment rolled out (kwok's pods are fakes)."""
    with engine_for("getting-started", tmp_path, overrides={"observability": {"addons": list(ADDONS)}}) as engine:
        result = engine.stack.up(on_output=print)
        assert result.summary.result == "succeeded"
        label = engine.config()["istio"]["version"]
        for addon in ADDONS:
            documents = [d for d in yaml.safe_load_all(
                (upstream.addons_dir(label) / f"{addon}.yaml").read_text(encoding="utf-8")) if d]
            for doc in documents:
                namespace = doc["metadata"].get("namespace")
                engine.kwok.kubectl("get", doc["kind"], doc["metadata"]["name"],
                                    *(("-n", namespace) if namespace else ()))
            status = engine.kwok.get_json("deployment", addon, "-n", "istio-system")["status"]
            assert status.get("readyReplicas") == 1, (addon, status)
        destroyed = engine.stack.destroy()
        assert destroyed.summary.result == "succeeded"


# --- upgrade: the older chart set, then the pinned one ----------------------------------------------------------

RELEASE = "kubernetes:helm.sh/v3:Release"
ISTIO_RELEASES = ("istio-base", "istio-istiod", "istio-cni", "istio-ztunnel", "istio-ingress-gateway")
# Istio's "Upgrade with Helm" (ambient): CRDs before the control plane, the control plane before istio-cni and
# ztunnel (which never run newer than istiod), the gateway after istiod. (before, after): `after` may start only
# once `before` is done.
ISTIO_UPGRADE_RULES = (
    ("istio-base", "istio-istiod"),
    ("istio-istiod", "istio-cni"),
    ("istio-istiod", "istio-ztunnel"),
    ("istio-istiod", "istio-ingress-gateway"),
)
# Destroy: (first, then): `then` may start only once `first` is deleted.
DESTROY_RULES = (
    ("ambient-label", "istio-ztunnel"),
    ("ambient-label", "istio-cni"),
    ("istio-cni", "istio-istiod"),
    ("istio-ztunnel", "istio-istiod"),
    ("istio-ingress-gateway", "istio-istiod"),
    ("istio-istiod", "istio-base"),
    # Istio's Getting Started's clean-up: the waypoint label before the waypoint; Gateway API objects before CRDs.
    ("waypoint-namespace-label", "waypoint-gateway"),
    ("waypoint-gateway", "gateway-api-gateways.gateway.networking.k8s.io"),
    ("traffic-reviews-route", "gateway-api-httproutes.gateway.networking.k8s.io"),
)
# The graph components/istio.py had before main's fe0c2c7 ("istio-cni after istiod"): cni needed only its namespace.
# Measured beside the stack's own graph through engine_main.py, to show what the edge buys and costs.
GRAPHS: dict[str, dict[str, dict[str, list[str]]] | None] = {
    "stack": None,
    "cni-not-after-istiod": {"remove": {"istio-cni": ["istio-istiod"]}},
}


class Timeline:
    """Each resource step's start (resource_pre_event) and end (res_outputs_event), in the engine's event order,
    with the time the Automation API delivered it."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events: list[tuple[int, str, str, str, float]] = []  # (sequence, start|done, op, name, seconds)

    def __call__(self, event: Any) -> None:
        for attribute, kind in (("resource_pre_event", "start"), ("res_outputs_event", "done")):
            payload = getattr(event, attribute, None)
            if payload is not None and payload.metadata is not None:
                meta = payload.metadata
                self.events.append((int(getattr(event, "sequence", 0) or 0), kind,
                                    getattr(meta.op, "value", str(meta.op)), meta.urn.rsplit("::", 1)[-1],
                                    round(time.monotonic() - self.started, 2)))

    def index(self, kind: str, name: str) -> int | None:
        return next((i for i, event in enumerate(self.events) if event[1] == kind and event[3] == name), None)

    def span(self, name: str) -> tuple[float, float] | None:
        start, done = self.index("start", name), self.index("done", name)
        if start is None or done is None:
            return None
        return self.events[start][4], self.events[done][4]

    def order_violations(self, rules: tuple[tuple[str, str], ...]) -> list[str]:
        out = []
        for before, after in rules:
            done, start = self.index("done", before), self.index("start", after)
            if done is None or start is None:
                out.append(f"{before} or {after}: no step in the event stream")
            elif start < done:
                out.append(f"{after} started (event {start}) before {before} was done (event {done})")
        return out

    def release_order(self) -> list[str]:
        return [f"{kind} {op} {name}" for _, kind, op, name, _ in self.events
                if (name in ISTIO_RELEASES or name == "ambient-label") and op != "same"]


def release_chart_versions(stack: auto.Stack) -> dict[str, str]:
    """Pulumi name -> the chart version Helm reports deployed, from the stack's state."""
    out = {}
    for resource in (stack.export_stack().deployment or {}).get("resources", []):
        if resource.get("type") == RELEASE:
            status = (resource.get("outputs") or {}).get("status") or {}
            out[resource["urn"].rsplit("::", 1)[-1]] = str(status.get("version"))
    return out


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_upgrade_previews_updates_only_and_applies_istio_order(graph: str, tmp_path: Path) -> None:
    """up with the older chart set (istio.version 1.31.0: April's 1.31 snapshot), then switch to the pinned one.

    The preview shows in-place updates of the five releases only; up applies them in Istio's order (CNI and
    ztunnel never newer than istiod) with the stack's graph. `cni-not-after-istiod` is the graph before istio-cni
    waited for istiod: the same check must catch it rolling CNI first. Both graphs' install times are recorded.
    """
    with engine_for("dev", tmp_path, istio_label="1.31.0", graph_variant=GRAPHS[graph]) as engine:
        install = Timeline()
        started = time.monotonic()
        engine.stack.up(on_event=install)
        record(f"upgrade_install_{graph}_graph_s", time.monotonic() - started)
        spans = {name: install.span(name) for name in ISTIO_RELEASES + ("ambient-label",)}
        record(f"upgrade_install_{graph}_graph_last_release_done_s",
               max(span[1] for name, span in spans.items() if span and name in ISTIO_RELEASES))
        record(f"upgrade_install_{graph}_graph_ambient_label_done_s", (spans["ambient-label"] or (0, 0))[1])
        print(f"install ({graph} graph), seconds from up's start:", json.dumps(spans))
        assert install.order_violations(ISTIO_UPGRADE_RULES[:1]) == []
        assert release_chart_versions(engine.stack) == {name: "1.31.0" for name in ISTIO_RELEASES}

        engine.write_config(engine.config("1.31.1"))
        steps = Steps()
        started = time.monotonic()
        preview = engine.stack.preview(on_event=steps, diff=True)
        record(f"upgrade_preview_{graph}_graph_s", time.monotonic() - started)
        ops = summary(preview)
        assert not set(ops) & {"replace", "create-replacement", "delete-replaced", "create", "delete"}, ops
        assert sorted(steps.changes()) == sorted(("update", RELEASE, name) for name in ISTIO_RELEASES), \
            steps.changes()

        upgrade = Timeline()
        started = time.monotonic()
        result = engine.stack.up(on_event=upgrade)
        record(f"upgrade_up_{graph}_graph_s", time.monotonic() - started)
        assert set(summary(result)) <= {"update", "same"}, summary(result)
        print(f"upgrade ({graph} graph):", upgrade.release_order())
        assert release_chart_versions(engine.stack) == {name: "1.31.1" for name in ISTIO_RELEASES}
        violations = upgrade.order_violations(ISTIO_UPGRADE_RULES)
        if graph == "stack":
            assert violations == [], (violations, upgrade.release_order())
        else:
            assert violations == ["istio-cni started (event {}) before istio-istiod was done (event {})".format(
                upgrade.index("start", "istio-cni"), upgrade.index("done", "istio-istiod"))], violations


# --- faults: an interrupted up, drift, destroy after a partial up -------------------------------------------------


def start_up_cli(engine: Engine, log: Path) -> subprocess.Popen[bytes]:
    """`pulumi up` as a user runs it, in its own session (a terminal's process group), output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(engine_cache() / "bin" / "pulumi"), "up", "--yes", "--skip-preview", "--non-interactive",
             "--stack", "engine"],
            cwd=engine.workdir, env={**os.environ, **engine_env(engine.backend, engine.cache)}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)


def helm_releases(kwok: KwokCluster) -> dict[str, str]:
    """Helm's own records in the cluster: release name -> status (its Secrets, latest revision)."""
    items = kwok.get_json("secrets", "-A", "-l", "owner=helm")["items"]
    latest: dict[str, tuple[int, str]] = {}
    for item in items:
        labels = item["metadata"]["labels"]
        revision = int(labels.get("version", "0"))
        if revision >= latest.get(labels["name"], (-1, ""))[0]:
            latest[labels["name"]] = (revision, labels.get("status", ""))
    return {name: status for name, (_, status) in latest.items()}


def interrupt_up(engine: Engine, sig: signal.Signals, log: Path) -> tuple[int, dict[str, str]]:
    """Start `pulumi up`, signal its process group while Helm installs istiod, wait; (exit code, Helm's records)."""
    process = start_up_cli(engine, log)
    deadline = time.monotonic() + 180
    while "istiod" not in helm_releases(engine.kwok):
        assert process.poll() is None, log.read_text(encoding="utf-8")[-3000:]
        assert time.monotonic() < deadline, "istiod's Helm install never started"
        time.sleep(0.2)
    # The CLI's plugins (language host, provider) run in process groups of their own: note them now and end the
    # ones the interrupted CLI left behind (the language host outlives even a SIGINT; a user's would linger too).
    plugins = descendants(process.pid)
    os.killpg(process.pid, sig)
    code = process.wait(timeout=300)
    time.sleep(1)
    for pid in plugins:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            print(f"ended pid {pid}, left running by the interrupted CLI")
    return code, helm_releases(engine.kwok)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children first."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text(encoding="utf-8").split()]
        except OSError:
            continue
        for child in children:
            out += [child, *descendants(child)]
    return out


def pending_operations(stack: auto.Stack) -> list[str]:
    deployment = stack.export_stack().deployment or {}
    return [f"{op.get('type')} {op['resource']['urn'].rsplit('::', 1)[-1]}"
            for op in deployment.get("pending_operations") or []]


def release_names_in_state(stack: auto.Stack) -> set[str]:
    return {str((r.get("outputs") or {}).get("name")) for r in (stack.export_stack().deployment or {}).get(
        "resources", []) if r.get("type") == RELEASE}


def forget_orphaned_releases(engine: Engine) -> list[str]:
    """Helm records of releases the stack's state does not hold (a create the killed CLI never saved): delete the
    record, keep the objects; the next `up` installs the release again and Helm adopts them (they carry its
    ownership annotations). `helm uninstall` would do too but also delete the objects."""
    known = release_names_in_state(engine.stack)
    orphans = [name for name in helm_releases(engine.kwok) if name not in known]
    for name in orphans:
        engine.kwok.kubectl("delete", "secret", "-n", "istio-system", "-l", f"owner=helm,name={name}")
    return orphans


def converges(engine: Engine) -> dict[str, int]:
    """`up` succeeds and a preview after it has nothing to do; the up's operation counts."""
    result = engine.stack.up()
    assert result.summary.result == "succeeded"
    steps = Steps()
    engine.stack.preview(on_event=steps)
    assert steps.changes() == [], steps.changes()
    return summary(result)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The zero-trust stack (AuthorizationPolicies, a waypoint) on its own kwok cluster, for the fault tests."""
    with engine_for("zero-trust", tmp_path_factory.mktemp("faults")) as made:
        yield made


def test_up_interrupted_by_sigint_then_up_converges(faults: Engine, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group) while Helm installs istiod: Pulumi cancels Helm's wait, saves what it
    did, releases the lock; the next plain `up` finishes the job (it upgrades the release Helm left failed)."""
    code, releases = interrupt_up(faults, signal.SIGINT, tmp_path / "up.log")
    assert code != 0
    assert pending_operations(faults.stack) == []
    print("Helm after SIGINT:", releases)
    started = time.monotonic()
    ops = converges(faults)
    record("up_after_sigint_s", time.monotonic() - started)
    assert set(ops) <= {"create", "update", "same"}, ops


def test_up_killed_then_cancel_refresh_up_converges(faults: Engine, tmp_path: Path) -> None:
    """SIGKILL of the process group mid-up: the stack stays locked, the creates in flight stay pending, Helm may
    hold a release the state never got. Recovery (README): pulumi cancel; pulumi refresh --clear-pending-creates;
    forget the Helm records of releases the state lacks; pulumi up."""
    faults.stack.destroy()
    code, releases = interrupt_up(faults, signal.SIGKILL, tmp_path / "up.log")
    assert code == -signal.SIGKILL
    print("Helm after SIGKILL:", releases, "pending:", pending_operations(faults.stack))
    with pytest.raises(auto.ConcurrentUpdateError, match="currently locked"):
        faults.stack.refresh()
    faults.stack.cancel()
    assert pending_operations(faults.stack), "a killed up left no pending operation"
    faults.stack.refresh(clear_pending_creates=True)
    assert pending_operations(faults.stack) == []
    print("orphaned Helm releases forgotten:", forget_orphaned_releases(faults))
    started = time.monotonic()
    converges(faults)
    record("up_after_sigkill_recovery_s", time.monotonic() - started)


def test_drift_is_previewed_and_restored(faults: Engine) -> None:
    """kubectl removes the ambient label and deletes an AuthorizationPolicy: preview --refresh shows both, up
    --refresh puts both back."""
    kwok, stack = faults.kwok, faults.stack
    namespace = faults.config()["app"]["namespace"]
    policies = [(r["outputs"]["metadata"]["name"], r["urn"].rsplit("::", 1)[-1])
                for r in (stack.export_stack().deployment or {}).get("resources", [])
                if r.get("type") == "kubernetes:security.istio.io/v1:AuthorizationPolicy"
                and r["outputs"]["metadata"].get("namespace") == namespace]
    assert policies, "the stack has no AuthorizationPolicy in the app namespace"
    policy, policy_resource = policies[0]
    kwok.kubectl("label", "namespace", namespace, "istio.io/dataplane-mode-")
    kwok.kubectl("delete", "authorizationpolicies.security.istio.io", policy, "-n", namespace)

    steps = Steps()
    preview = stack.preview(refresh=True, on_event=steps)
    changed = {(op, name) for op, _, name in steps.changes()}
    print("preview --refresh:", sorted(changed), summary(preview))
    assert ("update", "ambient-label") in changed, changed
    assert ("create", policy_resource) in changed, changed

    started = time.monotonic()
    result = stack.up(refresh=True)
    record("up_refresh_restores_drift_s", time.monotonic() - started)
    assert result.summary.result == "succeeded"
    labels = kwok.get_json("namespace", namespace)["metadata"].get("labels", {})
    assert labels.get("istio.io/dataplane-mode") == "ambient", labels
    kwok.kubectl("get", "authorizationpolicies.security.istio.io", policy, "-n", namespace)
    steps = Steps()
    stack.preview(refresh=True, on_event=steps)
    assert steps.changes() == [], steps.changes()


def test_destroy_after_a_partial_up(faults: Engine, tmp_path: Path) -> None:
    """An up cut short by SIGINT, then destroy: it succeeds and leaves only what Istio keeps by design."""
    faults.stack.destroy()
    code, _ = interrupt_up(faults, signal.SIGINT, tmp_path / "up.log")
    assert code != 0
    partial = (faults.stack.export_stack().deployment or {}).get("resources", [])
    assert partial, "the interrupted up saved nothing"
    result = faults.stack.destroy()
    assert result.summary.result == "succeeded"
    kept, leftovers = kept_by_design(faults.kwok, faults.kwok.user_objects())
    assert leftovers == [], "\n".join(leftovers)
