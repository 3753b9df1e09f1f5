"""components/smoke.py: the in-stack smoke check, built alone under Pulumi mocks, and its shell wrapper run for real."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pytest

from components import smoke
from components.model import outputs
from components.model.outputs import smoke_script, smoke_triggers, verify_argv
from components.model.topology import in_cluster_ingress
from components.smoke import SmokeCheck, SmokeCheckArgs
from tests.conftest import L4_ZERO_TRUST, base_config
from tools import verify
from tools.testkit.mockgraph import EchoMocks, RecordingMonitor, Registration, run_stack

SECRET_SIG = pulumi.runtime.rpc._special_sig_key  # the key that marks a secret value
KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: kind-ambient\nusers: [{name: admin}]\n"
ISTIO_INGRESS = "istio-ingressgateway.istio-system"


def core_argv(namespace: str = "default", ingress: str | None = ISTIO_INGRESS, host: str | None = None,
              denied: tuple[str, ...] = (), wait: int = 180) -> list[str]:
    return verify_argv(namespace, None, ingress, host, list(denied), wait)


def build(**overrides: Any) -> dict[str, Registration]:
    """Register an upstream resource and a SmokeCheck after it; return the registrations by name."""
    echo = EchoMocks()
    monitor = RecordingMonitor(echo)
    pulumi.runtime.set_mocks(echo, project="ambient-mesh", stack="dev", preview=False, monitor=monitor)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        upstream = command.local.Command("upstream", create="true")
        values: dict[str, Any] = {
            "kubeconfig": pulumi.Output.secret(KUBECONFIG),
            "namespace": pulumi.Output.from_input("default"),
            "host_url": "http://localhost:8080/productpage",
            "ingress_address": ISTIO_INGRESS,
            "expect_denied": ["notsleep"],
            "after": [upstream],
            "triggers": ["istio.version=1.31.1", "app.bookinfoTag=1.20.3"],
        }
        values.update(overrides)
        check = SmokeCheck("smoke", SmokeCheckArgs(**values))
        return check.stdout

    program()
    return {r.name: r for r in monitor.registrations}


def script_argv(script: str) -> list[str]:
    """The verify flags inside the Command's shell script."""
    words = shlex.split(script.split(" || ")[0])
    assert words[1:3] == ["-m", "tools.verify"]
    return words[3:]


def test_the_component_and_its_command() -> None:
    registrations = build()
    component, run = registrations["smoke"], registrations["smoke-verify"]
    assert component.type == "ambient-mesh:smoke:SmokeCheck" and not component.custom
    assert run.type == "command:local:Command" and run.parent == component.urn
    assert run.inputs["dir"] == str(Path(__file__).resolve().parents[2])
    assert (Path(run.inputs["dir"]) / "tools" / "verify" / "__main__.py").is_file()
    assert run.inputs["interpreter"] == ["/bin/sh", "-c"]
    assert run.inputs["addPreviousOutputInEnv"] is False
    assert "delete" not in run.inputs and "update" not in run.inputs


def test_it_runs_after_the_given_resources() -> None:
    registrations = build()
    run = registrations["smoke-verify"]
    assert registrations["upstream"].urn in run.explicit_dependencies


def test_it_runs_the_core_checks_with_the_stacks_settings() -> None:
    run = build()["smoke-verify"]
    args = verify.parse_args(script_argv(run.inputs["create"]))
    assert args.core and args.no_stack_outputs and args.kubeconfig_env == outputs.KUBECONFIG_ENV
    assert args.namespace == "default" and args.kubeconfig is None and args.context is None
    assert args.host_url == "http://localhost:8080/productpage"
    assert args.ingress_address == "istio-ingressgateway.istio-system" and not args.no_ingress
    assert args.expect_denied == ["notsleep"] and args.wait == 180
    assert run.inputs["create"].startswith('"${AMBIENT_MESH_PYTHON:-python3}" -m tools.verify --core')


def test_the_kubeconfig_is_a_secret_environment_value_and_nowhere_else() -> None:
    run = build()["smoke-verify"]
    environment = run.inputs["environment"]
    assert set(environment) == {SECRET_SIG, "value"}  # the whole map is sent as a secret
    assert environment["value"] == {outputs.KUBECONFIG_ENV: KUBECONFIG}
    assert "apiVersion" not in run.inputs["create"] and "apiVersion" not in str(run.inputs["triggers"])
    # stdout only: verify never prints the kubeconfig, and stderr (tracebacks, kubectl noise) is not shown
    assert run.inputs["logging"] == "stdout"


