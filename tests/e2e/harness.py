"""The e2e suite's own logic: prerequisites, unique names, the stack's config, diff assertions and teardown.

It has no cluster of its own to test against here, so everything that decides something lives in plain functions
and one context manager, unit-tested in tests/unit/test_e2e_harness.py with fakes. tests/e2e/test_e2e.py only
strings them together against a real kind cluster.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast

from components.model.config import PROJECT, StackConfig, read_stack_file
from components.model.policy import expected_denied
from components.model.validate import parse_config
from tools.verify import ISTIO_NAMESPACE, Result, Runner, SystemRunner

REPO = Path(__file__).resolve().parents[2]
DEV_STACK_FILE = REPO / "Pulumi.dev.yaml"
# Offline stand-in for the Gateway API bundle, used only to predict a diff under mocks.
GATEWAY_API_FIXTURE = REPO / "tests" / "fixtures" / "gateway-api-crds.yaml"
ARTIFACTS_ENV = "E2E_ARTIFACTS_DIR"
KEEP_ENV = "E2E_KEEP_STATE"
REQUIRED_ENV = "E2E_REQUIRED"
# The one value the suite changes to check a diff: Bookinfo's image tag. Previewed, never applied; it changes the
# images of Bookinfo's Deployments and nothing else (no label carries the tag).
CHANGE = ("app", "bookinfoTag", "1.20.2")
NO_CHANGE_OPS = {"same", "read"}
PREREQUISITES = ("docker", "kind", "kubectl", "pulumi")


# --- prerequisites -------------------------------------------------------------------------------------------

def missing_prerequisites(runner: Runner | None = None,
                          which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Why the suite cannot run here, one reason per missing piece; empty when it can."""
    runner = runner or SystemRunner()
    reasons = [f"{tool} not found on PATH" for tool in PREREQUISITES if which(tool) is None]
    if which("docker") is not None:
        info = runner.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
        if info.returncode != 0 or not info.stdout.strip():
            said = (info.stderr.strip().splitlines() or ["no server version"])[0]
            reasons.append(f"the Docker engine is not reachable (`docker info` failed: {said})")
    return reasons


def must_run() -> bool:
    """CI sets E2E_REQUIRED=1: there a missing prerequisite fails the suite instead of skipping it."""
    return os.environ.get(REQUIRED_ENV, "") not in ("", "0", "false")


def skip_reason(reasons: list[str]) -> str | None:
    if not reasons:
        return None
    return "e2e needs Docker with a running engine, kind, kubectl and the Pulumi CLI: " + "; ".join(reasons)


# --- names and config ----------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Names:
    stack: str
    cluster: str

    @property
    def context(self) -> str:
        return f"kind-{self.cluster}"


def unique_names(prefix: str = "e2e", suffix: str | None = None, now: float | None = None) -> Names:
    """A stack and a kind cluster that no other run (parallel CI jobs, a developer's dev stack) uses."""
    suffix = suffix or secrets.token_hex(4)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    names = Names(stack=f"{prefix}-{stamp}-{suffix}", cluster=f"am-{prefix}-{suffix}")
    if not (_DNS_LABEL.match(names.cluster) and len(names.cluster) <= 40 and _DNS_LABEL.match(names.stack)):
        raise ValueError(f"prefix {prefix!r} gives invalid names {names}")
    return names


def free_port() -> int:
    """A host port nothing listens on now, for kind's ingress mapping (8080 may be taken on a shared runner)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stack_config(names: Names, host_port: int, base_file: Path = DEV_STACK_FILE,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The dev stack's config with this run's own kind cluster and host port; validated by the stack's parser."""
    raw = copy.deepcopy(read_stack_file(base_file))
    cluster = {k: v for k, v in (raw.get("cluster") or {}).items() if k not in ("kubeconfig", "context")}
    cluster.update(provider="kind", name=names.cluster, ingressHostPort=host_port)
    raw["cluster"] = cluster
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **values}
    parse_config(raw)  # a config the stack refuses is the harness's bug: fail here, before creating anything
    return raw


def with_change(raw: Mapping[str, Any], change: tuple[str, str, Any] = CHANGE) -> dict[str, Any]:
    section, key, value = change
    changed = copy.deepcopy(dict(raw))
    if (changed.get(section) or {}).get(key) == value:
        raise ValueError(f"{section}.{key} is already {value!r}: nothing would change")
    changed[section] = {**(changed.get(section) or {}), key: value}
    return changed


def automation_config(raw: Mapping[str, Any]) -> dict[str, str]:
    """`ambient-mesh:<section>` → the section as JSON: Pulumi's get_object reads it back with its types."""
    return {f"{PROJECT}:{section}": json.dumps(values, sort_keys=True) for section, values in raw.items()}


def stack_env(state_dir: Path, passphrase: str) -> dict[str, str]:
    """A local file backend of our own and a passphrase: no login, no Pulumi Cloud, nothing shared."""
    return {
        "PULUMI_BACKEND_URL": f"file://{state_dir}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
    }


