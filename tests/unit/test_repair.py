"""A laptop's second day (tools/repair.py): each situation on a fake machine — what the state records, what Docker
has — and what the repair runs for `up`, `preview`, `destroy` and after an update; then the Makefile around it."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.model.kind import kind_config, node_names
from tests.conftest import base_config
from tests.fake_make import Make, fake_make
from tools import repair
from tools.doctor import Result

CONFIG = base_config()
CLUSTER = CONFIG.cluster.name
CONTROL_PLANE, WORKERS = node_names(CONFIG.cluster)
NODES = (CONTROL_PLANE, *WORKERS)
URN = "urn:pulumi:dev::ambient-mesh::ambient-mesh:cluster:Cluster$command:local:Command::cluster-kind"
NO_KIND_CLUSTER = json.dumps({"deployment": {"resources": []}})  # cluster.provider: existing, or nothing deployed
# The outputs of a stack on an existing cluster (`pulumi stack output --json`): its kubeconfig and context.
EXISTING_CONTEXT = "minikube"
EXISTING_OUTPUTS: dict[str, Any] = {"kubeconfig": "apiVersion: v1\nkind: Config\n# the stack's own\n",
                                    "clusterName": "minikube", "verify": {"context": EXISTING_CONTEXT}}


def exported(urn: str = URN) -> str:
    return json.dumps({"deployment": {"resources": [
        {"urn": "urn:pulumi:dev::ambient-mesh::pulumi:pulumi:Stack::ambient-mesh-dev"},
        {"urn": urn, "inputs": {"environment": {"CLUSTER_NAME": CLUSTER}, "stdin": kind_config(CONFIG.cluster)}},
    ]}})


@dataclass
class Machine(repair.Host):
    """The stack's state and Docker's node containers (name -> state); every command it is asked is kept."""

    export: str | None = field(default_factory=exported)
    containers: dict[str, str] = field(default_factory=lambda: {n: "running" for n in NODES})
    ready_after: int = 0  # /readyz answers from this call on
    docker_down: bool = False
    fail: dict[str, Result] = field(default_factory=dict)
    ran: list[list[str]] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)
    clock: float = 0.0
    readyz_calls: int = 0
    exec_seconds: float = 0.0  # how long each `docker exec` of /readyz takes (a silent API server: kubectl's timeout)
    outputs: dict[str, Any] = field(default_factory=dict)  # `pulumi stack output --json`
    answering: bool = True  # the existing cluster's API server, through kubectl
    kubeconfigs: list[str] = field(default_factory=list)  # what each kubectl --kubeconfig file held

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> Result:
        self.ran.append(list(argv))
        words = " ".join(argv[:3])
        for prefix, result in self.fail.items():
            if " ".join(argv).startswith(prefix):
                return result
        if words == "pulumi stack export":
            return Result(0, self.export) if self.export is not None else Result(255, "", "no stack named 'dev'")
        if words == "docker ps --all":
            if self.docker_down:
                return Result(1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
            return Result(0, "".join(f"{n}\t{s}\n" for n, s in self.containers.items()))
        if argv[:2] == ["docker", "start"]:
            self.containers.update({n: "running" for n in argv[2:]})
            return Result(0)
        if words == "pulumi stack output":
            return Result(0, json.dumps(self.outputs))
        if argv[0] == "kubectl":
            if "--kubeconfig" in argv:
                self.kubeconfigs.append(Path(argv[argv.index("--kubeconfig") + 1]).read_text(encoding="utf-8"))
            return Result(0, "ok") if self.answering else Result(
                1, "", "Unable to connect to the server: dial tcp 192.168.49.2:8443: connect: no route to host")
        if argv[:2] == ["docker", "exec"]:
            self.clock += self.exec_seconds
            self.readyz_calls += 1
            up = self.containers.get(argv[2]) == "running" and self.readyz_calls > self.ready_after
            return Result(0, "ok") if up else Result(1, "", "The connection to the server was refused")
        if argv[:3] == ["kind", "delete", "cluster"]:
            self.containers.clear()
            return Result(0)
        return Result(0)

    def run_env(self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 600.0) -> Result:
        self.envs.append(dict(env))
        return self.run(argv, timeout)

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def now(self) -> float:
        return self.clock


def run(machine: Machine, mode: str) -> tuple[int, str, list[str]]:
    said: list[str] = []
    out = io.StringIO()
    job = repair.Repair("dev", machine, say=said.append)
    try:
        extra = job.run(mode)
    except repair.Failed as failure:
        return 1, "", [*said, str(failure)]
    print("\n".join(extra), file=out)
    return 0, out.getvalue().strip(), said


def refreshed(machine: Machine) -> bool:
    return any(argv[:2] == ["pulumi", "refresh"] for argv in machine.ran)


def test_the_state_names_the_cluster_and_its_nodes() -> None:
    recorded = repair.recorded_cluster(json.loads(exported()))
    assert recorded == repair.Recorded(URN, CLUSTER, NODES)
    assert repair.recorded_cluster({"deployment": {"resources": []}}) is None


@pytest.mark.parametrize("mode", [m for m in repair.MODES if m != "answers"])
def test_no_recorded_cluster_nothing_to_do(mode: str) -> None:
    for machine in (Machine(export=None), Machine(export=NO_KIND_CLUSTER)):
        assert run(machine, mode)[:2] == (0, "")
        assert not refreshed(machine) and not [a for a in machine.ran if a[0] in ("kind", "docker")]


def test_after_the_update_an_existing_cluster_must_answer_through_the_stacks_own_kubeconfig() -> None:
    """cluster.provider existing: no kind cluster in the state, so /readyz is asked through the stack's kubeconfig
    output and context (as verify reads them), never through whatever kubectl's current context is."""
    machine = Machine(export=NO_KIND_CLUSTER, outputs=EXISTING_OUTPUTS)
    assert run(machine, "answers")[:2] == (0, "")
    [kubectl] = [a for a in machine.ran if a[0] == "kubectl"]
    assert kubectl[3:] == ["--context", EXISTING_CONTEXT, "get", "--raw=/readyz"]
    assert machine.kubeconfigs == [EXISTING_OUTPUTS["kubeconfig"]]
    silent = Machine(export=NO_KIND_CLUSTER, outputs=EXISTING_OUTPUTS, answering=False)
    code, _, said = run(silent, "answers")
    assert code == 1 and len(said) == 1 and "\n" not in said[0]
    assert said[0].startswith(f"the cluster {EXISTING_OUTPUTS['clusterName']} (context "
                              f"{EXISTING_CONTEXT}) does not answer") and "make up" in said[0]


