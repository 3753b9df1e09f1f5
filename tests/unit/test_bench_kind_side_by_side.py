"""bench/kind_side_by_side.py's own logic, with fakes for Docker, kind, helm and kubectl: no cluster is made."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import kind_side_by_side as bench
from components.model import images as image_model
from components.model.kind import KIND_DELETE
from components.model.validate import parse_config
from tests.conftest import DEV_STACK_FILE, stack_raw_config
from tools.render import Rendered, render_config


def bench_raw(**overrides: dict[str, Any]) -> dict[str, Any]:
    raw = stack_raw_config(DEV_STACK_FILE, **overrides)
    raw["cluster"]["name"] = bench.CLUSTER
    return raw


def test_memory_sizes_as_docker_stats_prints_them() -> None:
    assert bench.mem_bytes("1.5GiB") == 1.5 * 1024 ** 3
    assert bench.mem_bytes("512MiB ") == 512 * 1024 ** 2
    assert bench.mem_bytes("20kB") == 20_000
    with pytest.raises(ValueError):
        bench.mem_bytes("--")
    stats = ("ambient-bench-control-plane 1GiB / 7.7GiB\nambient-bench-worker 512MiB / 7.7GiB\n"
             "someone-else 3GiB / 7.7GiB\nambient-bench-worker2 -- / --\n")
    nodes = ["ambient-bench-control-plane", "ambient-bench-worker", "ambient-bench-worker2"]
    assert bench.node_memory(stats, nodes) == {"ambient-bench-control-plane": 1024.0, "ambient-bench-worker": 512.0}


def test_peaks_are_of_the_sum_and_of_each_node() -> None:
    peaks = bench.memory_peaks([{"a": 100, "b": 300}, {"a": 250, "b": 100}, {"a": 50}])
    assert peaks == {"peak_sum_mib": 400, "per_node_peak_mib": {"a": 250, "b": 300}, "samples": 3}
    assert bench.memory_peaks([])["peak_sum_mib"] == 0
    assert bench.memory_figures(peaks) == {"peak node memory MiB (sum)": 400, "peak memory a MiB": 250,
                                           "peak memory b MiB": 300}


def test_the_sampler_samples_in_the_background_until_the_block_ends() -> None:
    outputs = iter(["n1 100MiB / 1GiB", "n1 300MiB / 1GiB\nn2 50MiB / 1GiB"] + ["n1 200MiB / 1GiB"] * 1000)
    with bench.MemorySampler(["n1", "n2"], every=0.01, sample=lambda: next(outputs)) as sampler:
        while len(sampler.samples) < 3:
            pass
    count = len(sampler.samples)
    assert sampler.peaks()["per_node_peak_mib"] == {"n1": 300, "n2": 50}
    assert sampler.peaks()["peak_sum_mib"] == 350
    assert len(sampler.samples) == count  # stopped


def test_images_on_a_node_and_the_preloaded_ones_it_lacks() -> None:
    listed = json.dumps({"images": [
        {"repoTags": ["docker.io/istio/pilot:1.31.1-distroless"]},
        {"repoTags": ["docker.io/curlimages/curl:8.16.0"]},
        {"repoTags": ["registry.k8s.io/pause:3.10"]},
        {"repoTags": []},
    ]})
    wanted = ["docker.io/istio/pilot:1.31.1-distroless", "curlimages/curl:8.16.0", "docker.io/istio/ztunnel:1.31.1"]
    assert bench.image_counts(listed, wanted) == (4, ["docker.io/istio/ztunnel:1.31.1"])
    assert bench.image_ref("busybox:1") == "docker.io/library/busybox:1"
    assert bench.image_ref("localhost/x:1") == "localhost/x:1"
    assert bench.image_ref("ambient-mesh.local/kind-node:v1") == "ambient-mesh.local/kind-node:v1"


PULUMI_OUTPUT = """\
doctor: every check passed
Updating (dev):
 +  pulumi:pulumi:Stack ambient-mesh-dev creating (0s)
 +  command:local:Command cluster-preflight creating (0s)
 +  command:local:Command cluster-preflight created (1s)
 +  command:local:Command cluster-kind creating (0s)
 +  command:local:Command images-pull creating (0s)
 +  command:local:Command images-pull created (3s)
 +  command:local:Command cluster-kind created (30s)
 +  command:local:Command images-load-mesh creating (0s)
 +  kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition gateway-api-gateways creating (0s)
 +  kubernetes:core/v1:Namespace istio-namespace creating (0s)
 +  kubernetes:core/v1:Namespace istio-namespace created (0.5s)
 +  kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition gateway-api-gateways created (1s)
 +  command:local:Command images-load-mesh created (20s)
 +  kubernetes:helm.sh/v3:Release istio-base creating (0s)
 +  kubernetes:helm.sh/v3:Release istio-base created (5s)
 +  kubernetes:helm.sh/v3:Release istio-istiod creating (0s)
 +  kubernetes:core/v1:NamespacePatch ambient-label creating (0s)
 +  kubernetes:core/v1:NamespacePatch ambient-label created (0s)
 +  kubernetes:helm.sh/v3:Release istio-istiod created (30s)
 +  kubernetes:apps/v1:Deployment bookinfo-details-v1 creating (0s)
 +  kubernetes:apps/v1:Deployment bookinfo-details-v1 created (40s)
