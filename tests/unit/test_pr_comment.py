"""The pull-request comment: its builder on recorded inputs (the committed fixture pair, a recorded preview), the
find-and-edit poster against a fake `gh`, the engine diff's reading of `pulumi preview --json`, README's example."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tools.diff import comment, example, post
from tools.diff.compare import Report
from tools.diff.engine import Target, parse_preview, project_dir, side_config
from tools.diff.policy import PolicyResult
from tools.diff.snapshot import build_report, read_render

FIXTURE = REPO / "tests" / "unit" / "fixtures" / "prdiff"


@pytest.fixture(scope="module")
def body() -> str:
    return example.example()


def test_comment_starts_with_the_marker_and_names_stacks_and_istio(body: str) -> None:
    assert body.startswith(comment.MARKER + "\n") and comment.MARKER == post.MARKER
    assert "Stacks: `dev` (Istio 1.31.1), `zero-trust` (Istio 1.31.1)" in body


def test_comment_shows_counts_then_flags_then_details(body: str) -> None:
    table = body.index("| stack | Istio | create | update | replace | delete |")
    flags = body.index("> **Replaced or deleted** — check these first:")
    details = body.index("<details><summary>Every change, field by field</summary>")
    assert table < flags < details
    assert "| `dev` | 1.31.1 | 0 | 0 | **19** | 0 |" in body and "| `zero-trust` | 1.31.1 | 0 | 1 | **1** | 0 |" in body
    assert "> - `dev`: **replace** `kind cluster ambient`: the kind cluster's config changed" in body
    # Running the smoke check again is not a deletion: listed, not flagged.
    assert "command smoke-verify" not in body[flags:body.index("\n\n", flags)]
    assert "Run again (replaced, nothing removed): `dev` `command smoke-verify`; `dev` `command cluster-kubeconfig`" \
        in body
    assert "Helm releases whose chart or values change:\n" \
        "- `dev` `istio-system/istio-ingressgateway: replace, chart gateway 1.31.1, 1 value changed`" in body
    collapsed = body[details:body.index("</details>")]
    assert "    ~ values.service.ports[name=http2].nodePort: 30080 → 30081" in collapsed
    assert "    + spec.rules[0].to[0].operation.methods[1]: HEAD" in collapsed


def test_comment_policy_and_run_link(body: str) -> None:
    assert "✅ all 9 policies pass on `dev`, `zero-trust` (with `policy/config.zero-trust.json`)" in body
    assert body.rstrip().endswith("shows the same locally</sub>") and f"]({example.RUN_URL})" in body
    failed = PolicyResult("dev", None, 9, {"container-images-pinned": ["image app:latest is not pinned"]})
    lines = comment.policy_lines([failed, PolicyResult("zero-trust", None, 9)])
    assert lines[0].endswith("❌ violations on `dev`:")
    assert lines[1] == "- `dev` **container-images-pinned**: image app:latest is not pinned"


def test_comment_engine_sections() -> None:
    report = Report("b", "h", [])
    engine: dict[str, Any] = {"status": "ok", "stacks": {"dev": {
        "counts": {"create": 0, "update": 1, "replace": 0, "delete": 0, "same": 39},
        "steps": [{"op": "update", "type": "kubernetes:helm.sh/v3:Release", "name": "istio-ingress-gateway",
                   "diff": {"values.service.ports[0].nodePort": "update"}}]}}}
    body = comment.build(report, [], engine, None)
    assert "- `dev`: 1 to update" in body
    assert "<details><summary>Engine steps</summary>" in body
    assert "~ update kubernetes:helm.sh/v3:Release istio-ingress-gateway" in body
    assert "    update: values.service.ports[0].nodePort" in body
    assert "⚠️" not in body  # an update is not flagged
    # A replacement the engine plans is flagged with the counts, where it is always visible.
    engine["stacks"]["zero-trust"] = {"counts": {"create": 0, "update": 0, "replace": 1, "delete": 0, "same": 40},
                                      "steps": [{"op": "replace", "type": "kubernetes:helm.sh/v3:Release",
                                                 "name": "istio-istiod", "diff": {"name": "update-replace"}}]}
    body = comment.build(report, [], engine, None)
    flagged = "  - ⚠️ **replace** `kubernetes:helm.sh/v3:Release` `istio-istiod` (because of name)"
    assert flagged in body and body.index(flagged) < body.index("<details>")
    failed = comment.build(report, [], {"status": "failed", "reason": "pulumi up exited 255"}, None)
    assert "**failed** — pulumi up exited 255" in failed and "Engine steps" not in failed
    assert "**No changes**" in failed


def test_a_huge_diff_keeps_the_summary_and_shortens_the_details(body: str) -> None:
    plan = Report.from_json(json.loads(json.dumps(_report_json())))
    for stack in plan.stacks:
        for change in stack.changes:
            change.fields = change.fields * 1500
    built = comment.build(plan, [], None, None)
    assert len(built) <= comment.MAX_BODY
    assert "| stack | Istio |" in built and "Replaced or deleted" in built
    assert "more lines (python -m tools.diff shows them all)" in built or "Field-level details left out" in built


def _report_json() -> dict[str, Any]:
    sides = {side: {stack.name: read_render(stack, stack.name) for stack in sorted((FIXTURE / side).iterdir())
                    if stack.is_dir()} for side in ("base", "head")}
    return build_report(sides["base"], sides["head"], "b", "h").to_json()


def test_comment_cli_reads_the_tools_json(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"report": _report_json(),
                                "policy": json.loads((FIXTURE / "policy.json").read_text("utf-8"))}), "utf-8")
    out = tmp_path / "comment.md"
    assert comment.main(["--plan", str(plan), "--engine", str(tmp_path / "missing.json"), "--out", str(out),
                         "--run-url", "https://example.invalid/run/1"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith(comment.MARKER) and "**not run** — no engine result" in text
    assert "(https://example.invalid/run/1)" in text


def test_readme_example_is_what_the_tool_prints(body: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert example.readme_block(body) in readme, "run `python -m tools.diff.example --write`"


# --- posting: find the comment by its marker, edit it; else post one ---------------------------------------------

FAKE_GH = """#!/bin/sh
printf '%s\\n' "$*" >> "$GH_LOG"
case "$*" in
  "api --paginate --slurp "*) cat "$GH_COMMENTS" ;;
  "api repos/"*"/pulls/"*) printf '{"head": {"sha": "%s"}}\\n' "$GH_HEAD_SHA" ;;
  *) echo '{}' ;;
