"""The engine diff on the engine tier: `python -m tests.engine.diff --base REF [--stack S] [--json out.json]`.

What the pull-request workflow runs (job `engine` of .github/workflows/pr-diff.yml) and tests/engine/test_engine_diff.py
tests: tools.diff.engine (`pulumi up` of the base, `pulumi preview --diff` of the head on that state, `destroy`) with
each stack on a kwok cluster of its own, the real istiod beside it (tests/engine/istiod.py) and Istio's own charts
and Gateway API's own CRDs from the tier's cache (tests/engine/upstream.py), the program run through
tests/engine/engine_main.py for the tier's only values override (istiod's webhook URLs), on both sides alike.

Needs the engine tier built (tools/testkit/bootstrap-engine.sh); says what is missing otherwise (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.engine import istiod as istiod_module
from tests.engine import upstream
from tests.engine.istiod import Istiod
from tests.engine.kwok import (
    CONTROL_PLANE,
    ENGINE,
    KwokCluster,
    engine_bin,
    missing_binaries,
    missing_plugins,
    pulumi_env,
)
from tools import render
from tools.diff import engine

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "engine_main.py"
OVERRIDES_FILE = "engine-tier-values.json"  # what engine_main.py reads


def missing() -> list[str]:
    """What the engine tier lacks for the engine diff (empty when it can run)."""
    return missing_binaries(CONTROL_PLANE + ENGINE + ("pilot-discovery",)) + missing_plugins() + upstream.missing()


def tier_env() -> dict[str, str]:
    """The caller's environment (but PYTHONPATH: the program runs in its own .venv) with the tier's Pulumi."""
    return {**{key: value for key, value in os.environ.items() if key != "PYTHONPATH"}, **pulumi_env()}


def target_on_kwok(root: Path) -> Any:
    """target_for(stack): a kwok cluster and a pilot-discovery of the stack's own, torn down after its plan."""

    @contextmanager
    def target_for(stack: str) -> Iterator[engine.Target]:
        with KwokCluster.start(root / f"kwok-{stack}", nodes=2, disregard=istiod_module.LABEL) as cluster, \
                Istiod(cluster, root / f"istiod-{stack}") as istiod:
            yield engine.Target(cluster.kubeconfig, upstream.cache_root(), WRAPPER,
                                {OVERRIDES_FILE: json.dumps(istiod.chart_values(), indent=1)})

    return target_for


def run(base_ref: str | None, stacks: Sequence[str] = (), heads: dict[str, Path] | None = None,
        repo: Path = render.REPO) -> dict[str, Any]:
    lacking = missing()
    if lacking:
        return {"status": "skipped", "reason": f"engine tier not built ({', '.join(lacking)}): run "
                "tools/testkit/bootstrap-engine.sh"}
    with tempfile.TemporaryDirectory(prefix="ambient-mesh-engine-tier-") as workdir:
        return engine.run(base_ref, target_on_kwok(Path(workdir)), stacks, heads,
                          pulumi_binary=str(engine_bin() / "pulumi"), repo=repo, env=tier_env())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engine.diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="git ref (default: the merge base of HEAD with main)")
    parser.add_argument("--stack", action="append", default=[], help="only this stack (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="write the result here")
    args = parser.parse_args(argv)
    result = run(args.base, args.stack)
    if result["status"] == "skipped":
        print(f"engine: {result['reason']}", file=sys.stderr)
        return 2
    return engine.report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
