"""`python -m tools.diff [--base REF]`: what this working tree changes in every stack, against a git ref.

The base (default: the merge base of HEAD with main) is rendered by its own code from `git archive`, the head (this
working tree, uncommitted changes included) here; both under Pulumi mocks, offline. Prints a summary, then every
change at field level: plain text, or Markdown with `--format markdown`. `--json FILE` also writes the report and
the policy pack's results for tools.diff.comment. Exit status 0 whether or not anything changed; 2 on an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools import render
from tools.diff import report as formats
from tools.diff.compare import Report
from tools.diff.policy import PolicyResult, run_pack
from tools.diff.snapshot import (
    DiffError,
    Snapshot,
    build_report,
    default_base,
    describe,
    describe_head,
    render_head,
    start_base,
)


def policy_results(head: Mapping[str, Snapshot]) -> list[PolicyResult]:
    return [run_pack(stack, snapshot.graph) for stack, snapshot in sorted(head.items()) if snapshot.graph is not None]


def run(base_ref: str | None, gateway_api_crds: str | None = None, download: bool = False,
        repo: Path = render.REPO) -> tuple[Report, list[PolicyResult]]:
    ref = base_ref or default_base(repo)
    with tempfile.TemporaryDirectory(prefix="ambient-mesh-diff-") as workdir:
        pending = start_base(repo, ref, Path(workdir), gateway_api_crds, download)
        try:
            head = render_head(repo, gateway_api_crds, download)
        except Exception as error:  # a config error or a bug in the head's program: say so, as a diff error
            pending.stop()
            raise DiffError(f"the head did not render: {type(error).__name__}: {error}") from error
        base = pending.wait()
    report = build_report(base, head, describe(repo, ref), describe_head(repo), bool(gateway_api_crds))
    return report, policy_results(head)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="git ref to compare with (default: the merge base of HEAD with main)")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    parser.add_argument("--json", metavar="FILE", help="also write the report and the policy results as JSON")
    parser.add_argument("--max-fields", type=int, default=0,
                        help="field lines shown per object (0: all; the Markdown comment shows 60)")
    parser.add_argument("--gateway-api-crds", metavar="FILE",
                        help="render this Gateway API CRD bundle on both sides (default: each side's configured one)")
    parser.add_argument("--download", action="store_true",
                        help="download a configured Gateway API bundle that is not cached yet")
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        report, policies = run(args.base, args.gateway_api_crds, args.download)
    except DiffError as error:
        print(f"diff: {error}", file=sys.stderr)
        return 2
    if args.format == "markdown":
        sys.stdout.write(formats.markdown(report, args.max_fields or 60))
    else:
        sys.stdout.write(formats.text(report, args.max_fields))
    if args.json:
        data = {"report": report.to_json(), "policy": [result.to_json() for result in policies]}
        Path(args.json).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"diff: {len(report.stacks)} stacks in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