def verify_command(names: Names, config: StackConfig, outputs: Mapping[str, Any], report: Path,
                   python: str = sys.executable) -> list[str]:
    """`python -m tools.verify` reading this stack's outputs through the Pulumi CLI, as `make verify` does."""
    argv = [python, "-m", "tools.verify", "--stack", names.stack, "--json", str(report)]
    if "verify" not in outputs:  # the stack states its own expectations once it exports them
        for client in expected_denied(config):
            argv += ["--expect-denied", client]
        if getattr(config, "waypoint", None) is not None and config.waypoint.mode != "none":
            argv += ["--waypoint", config.waypoint.name]
    return argv


# --- diffs ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    op: str
    urn: str
    type: str

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


def steps_from_events(events: Iterable[Any]) -> list[Step]:
    """The resource steps of a preview's engine events (automation API EngineEvent objects)."""
    steps = []
    for event in events:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            continue
        metadata = pre.metadata
        op = getattr(metadata.op, "value", metadata.op)
        steps.append(Step(str(op), metadata.urn, metadata.type))
    return steps


def changes(steps: Iterable[Step]) -> list[Step]:
    return [s for s in steps if s.op not in NO_CHANGE_OPS and s.type != "pulumi:pulumi:Stack"]


def summary_changes(change_summary: Mapping[Any, int]) -> dict[str, int]:
    """A preview's change summary without the no-op entries: empty means "no changes"."""
    return {str(getattr(op, "value", op)): count for op, count in change_summary.items()
            if str(getattr(op, "value", op)) not in NO_CHANGE_OPS and count}


def assert_no_changes(change_summary: Mapping[Any, int], steps: Iterable[Step] = ()) -> None:
    pending = summary_changes(change_summary)
    if pending:
        detail = "; ".join(f"{s.op} {s.type} {s.name}" for s in changes(steps)) or "no step events"
        raise AssertionError(f"a second preview wants changes {pending}: {detail} (the program is not "
                             "deterministic, or a resource does not converge)")


