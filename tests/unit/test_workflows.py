"""The GitHub workflows: the preview applies the policy pack with the pinned CLI, and without a backend it says so
instead of pretending. (actionlint checks their syntax: tools/testkit/lint-workflows.sh.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"


def workflow(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def pins(path: Path) -> dict[str, str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return dict(line.split("==", 1) for line in lines if "==" in line)


def test_preview_runs_pulumi_preview_diff_with_the_policy_pack_and_leaves_the_comment_to_pr_diff() -> None:
    """The backend preview stays only where a backend is configured, labelled so, and posts no comment of its own:
    the pull request's one comment is pr-diff's (tests/tools/test_pr_workflows.py)."""
    preview = workflow("preview.yml")["jobs"]["preview"]
    [step] = [s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert step["uses"] == "pulumi/actions@v7"
    assert step["with"]["command"] == "preview" and step["with"]["diff"] is True
    assert step["with"]["comment-on-pr"] is False and "pull-requests" not in preview["permissions"]
    assert "configured backend" in preview["name"]
    assert step["with"]["policyPacks"] == "policy" and (REPO / "policy" / "PulumiPolicy.yaml").is_file()


def test_preview_cli_matches_the_pinned_sdks() -> None:
    cli = workflow("preview.yml")["jobs"]["preview"]["env"]["PULUMI_VERSION"]
    assert pins(REPO / "requirements.txt")["pulumi"] == cli
    assert pins(REPO / "policy" / "requirements.txt")["pulumi"] == cli


def test_test_workflow_runs_on_push_and_pr_with_readmes_python() -> None:
    test = workflow("test.yml")
    assert set(test[True]) == {"push", "pull_request"}  # PyYAML reads the key `on` as True
    steps = test["jobs"]["test"]["steps"]
    [python] = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert python["with"]["python-version"] == "3.11"
    assert "Python | 3.11 or newer" in (REPO / "README.md").read_text(encoding="utf-8")
    commands = [str(s.get("run", "")) for s in steps]
    # .ci/run's checks, tier by tier: README's test command, then each tier by its marker.
    ci_run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("ruff check", "lint-imports", "mypy components tools tests bench policy",
                    "python -m pytest -q -n auto", "python -m pytest -q -n auto -m schema",
                    "python -m pytest -q -n auto -m tools"):
        assert any(run.startswith(command) for run in commands), command
        assert command.split(" ", 1)[-1] in ci_run, command


def test_the_engine_tier_runs_on_github_and_shares_its_cache_with_the_pr_engine_diff() -> None:
    engine = workflow("test.yml")["jobs"]["engine"]
    runs = [str(s.get("run", "")) for s in engine["steps"]]
    assert "tools/testkit/bootstrap-engine.sh" in runs
    assert ".venv/bin/python -m pytest -q -m engine tests/engine -rs" in runs
    # main's pushes save the tier under the key pull requests restore, here and in pr-diff's engine job.
    caches = [[s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache@")][0]["with"]
              for job in (engine, workflow("pr-diff.yml")["jobs"]["engine"])]
    assert caches[0] == caches[1]


def run_backend_check(tmp_path: Path, **secrets: str) -> tuple[str, str]:
    """The preview workflow's backend check, run by bash as the runner would: (mode, step summary)."""
    [step] = workflow("preview.yml")["jobs"]["backend"]["steps"]
    output, summary = tmp_path / "output", tmp_path / "summary"
    env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
           **{key: secrets.get(key, "") for key in step["env"]}}
    subprocess.run(["bash", "-e", "-c", step["run"]], env=env, check=True, capture_output=True)
    mode = dict(line.split("=", 1) for line in output.read_text().splitlines())["mode"]
    return mode, summary.read_text()


def test_preview_without_secrets_says_it_did_not_preview(tmp_path: Path) -> None:
    mode, summary = run_backend_check(tmp_path)
    assert mode == "none"
    assert "not run" in summary and "**not** previewed" in summary and "forks get no secrets" in summary


def test_preview_with_a_backend_url_but_no_passphrase_does_not_preview(tmp_path: Path) -> None:
    mode, summary = run_backend_check(tmp_path, PULUMI_BACKEND_URL="s3://state")
    assert mode == "none" and "PULUMI_CONFIG_PASSPHRASE is not" in summary


@pytest.mark.parametrize(("secrets", "expected"), [
    ({"PULUMI_BACKEND_URL": "s3://state", "PULUMI_CONFIG_PASSPHRASE": "x"}, "self-managed"),
    ({"PULUMI_ACCESS_TOKEN": "pul-x"}, "cloud"),
])
def test_preview_with_a_backend_previews(tmp_path: Path, secrets: dict[str, str], expected: str) -> None:
    mode, summary = run_backend_check(tmp_path, **secrets)
    assert mode == expected and "not run" not in summary
    assert workflow("preview.yml")["jobs"]["preview"]["if"] == "needs.backend.outputs.mode != 'none'"