Resources:
"""


def test_stack_phases_from_make_ups_streamed_output() -> None:
    # One line a second from t=10: line i arrives at 10 + i.
    lines = [(10.0 + index, line) for index, line in enumerate(PULUMI_OUTPUT.splitlines())]
    spans = bench.pulumi_events(lines)
    assert spans[("command:local:Command", "cluster-kind")] == (15.0, 18.0)
    assert ("pulumi:pulumi:Stack", "ambient-mesh-dev") not in spans  # never `created` here
    phases = bench.stack_phases(lines, started=9.0)
    # preflight: until the Stack's first row (line 2); load: the pull's start to the load's end; apply+wait: the
    # label patch's start to the Deployment's end.
    assert phases == {"preflight": 3.0, "create": 3.0, "load": 8.0, "crds+namespaces": 3.0, "helm": 5.0,
                      "apply+wait": 4.0}
    assert bench.stack_phases([(1.0, "no pulumi here")], 0.0) == {}


def test_the_plain_plan_installs_only_objects_and_releases_in_istios_order() -> None:
    rendered = render_config(parse_config(bench_raw()))
    plan = bench.plain_plan(rendered)
    assert [r["name"] for r in plan.releases] == ["istio-base", "istiod", "istio-cni", "ztunnel",
                                                   "istio-ingressgateway"]
    every = plan.first + plan.rest + plan.patches
    assert {item.role for item in every} == {"object", "patch"}  # no command, kind config or provider
    assert len(every) == len([item for item in rendered if item.is_object])
    assert {item.body["kind"] for item in plan.first} >= {"CustomResourceDefinition", "Namespace"}
    assert [item.resource_name for item in plan.patches] == ["ambient-label"]
    assert plan.namespaces_of("Deployment") == ["default"]
    assert plan.namespaces_of("Gateway", "gateway.networking.k8s.io/") == []
    # Without an Istio ingress there is no gateway release; a release Istio's order does not know is refused.
    no_ingress = [item for item in rendered if item.body.get("name") != "istio-ingressgateway"]
    assert [r["name"] for r in bench.plain_plan(no_ingress).releases][-1] == "ztunnel"
    stranger = Rendered("helmrelease-x-y.yaml", "helmrelease", "kubernetes:helm.sh/v3:Release", "y", {"name": "y"})
    with pytest.raises(ValueError, match="'y'"):
        bench.plain_plan([*rendered, stranger])


def test_helm_install_of_each_kind_of_chart_source(tmp_path: Path) -> None:
    values = tmp_path / "v.yaml"
    base = {"name": "istiod", "namespace": "istio-system", "chart": "istiod", "version": "1.31.1"}
    online = bench.helm_install({**base, "repository": "https://blob.istio.io/istio-release/charts"}, values)
    assert online[:7] == ["helm", "install", "istiod", "istiod", "--repo", "https://blob.istio.io/istio-release/charts",
                          "--version"]
    assert online[-7:] == ["--namespace", "istio-system", "--wait", "--timeout", "600s", "--values", str(values)]
    local = bench.helm_install({**base, "repository": "/cache/istio-1.31.1"}, values)
    assert local[3] == "/cache/istio-1.31.1/istiod" and "--version" not in local
    oci = bench.helm_install({**base, "repository": "oci://example.com/istio"}, values)
    assert oci[3:6] == ["oci://example.com/istio/istiod", "--version", "1.31.1"]


def test_summary_medians_and_ratios() -> None:
    records = [
        {"way": "stack", "figures": {"up s": 100.0, "no-op up s": 10.0}},
        {"way": "plain", "figures": {"up s": 50.0}},
        {"way": "stack", "figures": {"up s": 120.0, "no-op up s": 12.0}},
        {"way": "plain", "figures": {"up s": 60.0}},
        {"way": "plain", "figures": {"up s": 1.0}, "error": "RuntimeError: boom"},
    ]
    summary = bench.summarize(records)
    assert summary["up s"] == {"stack": {"median": 110.0, "min": 100.0, "max": 120.0, "n": 2},
                               "plain": {"median": 55.0, "min": 50.0, "max": 60.0, "n": 2}, "stack/plain": 2.0}
    assert "stack/plain" not in summary["no-op up s"]
    text = bench.table(summary)
    assert "up s  " in text and "110 (100-120)" in text and "55 (50-60)" in text
    assert text.splitlines()[-1].split()[-1] == "-"


def test_stream_times_each_line(tmp_path: Path) -> None:
    log: list[str] = []
    code, lines = bench.stream([sys.executable, "-c", "import time; print('a', flush=True); time.sleep(0.2); "
                                "print('b'); raise SystemExit(3)"], tmp_path, {}, 30, log)
    assert code == 3 and [line for _, line in lines] == ["a", "b"]
    assert lines[1][0] - lines[0][0] >= 0.15
    assert "(exit 3)" in log[0]
    started = time.monotonic()
    code, lines = bench.stream(["sh", "-c", "echo started; sleep 30 & wait"], tmp_path, {"PATH": "/usr/bin:/bin"},
                               3, log)  # long enough for a loaded machine to start sh
    assert code != 0 and [line for _, line in lines] == ["started"]
    assert time.monotonic() - started < 20  # the group ended: the backgrounded sleep too


class FakeMachine:
    """Docker, kind, helm and kubectl as the plain way calls them: records the calls, answers as a cluster would."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.envs: list[Mapping[str, str]] = []
        self.exists = False

    def sh(self, argv: Sequence[str], env: Mapping[str, str], log: list[str], timeout: float = 900,
           check: bool = True) -> str:
        self.calls.append(list(argv))
        self.envs.append(env)
        if argv[:3] == ["kind", "create", "cluster"]:
            self.exists = True
        if argv[-1] == KIND_DELETE:
            self.exists = False
        return ""

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        out = ""
        if args[0] == "stats":
            out = "\n".join(f"{bench.CLUSTER}-{n} 600MiB / 8GiB" for n in ("control-plane", "worker", "worker2"))
        elif args[0] == "exec":
            out = json.dumps({"images": [{"repoTags": ["docker.io/istio/ztunnel:1.31.1"]}]})
        elif args[0] == "ps":
            out = "abc\n" if self.exists else ""
        return subprocess.CompletedProcess(["docker", *args], 0, out, "")