def predicted_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Names of the resources whose inputs differ between two configs, from two runs of the program under mocks.

    The gateway API source is pointed at the offline fixture in both runs: it changes nothing in the comparison.
    """
    old, new = _mock_inputs(json.dumps(before, sort_keys=True)), _mock_inputs(json.dumps(after, sort_keys=True))
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


@functools.lru_cache(maxsize=8)
def _mock_inputs(raw_json: str) -> dict[str, tuple[str, str]]:
    """Type and inputs of every custom resource the program registers for a config (given as JSON), offline."""
    from tools.testkit.mockgraph import run_stack

    offline = json.loads(raw_json)
    offline["gatewayApi"] = {**(offline.get("gatewayApi") or {}), "source": str(GATEWAY_API_FIXTURE)}
    return {r.name: (r.type, json.dumps(r.inputs, sort_keys=True, default=str))
            for r in run_stack(parse_config(offline)) if r.custom}


def assert_diff(steps: Iterable[Step], expected: set[str]) -> list[Step]:
    """The preview changes exactly the resources the mocks predicted, each in place or by replacement."""
    changed = changes(steps)
    names = {s.name for s in changed}
    unexpected = sorted(f"{s.op} {s.type} {s.name}" for s in changed if s.name not in expected)
    missing = sorted(expected - names)
    deleted = sorted(f"{s.type} {s.name}" for s in changed if s.op == "delete")
    problems = []
    if unexpected:
        problems.append(f"unexpected changes: {', '.join(unexpected)}")
    if missing:
        problems.append(f"expected changes missing: {', '.join(missing)}")
    if deleted:
        problems.append(f"deletions: {', '.join(deleted)}")
    if problems:
        raise AssertionError("the preview's diff is not the predicted one: " + "; ".join(problems))
    return changed


# --- the ephemeral stack -------------------------------------------------------------------------------------

class StackLike(Protocol):
    """What the suite uses of pulumi.automation.Stack."""

    @property
    def name(self) -> str: ...

    @property
    def workspace(self) -> Any: ...

    def set_all_config(self, config: Any, *, path: bool = False) -> None: ...

    def up(self, **kwargs: Any) -> Any: ...

    def preview(self, **kwargs: Any) -> Any: ...

    def destroy(self, **kwargs: Any) -> Any: ...


def automation_stack(names: Names, env: Mapping[str, str]) -> StackLike:
    from pulumi import automation as auto

    stack = auto.create_stack(stack_name=names.stack, work_dir=str(REPO),
                              opts=auto.LocalWorkspaceOptions(env_vars=dict(env)))
    return cast(StackLike, stack)


def config_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    from pulumi import automation as auto

    return {key: auto.ConfigValue(value=value) for key, value in automation_config(raw).items()}


def cluster_exists(runner: Runner, name: str) -> bool:
    result = runner.run(["kind", "get", "clusters"], timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"`kind get clusters` failed: {result.stderr.strip()}")
    return name in result.stdout.split()


def artifacts_dir() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or REPO / "build" / "e2e")


@dataclass
class EphemeralStack:
    """A stack and its kind cluster that exist only inside `with`: torn down on success and on failure alike.

    Teardown, in order, each step attempted whatever the previous ones did: on failure, save the ztunnel logs and
    pods; `pulumi destroy`; remove the stack (forced if destroy failed); delete the kind cluster if it is still
    there; remove the stack's config file and the temporary state. Problems are reported together; they never hide
    the failure that started the teardown.
    """

    names: Names
    config: dict[str, Any]
    runner: Runner = field(default_factory=SystemRunner)
    factory: Callable[[Names, Mapping[str, str]], StackLike] = automation_stack
    to_config: Callable[[Mapping[str, Any]], Any] = config_values
    artifacts: Path = field(default_factory=artifacts_dir)
    log: Callable[[str], None] = print
    stack: StackLike | None = None
    kubeconfig: str | None = None
    destroyed: bool = False
    problems: list[str] = field(default_factory=list)
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __enter__(self) -> EphemeralStack:
        self.state_dir = Path(tempfile.mkdtemp(prefix="ambient-mesh-e2e-state-"))
        self.env = stack_env(self.state_dir, secrets.token_urlsafe(24))
        self.log(f"e2e: stack {self.names.stack}, kind cluster {self.names.cluster}, state in {self.state_dir}")
        self.stack = self.factory(self.names, self.env)
        self.stack.set_all_config(self.to_config(self.config))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.teardown(failed=error is not None)
        if error is None and self.problems:
            raise AssertionError("e2e teardown: " + "; ".join(self.problems))
        if error is not None and self.problems:
            self.log("e2e teardown problems (besides the failure): " + "; ".join(self.problems))

    # steps ------------------------------------------------------------------------------------------------------
    def up(self) -> dict[str, Any]:
        assert self.stack is not None
        result = self.stack.up(on_output=self.log)
        outputs = {key: getattr(value, "value", value) for key, value in result.outputs.items()}
        self.kubeconfig = outputs.get("kubeconfig") or None
        return outputs

    def preview(self, config: Mapping[str, Any] | None = None) -> tuple[Any, list[Step]]:
        assert self.stack is not None
        if config is not None:
            self.stack.set_all_config(self.to_config(config))
        events: list[Any] = []
        result = self.stack.preview(on_event=events.append, diff=True)
        return result, steps_from_events(events)

    def destroy(self) -> None:
        assert self.stack is not None
        self.stack.destroy(on_output=self.log)
        self.destroyed = True

    # teardown ---------------------------------------------------------------------------------------------------
    def _attempt(self, what: str, action: Callable[[], Any]) -> bool:
        try:
            action()
            return True
        except Exception as error:  # noqa: BLE001 - every teardown step runs whatever the others did
            self.problems.append(f"{what}: {error}")
            return False

    def collect_diagnostics(self) -> None:
        """ztunnel logs and pod states of the failed run, for the workflow's artifacts."""
        if not self.kubeconfig and cluster_exists(self.runner, self.names.cluster):
            # `up` failed (e.g. the smoke check) before handing out its outputs: ask kind itself.
            read = self.runner.run(["kind", "get", "kubeconfig", "--name", self.names.cluster], timeout=60)
            self.kubeconfig = read.stdout if read.returncode == 0 and read.stdout.strip() else None
        if not self.kubeconfig:
            return
        self.artifacts.mkdir(parents=True, exist_ok=True)
        handle, path = tempfile.mkstemp(prefix="ambient-mesh-kubeconfig-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(self.kubeconfig)
            kubectl = ["kubectl", "--kubeconfig", path]
            saved = {
                "ztunnel.log": kubectl + ["logs", "-n", ISTIO_NAMESPACE, "-l", "app=ztunnel", "--tail=-1",
                                          "--prefix", "--max-log-requests=50"],
                "pods.txt": kubectl + ["get", "pods", "-A", "-o", "wide"],
                "events.txt": kubectl + ["get", "events", "-A", "--sort-by=.lastTimestamp"],
            }
            for filename, argv in saved.items():
                result: Result = self.runner.run(argv, timeout=120)
                (self.artifacts / filename).write_text(result.stdout + result.stderr, encoding="utf-8")
        finally:
            os.unlink(path)

    def teardown(self, failed: bool) -> None:
        if failed:
            self._attempt("collecting diagnostics", self.collect_diagnostics)
        if self.stack is not None:
            if not self.destroyed:
                self._attempt("pulumi destroy", self.destroy)
            force = not self.destroyed
            self._attempt("removing the stack",
                          lambda: self.stack.workspace.remove_stack(self.names.stack, force=force))  # type: ignore[union-attr]
        self._attempt("deleting the kind cluster", self._delete_cluster_if_left)
        leftover = REPO / f"Pulumi.{self.names.stack}.yaml"
        if leftover.exists():
            leftover.unlink()
        if self.state_dir is not None and not os.environ.get(KEEP_ENV):
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _delete_cluster_if_left(self) -> None:
        if not cluster_exists(self.runner, self.names.cluster):
            return
        self.problems.append(f"kind cluster {self.names.cluster} was still there after destroy")
        result = self.runner.run(["kind", "delete", "cluster", "--name", self.names.cluster], timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"`kind delete cluster --name {self.names.cluster}` failed: {result.stderr.strip()}")
