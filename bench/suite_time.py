"""Wall-clock time of the default test suite (unit + schema): README's test command, side by side with the same suite
in one process, median of N runs each, interleaved so that load on the machine hits both alike.

`python -m bench.suite_time [--runs 3]`. The target is under 6 s (median) on this project's 2-core machine; tests
never time themselves. Also prints the load average, since a busy machine makes any figure meaningless.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from tools.graph import REPO

TARGET_SECONDS = 6.0
VARIANTS = {
    "README's command (pytest -q -n auto)": ["-n", "auto"],
    "one process (pytest -q -p no:xdist)": ["-p", "no:xdist"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    summary = ""
    for _ in range(runs):
        for name, flags in VARIANTS.items():
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", *flags, "-p", "no:cacheprovider"], cwd=REPO,
                                  capture_output=True, text=True, check=False)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:])
                return done.returncode
            summary = done.stdout.strip().splitlines()[-1]
    print(f"{summary}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name}: median {median:.2f} s, best {min(seconds):.2f} s over {runs} runs "
              f"({'within' if median < TARGET_SECONDS else 'over'} the {TARGET_SECONDS:.0f} s target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
