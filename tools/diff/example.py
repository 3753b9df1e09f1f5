"""README's example pull-request comment, made by the tool from a committed fixture pair:
`python -m tools.diff.example [--write]`.

The pair (tests/unit/fixtures/prdiff/) is two real renders of both stacks, trimmed to a few objects each: the base
is the repository's stack files, the head changes `cluster.ingressNodePort` (30080 → 30081) in dev and adds HEAD to
zero-trust's `security.l7Methods`. policy.json is the policy pack's result on the head's graphs, recorded; engine.json
is `python -m tools.diff.engine --stack dev` of the same change against a kwok cluster of the engine tier, recorded.
`--write` puts the comment into README between the prdiff-example markers; a unit test fails when README's example is
not what this prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tools.diff import comment
from tools.diff.policy import PolicyResult
from tools.diff.snapshot import build_report, read_render
from tools.render import REPO

FIXTURE = REPO / "tests" / "unit" / "fixtures" / "prdiff"
README = REPO / "README.md"
BEGIN = "<!-- prdiff-example:begin (python -m tools.diff.example --write) -->"
END = "<!-- prdiff-example:end -->"
RUN_URL = "https://github.com/OWNER/ambient-mesh/actions/runs/123456789"


def example() -> str:
    sides = {side: {stack.name: read_render(stack, stack.name) for stack in sorted((FIXTURE / side).iterdir())
                    if stack.is_dir()} for side in ("base", "head")}
    report = build_report(sides["base"], sides["head"], "main (base fixture)", "pull request (head fixture)")
    policy = [PolicyResult.from_json(data) for data in json.loads((FIXTURE / "policy.json").read_text("utf-8"))]
    engine = json.loads((FIXTURE / "engine.json").read_text("utf-8"))
    return comment.build(report, policy, engine, RUN_URL, "pr-diff run #123456789")


def readme_block(body: str) -> str:
    return f"{BEGIN}\n````markdown\n{body}````\n{END}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff.example", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite README's example")
    args = parser.parse_args(argv)
    body = example()
    if not args.write:
        sys.stdout.write(body)
        return 0
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"example: README has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    README.write_text(before + readme_block(body) + after, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