def test_after_the_update_a_stack_without_outputs_fails() -> None:
    code, _, said = run(Machine(export=NO_KIND_CLUSTER, outputs={}), "answers")
    assert code == 1 and "has no outputs" in said[-1] and "make up" in said[-1]


def test_a_running_cluster_is_left_alone_once_its_api_answers() -> None:
    machine = Machine(ready_after=2)  # Docker just restarted: the API server answers a few seconds later
    assert run(machine, "up")[:2] == (0, "")
    assert machine.readyz_calls == 3 and not refreshed(machine)
    assert not [a for a in machine.ran if a[:2] in (["docker", "start"], ["kind", "delete"])]


def test_an_api_that_never_answers_fails_with_the_way_out() -> None:
    machine = Machine(ready_after=10 ** 6)
    code, _, said = run(machine, "up")
    assert code == 1 and "does not answer" in said[-1] and "make diagnose" in said[-1]
    assert machine.clock >= repair.READY_SECONDS


def test_stopped_nodes_are_started_then_awaited() -> None:
    """Docker restarted and did not bring the nodes back."""
    machine = Machine(containers={CONTROL_PLANE: "exited", WORKERS[0]: "exited", WORKERS[1]: "running"})
    code, args, said = run(machine, "up")
    assert (code, args) == (0, "")
    assert ["docker", "start", CONTROL_PLANE, WORKERS[0]] in machine.ran
    assert any("stopped" in line for line in said) and not refreshed(machine)