def test_a_plain_kubeconfig_is_made_secret() -> None:
    run = build(kubeconfig=KUBECONFIG)["smoke-verify"]
    assert set(run.inputs["environment"]) == {SECRET_SIG, "value"}


def test_it_reruns_only_when_triggers_or_settings_change() -> None:
    first, again = build()["smoke-verify"], build()["smoke-verify"]
    assert first.inputs == again.inputs  # nothing varies between two runs of the program: no re-run on every up
    assert first.inputs["triggers"] == ["istio.version=1.31.1", "app.bookinfoTag=1.20.3"]
    changed = build(triggers=["istio.version=1.31.2", "app.bookinfoTag=1.20.3"])["smoke-verify"]
    assert changed.inputs["triggers"] != first.inputs["triggers"]
    assert {k: v for k, v in changed.inputs.items() if k != "triggers"} == \
        {k: v for k, v in first.inputs.items() if k != "triggers"}


def test_without_ingress_and_with_a_context() -> None:
    run = build(ingress_address=None, host_url="http://ignored", expect_denied=[], context="minikube",
                kubeconfig=pulumi.Output.secret(""))["smoke-verify"]
    args = verify.parse_args(script_argv(run.inputs["create"]))
    assert args.no_ingress and args.host_url is None and args.ingress_address is None
    assert args.context == "minikube" and args.expect_denied == []


def test_gateway_api_ingress_without_a_host_url() -> None:
    argv = core_argv("bookinfo", ingress="bookinfo-gateway-istio.bookinfo")
    args = verify.parse_args(argv)
    assert args.ingress_address == "bookinfo-gateway-istio.bookinfo" and args.host_url is None
    assert args.namespace == "bookinfo"


def test_the_environment_variable_is_the_one_verify_reads() -> None:
    assert outputs.KUBECONFIG_ENV == verify.KUBECONFIG_ENV
    assert in_cluster_ingress(base_config(app={"ingress": "istio"})) == verify.DEFAULT_INGRESS_ADDRESS


def test_triggers_follow_every_config_section() -> None:
    base = smoke_triggers(base_config())
    assert base == smoke_triggers(base_config())
    assert [t.split("=", 1)[0] for t in base][:4] == ["cluster", "istio", "gateway_api", "app"]
    bumped = smoke_triggers(base_config(istio={"version": "1.31.2"}))
    assert [a == b for a, b in zip(base, bumped, strict=True)] == [t.split("=")[0] != "istio" for t in base]


