"""README's prerequisites and preflight sections say what the code checks: one source of truth for the minimums
(versions.PREREQUISITES), kind's default node images (versions.KIND_RELEASES) and Docker's figures (preflight.need)."""

from __future__ import annotations

import io
import json
import re

from components.model import preflight, versions
from tests.conftest import REPO, base_config
from tests.unit.test_doctor import DOCKER_INFO, FakeHost
from tools import doctor

README = (REPO / "README.md").read_text(encoding="utf-8")
ROWS = {"docker": "Docker", "kind": "[kind]", "kubectl": "kubectl", "pulumi": "Pulumi CLI", "python": "Python"}


def prerequisite_row(tool: str) -> str:
    section = README.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    [row] = [line for line in section.splitlines() if line.startswith(f"| {ROWS[tool]}")]
    return row.split("|")[2].strip()


def test_every_prerequisite_has_a_row_with_its_minimum() -> None:
    assert set(ROWS) == set(versions.PREREQUISITES)
    for tool, prerequisite in versions.PREREQUISITES.items():
        assert prerequisite_row(tool).startswith(f"{prerequisite.minimum} or newer"), tool


def test_kind_row_is_the_default_node_image_table() -> None:
    compat = versions.COMPATIBILITY[versions.minor(versions.ISTIO_VERSION) or ""]
    fine = versions.kind_releases_in_range(compat)
    row = prerequisite_row("kind")
    low, high = compat.kubernetes
    assert f"{fine[0]} to {fine[-1]} as they come" in row and f"Kubernetes {low}–{high}" in row
    newest = max(versions.KIND_RELEASES, key=lambda k: tuple(int(p) for p in k.split(".")))
    assert newest not in fine
    release = versions.KIND_RELEASES[newest]
    default = versions.node_image_kubernetes(release.default_node_image)
    assert f"kind {newest} defaults to {default}" in row
    assert f"`{versions.supported_node_image(release, compat)}`" in row


def test_docker_row_is_what_the_stack_needs() -> None:
    laptop = preflight.need(base_config())
    defaults = preflight.need(base_config(istio={"resourceProfile": "chart-defaults"}))
    row = prerequisite_row("docker")
    assert f"at least {laptop.cpus} CPUs and {laptop.memory_mib / 1024:.1f} GiB" in row
    assert f"`chart-defaults`: {defaults.cpus} CPUs and {defaults.memory_mib / 1024:.1f} GiB" in row


def test_readme_explains_the_figures_the_code_uses() -> None:
    text = " ".join(README.split())
    assert f"({preflight.CONTROL_PLANE_CPU_MILLICORES}m)" in text
    assert f"kindnet ({preflight.NODE_CPU_MILLICORES}m a node)" in text
    assert f"{preflight.PROXY.cpu_millicores}m per extra Envoy" in text
    assert f"{preflight.NODE_MEMORY_MIB} MiB per node" in text
    assert f"{preflight.CONTROL_PLANE_MEMORY_MIB} MiB for the control plane" in text
    assert f"{preflight.APP_MEMORY_MIB['reviews']} MiB each of three" in text
    assert f"{preflight.ENGINE_MEMORY_MIB} MiB for the engine" in text
    assert "fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512" in text


def test_readme_doctor_example_is_what_doctor_prints() -> None:
    host = FakeHost()
    host.tools["docker"] = json.dumps({**DOCKER_INFO, "NCPU": 2, "MemTotal": int(1.9 * 1024 ** 3), "Name": "colima"})
    host.tools["kind"] = "kind v0.33.0 go1.25 darwin/arm64\n"
    out = io.StringIO()
    assert doctor.main(["--stack", "dev"], host, out) == 1
    example = README.split("```text\ndoctor: ", 1)[1].split("```", 1)[0]

    def timeless(text: str) -> str:
        return re.sub(r"\(\d+\.\d s\)", "(… s)", text.strip())
    assert timeless("doctor: " + example) == timeless(out.getvalue())
