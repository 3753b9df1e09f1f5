"""Wall-clock time of the default test suite (the unit tier): README's test command, side by side with the same suite
in one process and, with --baseline REF, README's command on another commit's tree (a git worktree), median of N
runs each, interleaved so that load on the machine hits every variant alike.

`python -m bench.suite_time [--runs 3] [--baseline REF]`. The target is under 6 s (median) on this project's 2-core
machine; tests never time themselves. Also prints the load average, since a busy machine makes any figure
meaningless, and whether Python may cache bytecode: with PYTHONDONTWRITEBYTECODE set, every run (every xdist worker)
compiles the project's modules and pytest rewrites the test modules again, about 0.8 s a process here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.graph import REPO

TARGET_SECONDS = 6.0
README_COMMAND = "README's command (pytest -q -n auto)"
VARIANTS = {
    README_COMMAND: ["-n", "auto"],
    "one process (pytest -q -p no:xdist)": ["-p", "no:xdist"],
}


def run_suite(tree: Path, flags: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *flags, "-p", "no:cacheprovider"], cwd=tree,
                          capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", metavar="REF", help="also time README's command on this commit's tree")
    args = parser.parse_args()
    trees = {name: (REPO, flags) for name, flags in VARIANTS.items()}
    worktree = None
    if args.baseline:
        worktree = Path(tempfile.mkdtemp(prefix="suite-baseline-")) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(worktree), args.baseline], cwd=REPO,
                       check=True)
        trees[f"baseline {args.baseline}: README's command"] = (worktree, VARIANTS[README_COMMAND])
    times: dict[str, list[float]] = {name: [] for name in trees}
    summaries: dict[str, str] = {}
    try:
        for _ in range(args.runs):
            for name, (tree, flags) in trees.items():
                took, done = run_suite(tree, flags)
                times[name].append(took)
                if done.returncode != 0:
                    print(name, done.stdout[-2000:], done.stderr[-2000:])
                    return done.returncode
                summaries[name] = done.stdout.strip().splitlines()[-1]
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)
            shutil.rmtree(worktree.parent, ignore_errors=True)
    bytecode = "off (PYTHONDONTWRITEBYTECODE is set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; bytecode cache {bytecode}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        target = f"{'within' if median < TARGET_SECONDS else 'over'} the {TARGET_SECONDS:.0f} s target"
        print(f"{name}: median {median:.2f} s, best {min(seconds):.2f} s over {args.runs} runs ({target}); "
              f"{summaries[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