def test_preview_starts_stopped_nodes_and_waits_for_the_api_as_up_does() -> None:
    """So that the preview compares against a live cluster, not one that answers nothing."""
    machine = Machine(containers={CONTROL_PLANE: "exited", WORKERS[0]: "running", WORKERS[1]: "running"},
                      ready_after=4)
    assert run(machine, "preview")[:2] == (0, "")
    assert ["docker", "start", CONTROL_PLANE] in machine.ran
    assert machine.readyz_calls == 5 and not refreshed(machine)


def test_the_wait_for_the_api_says_how_long_it_really_waited() -> None:
    # Each /readyz try takes kubectl's 30 s: the wait ends past READY_SECONDS, and says so.
    machine = Machine(containers={CONTROL_PLANE: "exited", WORKERS[0]: "running", WORKERS[1]: "running"},
                      ready_after=10 ** 6, exec_seconds=30)
    code, _, said = run(machine, "preview")
    assert code == 1 and machine.clock >= repair.READY_SECONDS
    assert f"does not answer within {machine.clock:.0f} s" in said[-1]


def test_destroy_deletes_a_cluster_whose_api_never_answers_then_goes_on_as_gone() -> None:
    """The nodes run, the API server never answers: Pulumi cannot delete through it, so the destroy must not wait
    for it (`make destroy && make up` would be no way out)."""
    machine = Machine(ready_after=10 ** 6)
    code, args, said = run(machine, "destroy")
    assert (code, args) == (0, "")
    delete = machine.ran.index(["kind", "delete", "cluster", "--name", CLUSTER])
    refresh = next(i for i, a in enumerate(machine.ran) if a[:2] == ["pulumi", "refresh"])
    assert delete < refresh and machine.envs == [repair.DELETE_UNREACHABLE]
    assert any("does not answer" in line and "kind delete cluster" in line for line in said)


def test_a_vanished_cluster_is_forgotten_by_refresh_and_replaced_by_up() -> None:
    machine = Machine(containers={})
    code, args, said = run(machine, "up")
    assert code == 0 and args == f"--replace={URN}"
    assert refreshed(machine) and machine.envs == [repair.DELETE_UNREACHABLE]
    assert any("is gone" in line for line in said) and any("creating the kind cluster" in line for line in said)
    assert not [a for a in machine.ran if a[:2] == ["kind", "delete"]]


def test_destroy_with_the_cluster_gone_refreshes_and_replaces_nothing() -> None:
    machine = Machine(containers={})
    assert run(machine, "destroy")[:2] == (0, "")
    assert refreshed(machine) and machine.envs == [repair.DELETE_UNREACHABLE]


def test_preview_changes_nothing_and_shows_the_rebuild() -> None:
    machine = Machine(containers={})
    code, args, _ = run(machine, "preview")
    assert code == 0 and args.splitlines() == ["--refresh", f"--replace={URN}"]
    assert not refreshed(machine) and not [a for a in machine.ran if a[0] == "kind"]


def test_a_removed_node_deletes_what_is_left_then_rebuilds() -> None:
    machine = Machine(containers={CONTROL_PLANE: "running", WORKERS[1]: "running"})
    code, args, said = run(machine, "up")
    assert code == 0 and args == f"--replace={URN}"
    delete = machine.ran.index(["kind", "delete", "cluster", "--name", CLUSTER])
    refresh = next(i for i, a in enumerate(machine.ran) if a[:2] == ["pulumi", "refresh"])
    assert delete < refresh
    assert any(WORKERS[0] in line for line in said)


def test_after_the_update_a_missing_or_silent_cluster_fails() -> None:
    assert run(Machine(), "answers")[0] == 0
    code, _, said = run(Machine(containers={}), "answers")
    assert code == 1 and "does not exist" in said[-1]
    assert run(Machine(containers={CONTROL_PLANE: "running"}), "answers")[0] == 1


