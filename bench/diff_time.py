"""Wall-clock time of the plan diff (`python -m tools.diff`), best and median of N runs, from a fresh process each
time (interpreter start and imports included, as `make diff` pays them).

`python -m bench.diff_time [--runs 3] [--base REF]` renders every stack file on both sides: the base from `git
archive` by its own code, the head here, with each side's configured Gateway API bundle (the real CRDs from the
pinned module when they are not downloaded). The default base is HEAD, which renders everything and finds nothing;
a base whose tools/render.py has no --all-stacks renders one process per stack (slower: a base from before the
plan diff). Target: under 10 s on this project's 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from tools.render import REPO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", default="HEAD")
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tools.diff", "--base", args.base], cwd=REPO,
                              capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:])
            return done.returncode
    summary = done.stdout.split("\n\n")[1].splitlines()  # the per-stack lines, after the header
    stacks = [line.strip() for line in summary]
    print(f"tools.diff --base {args.base}: {len(stacks)} stacks ({'; '.join(stacks)}); wall time over {args.runs} "
          f"runs: best {min(times):.2f} s, median {statistics.median(times):.2f} s (target < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
