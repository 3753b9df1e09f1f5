"""`make diff BASE=<ref>` end to end: a clone of this repository with one commit on top (a config change and a code
change), the base rendered by its own code from `git archive`, the head in the clone's working tree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.tools,
              pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None,
                                 reason="needs git and make")]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def test_make_diff_shows_exactly_the_commits_changes(tmp_path: Path) -> None:
    clone = tmp_path / "repo"
    git(tmp_path, "clone", "--quiet", str(REPO), str(clone))
    stack_file = clone / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text(encoding="utf-8").replace(
        "ingressNodePort: 30080", "ingressNodePort: 30081"), encoding="utf-8")
    specs = clone / "components" / "model" / "specs.py"
    specs.write_text(specs.read_text(encoding="utf-8").replace(
        '    ("exact", "/logout"),\n', '    ("exact", "/logout"),\n    ("prefix", "/api/v1/ratings"),\n'),
        encoding="utf-8")
    git(clone, "commit", "--quiet", "-am", "fixture: a NodePort and a route")

    out = tmp_path / "diff.json"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MAKEFLAGS")}
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "diff", "BASE=HEAD~1", f"BIN={Path(sys.executable).parent}",
         f"DIFF_ARGS=--gateway-api-crds tests/fixtures/gateway-api-crds.yaml --json {out}"],
        cwd=clone, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout
    base_sha = git(clone, "rev-parse", "--short=7", "HEAD~1").strip()
    assert text.startswith(f"Plan diff: HEAD~1 ({base_sha}) → working tree at ")
    assert re.search(r"^  dev \(Istio 1\.31\.1\): \d+ to replace$", text, re.MULTILINE), text
    assert "  zero-trust (Istio 1.31.1): 1 to update\n" in text
    assert "  getting-started (Istio 1.31.1): 1 to update\n" in text  # its HTTPRoute bookinfo
    for line in ("  dev: REPLACE kind cluster ambient: the kind cluster's config changed",
                 "    ~ nodes[0].extraPortMappings[containerPort=30081].containerPort: 30080 → 30081",
                 "    ~ values.service.ports[name=http2].nodePort: 30080 → 30081",
                 "    ~ triggers.cluster.ingress_node_port: 30080 → 30081",
                 "    + spec.http[0].match[4]: {uri: {prefix: /api/v1/ratings}}"):
        assert line in text, line
    # The field lines are the fixture's and nothing else.
    field_lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    assert sorted(set(field_lines)) == sorted({
        "~ nodes[0].extraPortMappings[containerPort=30081].containerPort: 30080 → 30081",
        "~ values.service.ports[name=http2].nodePort: 30080 → 30081",
        "~ triggers.cluster.ingress_node_port: 30080 → 30081",
        "+ spec.http[0].match[4]: {uri: {prefix: /api/v1/ratings}}",
        "+ spec.rules[0].matches[4]: {path: {type: PathPrefix, value: /api/v1/ratings}}",
    }), text
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [stack["stack"] for stack in data["report"]["stacks"]] == ["dev", "getting-started", "zero-trust"]
    assert {result["stack"]: result["violations"] for result in data["policy"]} == {
        "dev": {}, "getting-started": {}, "zero-trust": {}}