esac
"""


def run_post(tmp_path: Path, comments: list[dict[str, Any]], *extra: str) -> tuple[int, list[str]]:
    """tools.diff.post's main, against a fake gh on PATH: (exit status, the gh calls made)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH, encoding="utf-8")
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "comments.json").write_text(json.dumps([comments]), encoding="utf-8")
    body = tmp_path / "comment.md"
    body.write_text(post.MARKER + "\nhello\n", encoding="utf-8")
    log = tmp_path / "gh.log"
    log.write_text("", encoding="utf-8")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GH_LOG": str(log),
           "GH_COMMENTS": str(tmp_path / "comments.json"), "GH_HEAD_SHA": "abc"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        code = post.main(["--repo", "o/r", "--pr", "7", "--body", str(body), *extra])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, log.read_text(encoding="utf-8").splitlines()


def test_post_edits_the_bots_comment_in_place(tmp_path: Path) -> None:
    comments = [{"id": 1, "user": {"login": "someone"}, "body": post.MARKER + " quoted by a human"},
                {"id": 2, "user": {"login": post.BOT}, "body": post.MARKER + "\nold"}]
    code, calls = run_post(tmp_path, comments, "--head-sha", "abc")
    assert code == 0
    assert calls[0] == "api repos/o/r/pulls/7"
    assert calls[-1] == f"api --method PATCH repos/o/r/issues/comments/2 -F body=@{tmp_path / 'comment.md'}"
    assert not [call for call in calls if "POST" in call]


def test_post_creates_one_when_there_is_none(tmp_path: Path) -> None:
    code, calls = run_post(tmp_path, [{"id": 1, "user": {"login": "someone"}, "body": post.MARKER}])
    assert code == 0
    assert calls[-1] == f"api --method POST repos/o/r/issues/7/comments -F body=@{tmp_path / 'comment.md'}"


def test_post_refuses_another_pull_requests_head(tmp_path: Path) -> None:
    code, calls = run_post(tmp_path, [], "--head-sha", "not-the-head")
    assert code == 0 and calls == ["api repos/o/r/pulls/7"]  # nothing written


def test_post_refuses_a_bad_number(tmp_path: Path) -> None:
    assert post.main(["--repo", "o/r", "--pr", "7; rm -rf /", "--body", str(tmp_path / "x")]) == 2


# --- the engine diff's reading of the CLI ---------------------------------------------------------------------

def test_engine_reads_a_recorded_preview() -> None:
    counts, steps = parse_preview((FIXTURE / "preview-dev-creates.json").read_text(encoding="utf-8"))
    recorded = json.loads((FIXTURE / "preview-dev-creates.json").read_text(encoding="utf-8"))
    assert counts["create"] == recorded["changeSummary"]["create"] - 1  # the stack itself is not counted
    assert {step.op for step in steps} == {"create"}
    assert ("kubernetes:helm.sh/v3:Release", "istio-ingress-gateway") in {(s.type, s.name) for s in steps}