def test_docker_down_and_a_failed_refresh_are_one_line_each() -> None:
    code, _, said = run(Machine(docker_down=True), "destroy")
    assert code == 1 and said[-1].startswith("Docker does not answer (Cannot connect")
    failing = Machine(containers={}, fail={"pulumi refresh": Result(1, "", "error: boom")})
    code, _, said = run(failing, "up")
    assert code == 1 and "`pulumi refresh` failed" in said[-1] and "boom" in said[-1]


def test_main_prints_only_pulumis_arguments_on_stdout() -> None:
    out = io.StringIO()
    assert repair.main(["up", "--stack", "dev"], Machine(containers={}), out) == 0
    assert out.getvalue() == f"--replace={URN}\n"


# --- the Makefile around the repair: fake python (doctor, repair) and pulumi on PATH ---------------------------

# The repair's stdout (REPAIR_OUT) is what the Makefile hands to Pulumi; REPAIR_RC / ANSWERS_RC its exit codes.
FAKE_REPAIR = '''case "$*" in
  *"tools.repair answers"*) exit "${ANSWERS_RC:-0}";;
  *tools.repair*) [ -n "$REPAIR_OUT" ] && printf '%s\\n' "$REPAIR_OUT"; exit "${REPAIR_RC:-0}";;
esac
'''
UNREACHABLE = "PULUMI_K8S_DELETE_UNREACHABLE"


@pytest.fixture
def make(tmp_path: Path) -> Make:
    return fake_make(tmp_path, UNREACHABLE, python=FAKE_REPAIR, unset=("PULUMI_BACKEND_URL",))


def pulumi_calls(calls: list[str], verb: str) -> list[str]:
    return [c for c in calls if c.startswith(f"pulumi {verb} ")]


def repairs_arguments(machine: Machine, mode: str) -> str:
    """What the real repair prints for Pulumi on this fake machine: the fake python prints the same."""
    out = io.StringIO()
    assert repair.main([mode, "--stack", "dev"], machine, out) == 0
    return out.getvalue().strip()


def test_make_up_hands_the_repairs_arguments_to_pulumi_up(make: Make) -> None:
    replace = repairs_arguments(Machine(containers={}), "up")  # the cluster is gone: --replace=<its command>
    code, calls = make("up", REPAIR_OUT=replace)
    [up] = pulumi_calls(calls, "up")
    assert code == 0 and up.split(" [")[0].split()[-1] == replace


def test_make_up_stops_before_pulumi_when_the_repair_fails(make: Make) -> None:
    code, calls = make("up", REPAIR_RC="1")
    assert code != 0 and any("tools.repair up" in c for c in calls)
    assert not pulumi_calls(calls, "up")


def test_make_up_fails_when_the_cluster_does_not_answer_after_the_update(make: Make) -> None:
    code, calls = make("up", ANSWERS_RC="1")
    assert pulumi_calls(calls, "up") and "tools.repair answers" in calls[-1]
    assert code != 0


def test_make_preview_of_a_rebuild_lets_the_provider_forget_the_unreachable(make: Make) -> None:
    rebuild = repairs_arguments(Machine(containers={}), "preview")  # --refresh, --replace=<the cluster's command>
    code, calls = make("preview", REPAIR_OUT=rebuild)
    [preview] = pulumi_calls(calls, "preview")
    forgets = repair.DELETE_UNREACHABLE[UNREACHABLE]
    assert code == 0 and preview.endswith(f"[{UNREACHABLE}={forgets}]")
    assert all(argument in preview.split() for argument in rebuild.split())
    code, calls = make("preview")  # nothing to rebuild: the provider's ordinary behaviour
    [preview] = pulumi_calls(calls, "preview")
    assert preview.endswith(f"[{UNREACHABLE}=]")


def test_make_destroy_stops_before_pulumi_when_the_repair_fails(make: Make) -> None:
    code, calls = make("destroy", REPAIR_RC="1")
    assert code != 0 and any("tools.repair destroy" in c for c in calls)
    assert not pulumi_calls(calls, "destroy")
