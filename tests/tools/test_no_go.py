"""Go is a requirement of the schema tier only: without it the install step says so in one line and carries on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]


def fetch(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # No Go on PATH (only the venv's python) and an empty module cache.
    env = {"PATH": str(Path(sys.executable).parent), "GOMODCACHE": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "tools.testkit.schemas", "fetch", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_without_go_the_install_step_says_what_it_leaves_out(tmp_path: Path) -> None:
    done = fetch(tmp_path)
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("schemas: Go is not installed:") and "tests/schema" in line and "Go 1.26" in line


def test_ci_requires_go(tmp_path: Path) -> None:
    assert fetch(tmp_path, "--required").returncode == 1
