"""tests/e2e/harness.py: the e2e suite's logic, without Docker, kind or the Pulumi CLI."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest
from pulumi.automation import events as auto_events

from components.model.config import ConfigError
from components.model.validate import parse_config
from components.stack import load_config
from tests.conftest import L4_ZERO_TRUST, base_config
from tests.e2e import harness
from tests.e2e.harness import EphemeralStack, Names, Step
from tools.verify import Result

NAMES = Names(stack="e2e-20260101-000000-cafe0123", cluster="am-e2e-cafe0123")


# --- prerequisites -------------------------------------------------------------------------------------------

@dataclass
class FakeRunner:
    """kind, kubectl and docker as recorded: a cluster that exists until `kind delete cluster` removes it."""

    clusters: list[str] = field(default_factory=list)
    docker_info: Result = Result((), 0, "28.2.2\n")
    delete_fails: bool = False
    calls: list[tuple[str, ...]] = field(default_factory=list)
    kubeconfig_modes: list[int] = field(default_factory=list)

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result:
        argv = tuple(argv)
        self.calls.append(argv)
        if argv[:2] == ("docker", "info"):
            return self.docker_info
        if argv[:3] == ("kind", "get", "clusters"):
            return Result(argv, 0, "".join(f"{c}\n" for c in self.clusters))
        if argv[:3] == ("kind", "get", "kubeconfig"):
            return Result(argv, 0, "apiVersion: v1\nkind: Config\n" if argv[-1] in self.clusters else "")
        if argv[:3] == ("kind", "delete", "cluster"):
            if self.delete_fails:
                return Result(argv, 1, "", "ERROR: failed to delete cluster")
            self.clusters.remove(argv[-1])
            return Result(argv, 0)
        if argv[0] == "kubectl":
            path = argv[argv.index("--kubeconfig") + 1]
            self.kubeconfig_modes.append(stat.S_IMODE(os.stat(path).st_mode))
            if "logs" in argv:
                return Result(argv, 0, "[pod/ztunnel-abcde/istio-proxy] 2026-01-01T00:00:00Z info access ...\n")
            return Result(argv, 0, f"output of {' '.join(argv[3:])}\n")
        raise AssertionError(f"unexpected command {argv}")

    def http_get(self, url: str, timeout: float = 10.0) -> Any:
        raise AssertionError("no HTTP here")

    def sleep(self, seconds: float) -> None:
        pass


def which_all(tool: str) -> str | None:
    return f"/usr/bin/{tool}"


def test_nothing_missing_when_every_tool_and_the_engine_are_there() -> None:
    assert harness.missing_prerequisites(FakeRunner(), which_all) == []
    assert harness.skip_reason([]) is None


def test_each_missing_tool_is_named() -> None:
    def which(tool: str) -> str | None:
        return None if tool in ("kind", "pulumi") else f"/usr/bin/{tool}"

    reasons = harness.missing_prerequisites(FakeRunner(), which)
    assert reasons == ["kind not found on PATH", "pulumi not found on PATH"]
    reason = harness.skip_reason(reasons)
    assert reason is not None and reason.endswith("kind not found on PATH; pulumi not found on PATH")


def test_a_docker_cli_without_an_engine_is_not_enough() -> None:
    runner = FakeRunner(docker_info=Result((), 1, "", "Cannot connect to the Docker daemon at "
                                                       "unix:///var/run/docker.sock. Is the docker daemon running?\n"))
    [reason] = harness.missing_prerequisites(runner, which_all)
    assert reason.startswith("the Docker engine is not reachable (`docker info` failed: Cannot connect")
    assert ("docker", "info", "--format", "{{.ServerVersion}}") in runner.calls
    # no docker at all: the engine is not asked
    runner = FakeRunner()
    reasons = harness.missing_prerequisites(runner, lambda t: None if t == "docker" else f"/usr/bin/{t}")
    assert reasons == ["docker not found on PATH"] and not runner.calls


def test_an_engine_that_answers_without_a_version_is_not_reachable() -> None:
    [reason] = harness.missing_prerequisites(FakeRunner(docker_info=Result((), 0, "\n")), which_all)
    assert "no server version" in reason


# --- names and config ----------------------------------------------------------------------------------------

def test_names_are_unique_dns_labels_that_fit_kind() -> None:
    first, second = harness.unique_names(), harness.unique_names()
    assert first != second and first.cluster != second.cluster
    for names in (first, second):
        assert re.fullmatch(r"e2e-\d{8}-\d{6}-[0-9a-f]{8}", names.stack)
        assert re.fullmatch(r"am-e2e-[0-9a-f]{8}", names.cluster) and len(names.cluster) <= 40
    fixed = harness.unique_names(suffix="cafe0123", now=1767225600)
    assert fixed == NAMES and fixed.context == "kind-am-e2e-cafe0123"
    with pytest.raises(ValueError):
        harness.unique_names(prefix="E2E_")


def test_free_port_is_a_bindable_host_port() -> None:
    port = harness.free_port()
    assert 1024 <= port <= 65535


def test_stack_config_is_the_dev_stack_with_its_own_cluster_and_port() -> None:
    raw = harness.stack_config(NAMES, 18080)
    dev = harness.read_stack_file(harness.DEV_STACK_FILE)
    assert raw["cluster"] == {**dev["cluster"], "provider": "kind", "name": "am-e2e-cafe0123",
                              "ingressHostPort": 18080}
    assert {k: v for k, v in raw.items() if k != "cluster"} == {k: v for k, v in dev.items() if k != "cluster"}
    config = parse_config(raw)
    assert config.cluster.name == NAMES.cluster and config.cluster.ingress_host_port == 18080


def test_stack_config_overrides_and_refuses_a_bad_config() -> None:
    raw = harness.stack_config(NAMES, 18080, overrides={"cluster": {"workers": 1}, "app": {"namespace": "bookinfo"}})
    assert raw["cluster"]["workers"] == 1 and raw["app"]["namespace"] == "bookinfo"
    assert raw["app"]["bookinfoTag"] == "1.20.3"
    with pytest.raises(ConfigError):
        harness.stack_config(NAMES, 18080, overrides={"cluster": {"workers": 99}})


def test_existing_cluster_keys_never_reach_the_kind_stack(tmp_path: Path) -> None:
    base = tmp_path / "Pulumi.x.yaml"
    base.write_text("config:\n  ambient-mesh:cluster:\n    provider: existing\n    context: minikube\n"
                    "    kubeconfig: /nonexistent\n")
    raw = harness.stack_config(NAMES, 18080, base_file=base)
    assert raw == {"cluster": {"provider": "kind", "name": NAMES.cluster, "ingressHostPort": 18080}}


def test_the_change_is_one_value_and_leaves_the_original_alone() -> None:
    raw = harness.stack_config(NAMES, 18080)
    changed = harness.with_change(raw)
    assert changed["app"]["bookinfoTag"] == "1.20.2" and raw["app"]["bookinfoTag"] == "1.20.3"
    assert {k: v for k, v in changed.items() if k != "app"} == {k: v for k, v in raw.items() if k != "app"}
    with pytest.raises(ValueError):
        harness.with_change(changed)


def test_automation_config_reaches_the_program_with_its_types() -> None:
    raw = harness.stack_config(NAMES, 18080)
    values = harness.automation_config(raw)
    assert set(values) == {f"ambient-mesh:{section}" for section in raw}
    assert json.loads(values["ambient-mesh:cluster"])["workers"] == 2
    # what the program does with them: pulumi.Config.get_object, then the stack's own parser
    pulumi.runtime.set_all_config(values)
    try:
        assert load_config() == parse_config(raw)
    finally:
        pulumi.runtime.set_all_config({})


def test_stack_env_is_a_private_file_backend(tmp_path: Path) -> None:
    phrase = "-".join(["correct", "horse", "battery"])
    env = harness.stack_env(tmp_path, phrase)
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == phrase


def test_expected_denied_follows_the_security_config() -> None:
    assert harness.expected_denied(base_config(security=L4_ZERO_TRUST)) == ["notsleep"]
    assert harness.expected_denied(base_config(security={"productpageClients": [], "defaultDeny": False})) == []
    assert harness.expected_denied(base_config(security={"productpageClients": [], "defaultDeny": True})) == \
        ["sleep", "notsleep"]
    assert harness.expected_denied(base_config(security={"productpageClients": ["ingress", "sleep", "notsleep"]})) == []
    assert harness.expected_denied(base_config(security={"productpageClients": ["ingress", "default/notsleep"]})) \
        == ["sleep"]
    # through a waypoint: the waypoint checks the L4 clients itself, or its L7 rule where there is one
    assert harness.expected_denied(base_config(waypoint={"mode": "namespace"}, security=L4_ZERO_TRUST)) == ["notsleep"]
    assert harness.expected_denied(base_config(waypoint={"mode": "namespace"},
                                              security={**L4_ZERO_TRUST, "l7Clients": ["sleep"]})) == ["notsleep"]


def test_verify_command_reads_the_stack_and_states_the_expectations(tmp_path: Path) -> None:
    report = tmp_path / "verify-report.json"
    argv = harness.verify_command(NAMES, base_config(security=L4_ZERO_TRUST), {"kubeconfig": "x"}, report,
                                  python="python3")
    assert argv == ["python3", "-m", "tools.verify", "--stack", NAMES.stack, "--json", str(report),
                    "--expect-denied", "notsleep"]
    from tools import verify

    args = verify.parse_args(argv[3:])
    assert args.stack == NAMES.stack and args.expect_denied == ["notsleep"] and not args.no_stack_outputs
    with_waypoint = harness.verify_command(NAMES, base_config(waypoint={"mode": "namespace"}), {}, report)
    assert with_waypoint[-2:] == ["--waypoint", "waypoint"]
    # once the stack exports its own expectations, verify reads them from there
    assert harness.verify_command(NAMES, base_config(), {"verify": {}}, report, "py")[-2:] == ["--json", str(report)]


# --- diffs ---------------------------------------------------------------------------------------------------

URN = "urn:pulumi:e2e::ambient-mesh::ambient-mesh:bookinfo:Bookinfo$kubernetes:apps/v1:Deployment::"


def event(op: auto_events.OpType, name: str, type_: str = "kubernetes:apps/v1:Deployment") -> Any:
    metadata = auto_events.StepEventMetadata(op=op, urn=URN + name, type=type_, provider="")
    return auto_events.EngineEvent(sequence=1, timestamp=0,
                                   resource_pre_event=auto_events.ResourcePreEvent(metadata=metadata))


def test_steps_come_from_the_engines_pre_events() -> None:
    events = [auto_events.EngineEvent(sequence=0, timestamp=0),  # e.g. a diagnostic: no resource step
              event(auto_events.OpType.SAME, "stack-root", "pulumi:pulumi:Stack"),
              event(auto_events.OpType.UPDATE, "bookinfo-details-v1")]
    steps = harness.steps_from_events(events)
    assert steps == [Step("same", URN + "stack-root", "pulumi:pulumi:Stack"),
                     Step("update", URN + "bookinfo-details-v1", "kubernetes:apps/v1:Deployment")]
    assert steps[1].name == "bookinfo-details-v1"
    assert harness.changes(steps) == [steps[1]]


def test_no_changes_passes_only_on_a_summary_of_sames() -> None:
    harness.assert_no_changes({auto_events.OpType.SAME: 57})
    harness.assert_no_changes({"same": 57, "update": 0})
    steps = [Step("update", URN + "istio-istiod", "kubernetes:helm.sh/v3:Release")]
    with pytest.raises(AssertionError, match=r"wants changes \{'update': 1\}: update kubernetes:helm.sh/v3:Release "
                                             r"istio-istiod"):
        harness.assert_no_changes({auto_events.OpType.SAME: 56, auto_events.OpType.UPDATE: 1}, steps)


BOOKINFO_DEPLOYMENTS = {f"bookinfo-{d}" for d in ("details-v1", "ratings-v1", "reviews-v1", "reviews-v2",
                                                  "reviews-v3", "productpage-v1")}


@pytest.mark.tools  # three whole graphs: the harness's prediction, end to end
def test_the_mocks_predict_which_resources_the_change_touches() -> None:
    raw = harness.stack_config(NAMES, 18080)
    # The smoke check re-runs on any config change: it checks what the change did. New Bookinfo images are pulled
    # on the host and loaded into the nodes by the app's load before the Deployments change (cluster.preloadImages).
    assert harness.predicted_changes(raw, harness.with_change(raw)) == BOOKINFO_DEPLOYMENTS | {
        "smoke-verify", "images-pull", "images-load-app"}  # the mesh's images do not change
    assert harness.predicted_changes(raw, raw) == set()
    port = harness.predicted_changes(raw, harness.stack_config(NAMES, 18081))
    assert "cluster-kind" in port  # a new host port means a new kind cluster


def test_the_diff_must_be_the_predicted_one() -> None:
    steps = [Step("same", URN + "bookinfo-details-v1-account", "kubernetes:core/v1:ServiceAccount")]
    steps += [Step("update", URN + name, "kubernetes:apps/v1:Deployment") for name in sorted(BOOKINFO_DEPLOYMENTS)]
    assert len(harness.assert_diff(steps, BOOKINFO_DEPLOYMENTS)) == 6
    replaced = [Step("replace", s.urn, s.type) if s.name.endswith("productpage-v1") else s for s in steps]
    harness.assert_diff(replaced, BOOKINFO_DEPLOYMENTS)
    with pytest.raises(AssertionError, match="unexpected changes: update kubernetes:helm.sh/v3:Release istio-cni"):
        harness.assert_diff(steps + [Step("update", URN + "istio-cni", "kubernetes:helm.sh/v3:Release")],
                            BOOKINFO_DEPLOYMENTS)
    with pytest.raises(AssertionError, match="expected changes missing: bookinfo-reviews-v3"):
        harness.assert_diff([s for s in steps if not s.name.endswith("reviews-v3")], BOOKINFO_DEPLOYMENTS)
    with pytest.raises(AssertionError, match="deletions: kubernetes:apps/v1:Deployment bookinfo-ratings-v1"):
        harness.assert_diff([Step("delete", s.urn, s.type) if s.name.endswith("ratings-v1") else s for s in steps],
                            BOOKINFO_DEPLOYMENTS)


# --- the ephemeral stack and its teardown ----------------------------------------------------------------------

@dataclass
class FakeStack:
    names: Names
    env: Mapping[str, str]
    runner: FakeRunner
    up_error: Exception | None = None
    destroy_error: Exception | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.names.stack

    @property
    def workspace(self) -> FakeStack:
        return self

    def set_all_config(self, config: Any, *, path: bool = False) -> None:
        self.calls.append(("config", config))

    def up(self, **kwargs: Any) -> Any:
        self.calls.append(("up", None))
        self.runner.clusters.append(self.names.cluster)
        if self.up_error:
            raise self.up_error
        return SimpleNamespace(outputs={"kubeconfig": SimpleNamespace(value="apiVersion: v1\n", secret=True),
                                        "clusterName": SimpleNamespace(value=self.names.cluster, secret=False)})

    def preview(self, **kwargs: Any) -> Any:
        self.calls.append(("preview", kwargs["diff"]))
        kwargs["on_event"](event(auto_events.OpType.SAME, "bookinfo-details-v1"))
        return SimpleNamespace(change_summary={auto_events.OpType.SAME: 1})

    def destroy(self, **kwargs: Any) -> Any:
        self.calls.append(("destroy", None))
        if self.destroy_error:
            raise self.destroy_error
        self.runner.clusters.remove(self.names.cluster)

    def remove_stack(self, name: str, force: bool | None = None) -> None:
        self.calls.append(("remove_stack", (name, force)))


@pytest.fixture
def world(tmp_path: Path) -> Any:
    runner = FakeRunner()
    made: list[FakeStack] = []

    def make(**faults: Any) -> EphemeralStack:
        def factory(names: Names, env: Mapping[str, str]) -> FakeStack:
            stack = FakeStack(names, env, runner, **faults)
            made.append(stack)
            return stack
        return EphemeralStack(NAMES, {"app": {"bookinfoTag": "1.20.3"}}, runner=runner, factory=factory,
                              to_config=harness.automation_config, artifacts=tmp_path / "artifacts",
                              log=lambda line: None)
    return SimpleNamespace(make=make, runner=runner, stacks=made, artifacts=tmp_path / "artifacts")


def test_a_successful_run_leaves_nothing_behind(world: Any) -> None:
    with world.make() as e2e:
        state = e2e.state_dir
        outputs = e2e.up()
        assert outputs["clusterName"] == NAMES.cluster and e2e.kubeconfig == "apiVersion: v1\n"
        result, steps = e2e.preview()
        harness.assert_no_changes(result.change_summary, steps)
        e2e.destroy()
        assert not harness.cluster_exists(world.runner, NAMES.cluster)
    [stack] = world.stacks
    assert stack.env["PULUMI_BACKEND_URL"] == f"file://{state}" and len(stack.env["PULUMI_CONFIG_PASSPHRASE"]) > 20
    assert stack.calls[0] == ("config", {"ambient-mesh:app": '{"bookinfoTag": "1.20.3"}'})
    assert [c[0] for c in stack.calls] == ["config", "up", "preview", "destroy", "remove_stack"]
    assert stack.calls[-1] == ("remove_stack", (NAMES.stack, False))
    assert not state.exists() and not world.artifacts.exists()  # no diagnostics on success
    assert not any(c[:2] == ("kind", "delete") for c in world.runner.calls)


def test_a_failure_saves_the_ztunnel_logs_and_still_tears_down(world: Any) -> None:
    with pytest.raises(RuntimeError, match="verify failed"), world.make() as e2e:
        e2e.up()
        raise RuntimeError("verify failed")
    [stack] = world.stacks
    assert [c[0] for c in stack.calls] == ["config", "up", "destroy", "remove_stack"]
    assert (world.artifacts / "ztunnel.log").read_text().startswith("[pod/ztunnel-abcde/istio-proxy]")
    assert (world.artifacts / "pods.txt").exists() and (world.artifacts / "events.txt").exists()
    kubectl = [c for c in world.runner.calls if c[0] == "kubectl"]
    logs = next(c for c in kubectl if "logs" in c)
    assert logs[3:] == ("logs", "-n", "istio-system", "-l", "app=ztunnel", "--tail=-1", "--prefix",
                        "--max-log-requests=50")
    assert set(world.runner.kubeconfig_modes) == {0o600}
    assert not Path(logs[2]).exists()  # the kubeconfig file is gone
    assert NAMES.cluster not in world.runner.clusters


def test_a_failed_destroy_forces_the_stack_out_and_deletes_the_cluster(world: Any) -> None:
    with pytest.raises(AssertionError) as raised, world.make(destroy_error=RuntimeError("engine error")) as e2e:
        e2e.up()
    message = str(raised.value)
    assert message.startswith("e2e teardown: pulumi destroy: engine error")
    assert f"kind cluster {NAMES.cluster} was still there after destroy" in message
    [stack] = world.stacks
    assert stack.calls[-1] == ("remove_stack", (NAMES.stack, True))
    assert ("kind", "delete", "cluster", "--name", NAMES.cluster) in world.runner.calls
    assert NAMES.cluster not in world.runner.clusters


def test_teardown_problems_never_hide_the_original_failure(world: Any) -> None:
    world.runner.delete_fails = True
    lines: list[str] = []
    e2e = world.make(destroy_error=RuntimeError("engine error"))
    e2e.log = lines.append
    with pytest.raises(KeyError, match="outputs"), e2e:
        e2e.up()
        raise KeyError("outputs")
    assert any(line.startswith("e2e teardown problems") and "failed to delete cluster" in line for line in lines)


def test_a_failed_up_is_destroyed_too_and_kind_gives_the_kubeconfig_for_the_logs(world: Any) -> None:
    with pytest.raises(RuntimeError, match="smoke check FAILED"), \
            world.make(up_error=RuntimeError("smoke check FAILED")) as e2e:
        e2e.up()
    [stack] = world.stacks
    assert [c[0] for c in stack.calls] == ["config", "up", "destroy", "remove_stack"]
    assert ("kind", "get", "kubeconfig", "--name", NAMES.cluster) in world.runner.calls
    assert (world.artifacts / "ztunnel.log").exists()


def test_no_cluster_no_diagnostics(world: Any) -> None:
    with pytest.raises(RuntimeError, match="before any cluster"), world.make() as e2e:
        raise RuntimeError("before any cluster")
    assert e2e.kubeconfig is None and not world.artifacts.exists()
    assert not any(c[:3] == ("kind", "get", "kubeconfig") for c in world.runner.calls)


def test_ci_requires_the_suite_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(harness.REQUIRED_ENV, raising=False)
    assert not harness.must_run()
    monkeypatch.setenv(harness.REQUIRED_ENV, "1")
    assert harness.must_run()
    monkeypatch.setenv(harness.REQUIRED_ENV, "0")
    assert not harness.must_run()


def test_a_leftover_stack_file_is_removed(world: Any) -> None:
    leftover = harness.REPO / f"Pulumi.{NAMES.stack}.yaml"
    try:
        with world.make() as e2e:
            leftover.write_text("config: {}\n")
            e2e.up()
            e2e.destroy()
        assert not leftover.exists()
    finally:
        leftover.unlink(missing_ok=True)


def test_keep_state_for_debugging(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(harness.KEEP_ENV, "1")
    with world.make() as e2e:
        e2e.up()
        e2e.destroy()
    assert e2e.state_dir is not None and e2e.state_dir.exists()
    import shutil

    shutil.rmtree(e2e.state_dir)


def test_cluster_exists_reads_kind_get_clusters() -> None:
    runner = FakeRunner(clusters=["ambient", "am-e2e-cafe0123"])
    assert harness.cluster_exists(runner, "am-e2e-cafe0123") and not harness.cluster_exists(runner, "am-e2e")

    class Broken(FakeRunner):
        def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result:
            return Result(tuple(argv), 1, "", "kind: docker not running")

    with pytest.raises(RuntimeError, match="kind get clusters"):
        harness.cluster_exists(Broken(), "x")


def test_the_e2e_suite_is_marked_and_skips_with_a_reason() -> None:
    text = (harness.REPO / "tests" / "e2e" / "test_e2e.py").read_text()
    assert "pytestmark = pytest.mark.e2e" in text and "pytest.skip(reason)" in text
    assert "harness.must_run()" in text