def test_plain_run_does_the_stacks_work_in_istios_order_and_deletes_its_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()
    monkeypatch.setattr(bench, "sh", machine.sh)
    monkeypatch.setattr(bench.tier, "docker", machine.docker)
    record: dict[str, Any] = {"way": "plain", "run": 1, "figures": {}}
    bench.plain_run(bench_raw(), tmp_path, record)
    commands = [" ".join(call[:4]) if call[0] != "/bin/sh" else call[-1] for call in machine.calls]
    assert commands[0] == "kind create cluster --name"
    assert machine.calls[0][6] == str(tmp_path / "kind.yaml") and "name: ambient-bench" in (
        tmp_path / "kind.yaml").read_text()
    assert commands[1:3] == [image_model.PULL_SCRIPT, image_model.LOAD_SCRIPT]
    load_env = machine.envs[2]
    assert load_env["CLUSTER_NAME"] == bench.CLUSTER and load_env["WORKER_NODES"] == (
        "ambient-bench-worker,ambient-bench-worker2")
    helm = [call[2] for call in machine.calls if call[0] == "helm"]
    assert helm == ["istio-base", "istiod", "istio-cni", "ztunnel", "istio-ingressgateway"]
    first_helm = next(i for i, call in enumerate(machine.calls) if call[0] == "helm")
    last_helm = max(i for i, call in enumerate(machine.calls) if call[0] == "helm")
    assert any("first" in " ".join(call) for call in machine.calls[:first_helm])  # CRDs and namespaces before
    after = [" ".join(call) for call in machine.calls[last_helm + 1:]]
    # The app, its Deployments Available, then the label: the tutorial's order.
    assert "--for=condition=Available deployment --all -n default" in after[1]
    assert "--field-manager=plain-patch-0" in after[2]
    assert commands[-1] == KIND_DELETE and not machine.exists
    figures = record["figures"]
    assert {"up s", "destroy s", "phase create s", "phase load s", "phase crds+namespaces s", "phase helm s",
            "phase apply+wait s"} <= set(figures)
    assert figures["images on ambient-bench-worker"] == 1
    assert figures["preloaded on ambient-bench-control-plane"] == 1  # ztunnel, of the every-node images
    assert figures["peak node memory MiB (sum)"] == 1800
    assert record["images"]["ambient-bench-worker"]["missing"]  # Bookinfo's images: the fake node has none


