"""The one pull-request comment: `python -m tools.diff.comment --plan plan.json [--engine engine.json] [--run-url URL]`.

Its body starts with a hidden marker (MARKER) by which tools.diff.post finds it again and edits it in place on every
push. Always visible: the stacks and their Istio version, the counts of the offline plan diff (and of the engine's
preview where it ran), replacements and deletions flagged first, the Helm releases whose chart or values change, the
policy pack's result; collapsed: every change field by field, the engine's steps. Last, a link to the run. A body
over GitHub's limit gets shorter details (fewer field lines per object, then none), never a cut summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.diff import report as formats
from tools.diff.compare import OPS, Report
from tools.diff.policy import PolicyResult

MARKER = "<!-- ambient-mesh:plan-diff -->"
MAX_BODY = 65_000  # GitHub refuses comments over 65,536 characters
FIELD_BUDGETS = (60, 20, 5, 0)


def engine_lines(engine: Mapping[str, Any] | None, stacks: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(always visible, collapsed) lines for the engine's result (tools.diff.engine's JSON); `stacks` are the plan
    diff's, each said to be not run where the engine left it out."""
    if not engine:
        return ["**Engine** (`pulumi preview --diff` against the base's state on kwok): not run in this workflow."], []
    status = engine.get("status")
    if status != "ok":
        return [f"**Engine** (`pulumi preview --diff` against the base's state on kwok): **{status}** — "
                f"{engine.get('reason', 'no reason given')}"], []
    visible = ["**Engine** (`pulumi up` of the base on a throw-away kwok cluster per stack, with Istio's own charts "
               "and the real istiod, then `pulumi preview --diff` of the head; existing-cluster mode without the "
               "smoke check, so the kind cluster and the smoke check are the plan diff's alone):"]
    collapsed: list[str] = []
    for stack, result in sorted(engine.get("stacks", {}).items()):
        counts = {op: int(result.get("counts", {}).get(op, 0)) for op in OPS}
        visible.append(f"- `{stack}`: {formats.counts_line(counts)}")
        steps = [step for step in result.get("steps", []) if step.get("op") != "same"]
        # What the engine replaces or deletes is what a reviewer must not miss: named here, not only in the details.
        for step in steps:
            if step.get("op") in ("replace", "delete"):
                because = ", ".join(sorted(step.get("diff", {})))
                visible.append(f"  - ⚠️ **{step['op']}** `{step['type']}` `{step['name']}`"
                               + (f" (because of {because})" if because else ""))
        if steps:
            collapsed += [f"#### `{stack}`", "", "```diff"]
            for step in steps:
                symbol = {"create": "+", "delete": "-", "update": "~"}.get(step["op"], "!")
                collapsed.append(f"{symbol} {step['op']} {step['type']} {step['name']}")
                for path, kind in sorted(step.get("diff", {}).items()):
                    collapsed.append(f"    {kind}: {path}")
            collapsed += ["```", ""]
    for stack in stacks:
        if stack not in engine.get("stacks", {}):
            visible.append(f"- `{stack}`: not run by the engine job (the plan diff above covers it)")
    return visible, collapsed


def policy_lines(results: Sequence[PolicyResult]) -> list[str]:
    if not results:
        return ["**Policy pack**: not run."]
    failed = [result for result in results if not result.passed]
    stacks = ", ".join(f"`{result.stack}`" + (f" (with `{result.config_file}`)" if result.config_file else "")
                       for result in results)
    if not failed:
        return [f"**Policy pack** (`policy/`, on the head's mock graph): ✅ all {results[0].policies} policies pass "
                f"on {stacks}."]
    lines = ["**Policy pack** (`policy/`, on the head's mock graph): ❌ violations on "
             + ", ".join(f"`{result.stack}`" for result in failed) + ":"]
    for result in failed:
        if result.error:
            lines.append(f"- `{result.stack}`: {result.error}")
        for policy, messages in sorted(result.violations.items()):
            for message in messages:
                lines.append(f"- `{result.stack}` **{policy}**: {message}")
    return lines


def stacks_line(report: Report) -> str:
    return "Stacks: " + ", ".join(f"`{stack.stack}` ({formats.istio_label(stack)})" for stack in report.stacks)


def build(report: Report, policy: Sequence[PolicyResult] = (), engine: Mapping[str, Any] | None = None,
          run_url: str | None = None, run_label: str = "the workflow run") -> str:
    engine_visible, engine_collapsed = engine_lines(engine, [stack.stack for stack in report.stacks])
    footer = [f"<sub>[{run_label}]({run_url}) · updated in place on every push · `make diff BASE=<ref>` shows the "
              "same locally</sub>" if run_url else
              "<sub>`make diff BASE=<ref>` shows the same locally</sub>"]
    for budget in FIELD_BUDGETS:
        out = [MARKER, "### Plan diff", "", f"`{report.base}` → `{report.head}` · {stacks_line(report)}", ""]
        out += formats.markdown_summary(report)
        out += ["", *engine_visible, "", *policy_lines(policy)]
        details = formats.markdown_details(report, budget) if budget else []
        if report.changed:
            if details:
                out += ["", "<details><summary>Every change, field by field</summary>", "", *details, "</details>"]
            else:
                out += ["", "_Field-level details left out: too long for a comment. `make diff` or the run's log "
                        "has them._"]
        if engine_collapsed:
            out += ["", "<details><summary>Engine steps</summary>", "", *engine_collapsed, "</details>"]
        out += ["", *footer]
        body = "\n".join(out).rstrip() + "\n"
        if len(body) <= MAX_BODY:
            return body
    return body[:MAX_BODY - 100] + "\n\n_(cut: too long for a comment)_\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff.comment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="tools.diff --json output")
    parser.add_argument("--engine", help="tools.diff.engine --json output (optional)")
    parser.add_argument("--run-url", help="link to the workflow run")
    parser.add_argument("--out", help="write the body here (default: stdout)")
    args = parser.parse_args(argv)
    plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
    engine = None
    if args.engine and Path(args.engine).is_file():
        engine = json.loads(Path(args.engine).read_text(encoding="utf-8"))
    elif args.engine:
        engine = {"status": "not run", "reason": f"no engine result ({args.engine} missing: see the run's engine job)"}
    body = build(Report.from_json(plan["report"]), [PolicyResult.from_json(p) for p in plan.get("policy", [])],
                 engine, args.run_url)
    if args.out:
        Path(args.out).write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
