"""Wall-clock time of the default test suite (unit + schema), best and median of N runs.

`python -m bench.suite_time [--runs 3]` runs README's test command (`pytest -q -n auto`). The target is under 10 s
on this project's 2-core machine; tests never time themselves.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from tools.graph import REPO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "auto", "-p", "no:cacheprovider"], cwd=REPO,
                              capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:])
            return done.returncode
    summary = done.stdout.strip().splitlines()[-1]
    print(f"{summary}; wall time over {runs} runs: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
          "(target < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
