"""The e2e workflow: when it runs, what it pins, what it runs and what it keeps on failure.
(Its syntax is actionlint's job: tools/testkit/lint-workflows.sh.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.e2e import harness

REPO = harness.REPO
WORKFLOW = REPO / ".github" / "workflows" / "e2e.yml"


def load() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def steps() -> list[dict[str, Any]]:
    return list(load()["jobs"]["e2e"]["steps"])


def uses(prefix: str) -> dict[str, Any]:
    [step] = [s for s in steps() if str(s.get("uses", "")).startswith(prefix)]
    return step


def test_runs_on_prs_touching_the_stack_nightly_and_by_hand() -> None:
    on = load()[True]  # PyYAML reads the key `on` as True
    assert set(on) == {"pull_request", "schedule", "workflow_dispatch"}
    paths = on["pull_request"]["paths"]
    for path in ("components/**", "__main__.py", "Pulumi*.yaml", "requirements*.txt", "tests/e2e/**",
                 "tools/verify/**", "tools/doctor.py", ".github/workflows/e2e.yml"):
        assert path in paths
    [nightly] = on["schedule"]
    assert re.fullmatch(r"\d+ \d+ \* \* \*", nightly["cron"])


def test_tools_are_pinned() -> None:
    env = load()["env"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", env["KIND_VERSION"])
    assert re.fullmatch(r"v1\.3[2-6]\.\d+", env["KUBECTL_VERSION"])  # Istio 1.31's Kubernetes range
    pins = dict(line.split("==", 1) for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line)
    assert env["PULUMI_VERSION"] == pins["pulumi"]
    assert uses("pulumi/actions@")["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
    assert uses("azure/setup-kubectl@")["with"]["version"] == "${{ env.KUBECTL_VERSION }}"
    [kind] = [s for s in steps() if "go install" in str(s.get("run", ""))]
    assert 'go install "sigs.k8s.io/kind@${KIND_VERSION}"' in kind["run"]
    for step in steps():
        if "uses" in step:
            assert re.search(r"@v\d+$", step["uses"]), step["uses"]


def test_runs_the_e2e_suite_for_real_on_a_docker_runner() -> None:
    job = load()["jobs"]["e2e"]
    assert job["runs-on"].startswith("ubuntu-") and job["timeout-minutes"] <= 90
    assert load()["env"][harness.REQUIRED_ENV] == "1"  # never a green run that skipped everything
    [suite] = [s for s in steps() if "tests/e2e" in str(s.get("run", ""))]
    assert "tests/e2e" in suite["run"] and "-m e2e" in suite["run"]
    setup = " ".join(str(s.get("run", "")) for s in steps())
    assert "pip install -q -r requirements-dev.txt" in setup and "python -m venv .venv" in setup


def test_uploads_logs_and_report_on_failure() -> None:
    upload = uses("actions/upload-artifact@")
    assert upload["if"] == "failure()"
    artifacts = load()["env"][harness.ARTIFACTS_ENV]
    assert artifacts == "${{ github.workspace }}/build/e2e"
    assert Path(upload["with"]["path"]) == Path("build/e2e")
    # what the suite writes there: the verify report always, the ztunnel logs on failure
    suite = (REPO / "tests" / "e2e" / "test_e2e.py").read_text()
    assert '"verify-report.json"' in suite
    assert '"ztunnel.log"' in (REPO / "tests" / "e2e" / "harness.py").read_text()


def test_needs_no_secrets() -> None:
    assert "secrets." not in WORKFLOW.read_text() and load()["permissions"] == {"contents": "read"}


def test_runs_the_kind_tier_tests_with_real_images() -> None:
    """The same tests/kind suite as make test-kind, required (a missing tool fails it), on the runner's Docker."""
    [step] = [s for s in steps() if "tests/kind" in str(s.get("run", ""))]
    assert "-m kind" in step["run"] and step["env"]["KIND_TIER_REQUIRED"] == "1"
    assert "tests/kind/**" in load()[True]["pull_request"]["paths"]  # PyYAML reads `on` as True