def test_plain_run_deletes_its_cluster_when_a_step_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()

    def failing(argv: Sequence[str], env: Mapping[str, str], log: list[str], timeout: float = 900,
                check: bool = True) -> str:
        machine.sh(argv, env, log, timeout, check)
        if argv[0] == "helm":
            raise RuntimeError("helm: exit 1")
        return ""

    monkeypatch.setattr(bench, "sh", failing)
    monkeypatch.setattr(bench.tier, "docker", machine.docker)
    with pytest.raises(RuntimeError, match="helm"):
        bench.plain_run(bench_raw(), tmp_path, {"way": "plain", "run": 1, "figures": {}})
    assert machine.calls[-1][-1] == KIND_DELETE and not machine.exists


def test_main_interleaves_the_ways_and_reports_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    order: list[str] = []

    def way(name: str, up: float) -> Any:
        def run(raw: dict[str, Any], root: Path, record: dict[str, Any]) -> None:
            order.append(name)
            record["log"] = [f"{name} log"]
            if name == "plain" and record["run"] == 2:
                raise RuntimeError("kind create: exit 1")
            record["figures"].update({"up s": up * record["run"], "destroy s": 5.0})
        return run

    monkeypatch.setattr(bench, "prerequisites", list)
    monkeypatch.setattr(bench, "cluster_exists", lambda: False)
    monkeypatch.setattr(bench, "bench_config", lambda: (bench_raw(), {"docker.io/istio/ztunnel:1": "stand-in"},
                                                        "ztunnel is a stand-in"))
    monkeypatch.setattr(bench, "stack_run", way("stack", 100.0))
    monkeypatch.setattr(bench, "plain_run", way("plain", 50.0))
    monkeypatch.setattr(bench.tier, "docker", FakeMachine().docker)
    out = tmp_path / "report.json"
    assert bench.main(["--runs", "2", "--out", str(out)]) == 1
    assert order == ["stack", "plain", "stack", "plain"]
    report = json.loads(out.read_text())
    assert report["summary"]["up s"]["stack"]["median"] == 150 and report["summary"]["up s"]["plain"]["n"] == 1
    assert report["summary"]["up s"]["stack/plain"] == 3.0
    assert "kind create: exit 1" in report["records"][3]["error"] and "log" not in report["records"][3]
    assert (tmp_path / "kind-side-by-side-logs" / "run2-plain.log").read_text().startswith("plain log")
    printed = capsys.readouterr().out
    assert "STAND-IN: docker.io/istio/ztunnel:1" in printed and "FAILED" in printed and "stack/plain" in printed