def test_engine_counts_a_replacement_once_and_keeps_property_diffs() -> None:
    urn = "urn:pulumi:dev::ambient-mesh::ambient-mesh:istio:IstioAmbient$kubernetes:helm.sh/v3:Release::{}"
    preview = {"steps": [
        {"op": "same", "urn": urn.format("istio-base")},
        {"op": "update", "urn": urn.format("istio-ingress-gateway"), "diffReasons": ["values"],
         "detailedDiff": {"values.service.ports[0].nodePort": {"kind": "update", "inputDiff": True}}},
        {"op": "create-replacement", "urn": urn.format("istio-istiod")},
        {"op": "replace", "urn": urn.format("istio-istiod"), "detailedDiff": {"name": {"kind": "update-replace"}}},
        {"op": "delete-replaced", "urn": urn.format("istio-istiod")},
        {"op": "delete", "urn": urn.format("gone"), "diffReasons": []},
    ]}
    counts, steps = parse_preview(json.dumps(preview))
    assert counts == {"create": 0, "update": 1, "replace": 1, "delete": 1, "same": 1}
    assert [(s.op, s.name, s.diff) for s in steps if s.op != "same"] == [
        ("update", "istio-ingress-gateway", {"values.service.ports[0].nodePort": "update"}),
        ("replace", "istio-istiod", {"name": "update-replace"}),
        ("delete", "gone", {})]


def test_engine_points_each_side_at_the_existing_cluster(tmp_path: Path) -> None:
    stack = yaml.safe_load((REPO / "Pulumi.zero-trust.yaml").read_text(encoding="utf-8"))["config"]
    target = Target(tmp_path / "kubeconfig", tmp_path / "sources")
    side = side_config(REPO / "Pulumi.zero-trust.yaml", target, tmp_path / "charts-link")
    assert side is not None
    config = side.config
    assert config["ambient-mesh:cluster"]["provider"] == "existing"
    assert config["ambient-mesh:cluster"]["kubeconfig"] == str(tmp_path / "kubeconfig")
    assert config["ambient-mesh:cluster"]["name"] == "ambient-zt"  # the rest of the stack's own config stays
    # One chart path for both sides (the session points it at each side's version), the bundle of the stack's version.
    assert config["ambient-mesh:istio"]["repository"] == str(tmp_path / "charts-link")
    assert side.istio_version == config["ambient-mesh:istio"]["version"]
    version = config["ambient-mesh:gatewayApi"]["version"]
    assert config["ambient-mesh:gatewayApi"]["source"] == str(
        tmp_path / "sources" / f"gateway-api-{version}" / "standard-install.yaml")
    assert config["ambient-mesh:verify"]["smokeCheck"] is False
    assert config["ambient-mesh:security"]["l7Methods"] == ["GET"]
    # Without local sources the stack's own repository and bundle stay; a side without the stack file has none.
    online = side_config(REPO / "Pulumi.zero-trust.yaml", Target(tmp_path / "kubeconfig"), tmp_path / "link")
    assert online is not None
    assert online.config["ambient-mesh:istio"]["repository"] == stack["ambient-mesh:istio"]["repository"]
    assert side_config(tmp_path / "Pulumi.gone.yaml", target, tmp_path / "link") is None


def test_engine_reads_istios_addons_beside_the_charts(tmp_path: Path) -> None:
    """A stack with add-ons and no source of its own (getting-started) reads them from the side's chart version."""
    target = Target(tmp_path / "kubeconfig", tmp_path / "sources")
    side = side_config(REPO / "Pulumi.getting-started.yaml", target, tmp_path / "charts-link")
    assert side is not None and side.config["ambient-mesh:observability"]["addons"]
    assert side.config["ambient-mesh:observability"]["source"] == str(tmp_path / "charts-link" / "addons")
    zero_trust = side_config(REPO / "Pulumi.zero-trust.yaml", target, tmp_path / "charts-link")
    assert zero_trust is not None and not zero_trust.config["ambient-mesh:observability"].get("source")


def test_engine_sides_run_the_program_through_the_tiers_wrapper(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "components").mkdir(parents=True)
    (tree / "Pulumi.yaml").write_text("name: ambient-mesh\n", encoding="utf-8")
    (tree / "__main__.py").write_text("# the program\n", encoding="utf-8")
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text("# the tier's wrapper\n", encoding="utf-8")
    venv = tmp_path / "venv"
    head = project_dir(tmp_path / "head", tree, venv, wrapper, {"values.json": "{}"}, link=True)
    assert (head / "program.py").resolve() == (tree / "__main__.py").resolve()  # the head's own program, linked
    assert (head / "__main__.py").read_text(encoding="utf-8") == "# the tier's wrapper\n"
    assert (head / "values.json").read_text(encoding="utf-8") == "{}"
    assert (head / "components").resolve() == (tree / "components").resolve()
    assert (head / ".venv").resolve() == venv.resolve() and (head / "Pulumi.yaml").is_file()
    # The base is a `git archive` copy: its program is renamed in place; without a wrapper it stays __main__.py.
    base = project_dir(tree, tree, venv, wrapper, {}, link=False)
    assert (base / "program.py").read_text(encoding="utf-8") == "# the program\n"
    assert (base / "__main__.py").read_text(encoding="utf-8") == "# the tier's wrapper\n"
    plain = project_dir(tmp_path / "plain", tmp_path / "head", venv, None, {}, link=True)
    assert not (plain / "program.py").exists() and (plain / "__main__.py").is_symlink()