@pytest.fixture
def fake_python(tmp_path: Path) -> Any:
    """A stand-in for python3 that records its arguments and the kubeconfig variable, and exits as told."""
    def make(exit_code: int) -> tuple[dict[str, str], Path]:
        record = tmp_path / "record"
        script = tmp_path / "python"
        script.write_text("#!/bin/sh\n"
                          f'printf "%s\\n" "$@" > {record}\n'
                          f'printf "%s" "${outputs.KUBECONFIG_ENV}" > {record}.env\n'
                          "echo 'verify: checks ...'\n"
                          f"exit {exit_code}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        env = {**os.environ, "AMBIENT_MESH_PYTHON": str(script), outputs.KUBECONFIG_ENV: KUBECONFIG}
        return env, record
    return make


def test_the_script_passes_when_verify_passes(fake_python: Any) -> None:
    env, record = fake_python(0)
    argv = core_argv(denied=("notsleep",))
    done = subprocess.run(["/bin/sh", "-c", smoke_script(argv)], env=env, capture_output=True, text=True,
                          cwd=smoke.REPO_ROOT, timeout=30, check=False)
    assert done.returncode == 0 and "FAILED" not in done.stdout
    assert record.read_text().split("\n")[:-1] == ["-m", "tools.verify", *argv]
    assert Path(f"{record}.env").read_text() == KUBECONFIG


def test_the_script_fails_with_a_clear_message_when_verify_fails(fake_python: Any) -> None:
    env, _ = fake_python(1)
    argv = core_argv()
    done = subprocess.run(["/bin/sh", "-c", smoke_script(argv)], env=env, capture_output=True, text=True,
                          cwd=smoke.REPO_ROOT, timeout=30, check=False)
    assert done.returncode == 1
    assert done.stdout.startswith("verify: checks ...")
    assert outputs.FAILURE_MESSAGE in done.stdout and "ambient-mesh:verify.smokeCheck" in done.stdout


def test_the_real_verify_fails_the_script_without_a_cluster(tmp_path: Path) -> None:
    """The whole chain with the real verify: no kubectl on PATH here, so the core checks fail and so does the script."""
    import sys

    env = {"PATH": str(tmp_path), "AMBIENT_MESH_PYTHON": sys.executable, outputs.KUBECONFIG_ENV: KUBECONFIG,
           "HOME": str(tmp_path)}
    argv = core_argv(wait=0)
    argv += ["--attempts", "1"]
    done = subprocess.run(["/bin/sh", "-c", smoke_script(argv)], env=env, capture_output=True, text=True,
                          cwd=smoke.REPO_ROOT, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "kubectl: command not found" in done.stdout and outputs.FAILURE_MESSAGE in done.stdout
    assert "current-context" not in done.stdout + done.stderr


# --- from the stack's config --------------------------------------------------------------------------------------

def test_verify_hints_of_a_kind_stack() -> None:
    config = base_config(cluster={"name": "mesh", "ingressHostPort": 9090}, security=L4_ZERO_TRUST)
    assert outputs.verify_hints(config) == {
        "context": "kind-mesh",
        "hostUrl": "http://localhost:9090/productpage",
        "ingressAddress": "istio-ingressgateway.istio-system",
        "expectDenied": ["notsleep"],
        "waypoint": None,
        "l7Denied": [],
        "l4Denied": [],  # no waypoint: no pod address skips one
        "clients": list(config.app.clients),
        "addons": [],
        "splits": {},
    }
    # The tutorial's setting: no policy, nobody denied.
    assert outputs.verify_hints(base_config(security={"productpageClients": [], "defaultDeny": False}))[
        "expectDenied"] == []


def test_verify_hints_follow_ingress_cluster_and_waypoint(tmp_path: Path) -> None:
    gateway_api = outputs.verify_hints(base_config(app={"ingress": "gateway-api", "namespace": "bookinfo"}))
    assert gateway_api["ingressAddress"] == "bookinfo-gateway-istio.bookinfo"
    assert gateway_api["hostUrl"] == "http://localhost:8080/productpage"
    none = outputs.verify_hints(base_config(app={"ingress": "none"}, security={"productpageClients": ["sleep"]}))
    assert none["ingressAddress"] is None and none["hostUrl"] is None
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    existing = outputs.verify_hints(base_config(cluster={"provider": "existing", "context": "minikube"}))
    assert existing["context"] == "minikube" and existing["hostUrl"] is None  # no host mapping there
    waypoint = outputs.verify_hints(base_config(waypoint={"mode": "namespace", "name": "wp"}, security=L4_ZERO_TRUST))
    # The waypoint checks the same clients as ztunnel did: notsleep stays denied.
    assert waypoint["waypoint"] == "wp" and waypoint["expectDenied"] == ["notsleep"]


def smoke_args(config: Any) -> Any:
    """The verify flags of the stack's own smoke check, as the whole program registers it."""
    return verify.parse_args(script_argv(run_stack(config).get("smoke-verify").inputs["create"]))


def test_the_stack_hands_the_smoke_check_its_config() -> None:
    config = base_config(cluster={"ingressHostPort": 9090}, security=L4_ZERO_TRUST)
    args = smoke_args(config)
    assert (args.context, args.host_url, args.ingress_address, args.expect_denied) == (
        None, "http://localhost:9090/productpage", ISTIO_INGRESS, ["notsleep"])
    assert run_stack(config).get("smoke-verify").inputs["triggers"] == smoke_triggers(config)
    existing = smoke_args(base_config(cluster={"provider": "existing", "context": "minikube"}))
    assert existing.context == "minikube" and existing.host_url is None
    assert smoke_args(base_config()).expect_denied == []  # the tutorial: nobody denied


def test_wired_at_the_end_of_the_whole_stack() -> None:
    """The stack's smoke check runs after every other resource the stack creates."""
    graph = run_stack(base_config(security=L4_ZERO_TRUST, sidecar={"enabled": True}))
    run = graph.get("smoke-verify")
    # The Gateway API bundle is waited for only through what uses it (test_graph.py says why).
    bundle = {r.name for r in graph.children("gateway-api")}
    others = {r.name for r in graph if r.custom and r.name != run.name and not r.type.startswith("pulumi:providers:")}
    assert others - bundle <= graph.waits_for(run.name)
    waited = {component_of(graph.registrations, urn) for urn in run.explicit_dependencies}
    assert {"ambient", "bookinfo", "clients", "istio", "security", "ingress", "sidecar"} <= waited
    assert set(run.inputs["environment"]) == {SECRET_SIG, "value"}


def component_of(registrations: list[Registration], urn: str) -> str:
    """The top-level component (a child of the stack) that holds `urn`."""
    by_urn = {r.urn: r for r in registrations}
    registration = by_urn[urn]
    while registration.parent in by_urn:
        registration = by_urn[registration.parent]
    return registration.name
