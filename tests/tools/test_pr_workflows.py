"""pr-diff.yml and pr-comment.yml: no secrets (forks too), the plan and engine diffs against the pull request's base,
one comment built from both and posted by the base repository's workflow. The steps that build and post the comment
run here as the runner would run them (bash), on recorded inputs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.unit.test_pr_comment import FAKE_GH
from tests.unit.test_workflows import workflow
from tools.diff import comment, post
from tools.testkit.schemas import GO_MINIMUM

pytestmark = pytest.mark.tools

FIXTURE = REPO / "tests" / "unit" / "fixtures" / "prdiff"


def step(job: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in job["steps"] if s.get("name") == name]
    return found


def test_pr_diff_needs_no_secrets_and_only_reads() -> None:
    text = (REPO / ".github" / "workflows" / "pr-diff.yml").read_text(encoding="utf-8")
    assert "secrets." not in text and "pull_request_target" not in text
    pr_diff = workflow("pr-diff.yml")
    assert set(pr_diff[True]) == {"pull_request"}  # PyYAML reads the key `on` as True
    assert pr_diff["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in pr_diff["jobs"].values())
    assert pr_diff["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"


def test_plan_job_diffs_every_stack_against_the_base() -> None:
    plan = workflow("pr-diff.yml")["jobs"]["plan"]
    assert plan["steps"][0]["with"]["fetch-depth"] == 0  # the base commit is there for git archive
    run = step(plan, "Plan diff against the base")["run"]
    assert 'python -m tools.diff --base "${BASE_SHA}"' in run and "--json build/prdiff/plan.json" in run
    assert run.startswith("set -o pipefail")  # the runner's bash -e alone would let `| tee` hide a failure
    [upload] = [s for s in plan["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["with"]["name"] == "plan-diff"


def test_engine_job_runs_the_engine_tier_on_every_stack_and_can_fail() -> None:
    engine = workflow("pr-diff.yml")["jobs"]["engine"]
    assert "continue-on-error" not in engine  # a failing engine diff fails the pull request's check
    assert engine["steps"][0]["with"]["fetch-depth"] == 0  # the base commit, for git archive
    commands = [str(s.get("run", "")) for s in engine["steps"]]
    # The tier is built by the script the engine tests use (a no-op when restored), keyed on every file with a pin.
    assert "tools/testkit/bootstrap-engine.sh" in commands
    [cache] = [s for s in engine["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
    for pinned in ("tools/testkit/bootstrap-engine.sh", "tools/testkit/engine/**", "tests/engine/upstream.py"):
        assert f"'{pinned}'" in cache["with"]["key"]
    assert set(cache["with"]["path"].split()) >= {f"~/.cache/ambient-mesh-engine/{d}" for d in
                                                  ("bin", "stamps", "pulumi-home", "upstream")}
    # (its Go: test_every_job_that_fetches_go_modules_has_the_go_they_need)
    [diff] = [c for c in commands if "tests.engine.diff" in c]
    # Every stack (no --stack), the PR's base, the JSON the comment job reads.
    assert '.venv/bin/python -m tests.engine.diff --base "${BASE_SHA}" --json build/prdiff/engine.json' in diff
    assert "--stack" not in diff
    [upload] = [s for s in engine["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()" and upload["with"]["name"] == "engine-diff"


def test_every_job_that_fetches_go_modules_has_the_go_they_need() -> None:
    for name in ("pr-diff.yml", "test.yml"):
        for job in workflow(name)["jobs"].values():
            runs = "\n".join(str(s.get("run", "")) for s in job["steps"])
            if "tools.testkit.schemas fetch" not in runs and "bootstrap-engine.sh" not in runs:
                continue
            [go] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-go@")]
            assert tuple(map(int, go["with"]["go-version"].split("."))) >= tuple(map(int, GO_MINIMUM.split("."))), (
                name, go)


def run_bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)


def test_comment_job_builds_one_comment_from_recorded_results(tmp_path: Path) -> None:
    job = workflow("pr-diff.yml")["jobs"]["comment"]
    assert job["needs"] == ["plan", "engine"] and job["if"] == "always() && needs.plan.result == 'success'"
    build = step(job, "Build the comment")
    # The recorded inputs where the downloads put them: the plan diff's JSON and an engine result.
    work = tmp_path / "work"
    (work / "build" / "plan").mkdir(parents=True)
    (work / "build" / "engine").mkdir(parents=True)
    from tools.diff.snapshot import build_report, read_render

    sides = {side: {stack.name: read_render(stack, stack.name) for stack in sorted((FIXTURE / side).iterdir())
                    if stack.is_dir()} for side in ("base", "head")}
    plan = {"report": build_report(sides["base"], sides["head"], "b", "h").to_json(),
            "policy": json.loads((FIXTURE / "policy.json").read_text(encoding="utf-8"))}
    (work / "build" / "plan" / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    engine = {"status": "ok", "stacks": {"dev": {"counts": {"create": 0, "update": 1, "replace": 0, "delete": 0,
                                                            "same": 39}, "steps": []}}}
    (work / "build" / "engine" / "engine.json").write_text(json.dumps(engine), encoding="utf-8")
    summary = tmp_path / "summary.md"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # `python` on the runner is setup-python's, with the requirements installed
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "GITHUB_STEP_SUMMARY": str(summary), **{key: f"<{key}>" for key in build["env"]}}
    env.update(RUN_URL="https://github.com/o/r/actions/runs/42", PR_NUMBER="7", HEAD_SHA="abc")
    done = run_bash(build["run"], env, work)
    assert done.returncode == 0, done.stderr
    body = (work / "build" / "comment" / "comment.md").read_text(encoding="utf-8")
    assert body.startswith(comment.MARKER) and "- `dev`: 1 to update" in body
    assert "- `zero-trust`: not run by the engine job" in body
    assert "(https://github.com/o/r/actions/runs/42)" in body
    assert (work / "build" / "comment" / "pr-number").read_text() == "7\n"
    assert (work / "build" / "comment" / "head-sha").read_text() == "abc\n"
    assert summary.read_text(encoding="utf-8") == body
    [upload] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["with"] == {"name": "pr-comment", "path": "build/comment/", "retention-days": 7}


def test_pr_comment_posts_with_the_base_repositorys_token_and_code(tmp_path: Path) -> None:
    pr_comment = workflow("pr-comment.yml")
    assert pr_comment[True] == {"workflow_run": {"workflows": ["pr-diff"], "types": ["completed"]}}
    assert pr_comment["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "write"}
    job = pr_comment["jobs"]["post"]
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    checkout = job["steps"][0]
    assert checkout["uses"] == "actions/checkout@v6" and "ref" not in checkout.get("with", {})  # default branch
    download = job["steps"][1]
    assert download["with"]["name"] == "pr-comment"
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"

    # The posting step, as the runner runs it, against a fake gh: the bot's comment exists, so it is edited.
    run = step(job, "Post or edit the comment")
    artifact = tmp_path / "pr-comment"
    artifact.mkdir()
    body = comment.build(Report_empty(), [], None, None)
    (artifact / "comment.md").write_text(body, encoding="utf-8")
    (artifact / "pr-number").write_text("7\n", encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH, encoding="utf-8")
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    comments = [[{"id": 9, "user": {"login": post.BOT}, "body": post.MARKER + "\nold"}]]
    (tmp_path / "comments.json").write_text(json.dumps(comments), encoding="utf-8")
    log = tmp_path / "gh.log"
    python3 = shutil.which("python3") or sys.executable
    env = {"PATH": f"{bin_dir}{os.pathsep}{Path(python3).parent}{os.pathsep}/usr/bin:/bin",
           "GH_LOG": str(log), "GH_COMMENTS": str(tmp_path / "comments.json"), "GH_HEAD_SHA": "abc",
           "GH_TOKEN": "x", "REPOSITORY": "o/r", "HEAD_SHA": "abc", "COMMENT_DIR": str(artifact)}
    done = run_bash(run["run"], env, REPO)
    assert done.returncode == 0, done.stderr
    assert "edited comment 9 on #7" in done.stdout
    calls = log.read_text(encoding="utf-8").splitlines()
    assert calls[-1].startswith("api --method PATCH repos/o/r/issues/comments/9 -F body=@")


def Report_empty() -> Any:  # noqa: N802 - reads as the value it makes
    from tools.diff.compare import Report

    return Report("b", "h", [])


def test_post_needs_nothing_but_the_standard_library() -> None:
    """pr-comment.yml runs it with the runner's python3, without the project's requirements."""
    done = subprocess.run([sys.executable, "-S", "-m", "tools.diff.post", "--help"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
