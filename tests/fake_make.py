"""The Makefile run for real with fake executables: a venv whose `python` and `pip`, and a `pulumi` on PATH, record
how they were called (one line each, with one environment variable shown) and answer as the test says."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.conftest import REPO

Make = Callable[..., tuple[int, list[str]]]


def fake_make(tmp_path: Path, shown: str, python: str = "", pulumi: str = "", unset: Iterable[str] = ()) -> Make:
    """`make -s <target>` against fakes; `shown` is the environment variable each call records (`[NAME=value]`);
    `python` and `pulumi` are shell lines run after the record (their exit code is the fake's). The caller's
    environment reaches make, less `shown` and `unset`; keywords to the returned function add to it."""
    venv, bin_dir, log = tmp_path / "venv", tmp_path / "bin", tmp_path / "log"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    recorder = f'#!/bin/sh\necho "$(basename "$0") $* [{shown}=${shown}]" >> "$LOG"\n'
    for path, body in {venv / "bin" / "python": recorder + python, venv / "bin" / "pip": recorder,
                       bin_dir / "pulumi": recorder + pulumi}.items():
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    dropped = {shown, *unset}
    env = {**{k: v for k, v in os.environ.items() if k not in dropped},
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}

    def make(target: str, **extra: str) -> tuple[int, list[str]]:
        log.write_text("")
        done = subprocess.run(["make", "-s", target, f"VENV={venv}", f"STATE_DIR={tmp_path / 'state'}"], cwd=REPO,
                              env={**env, **extra}, capture_output=True, text=True, timeout=60, check=False)
        return done.returncode, log.read_text().splitlines()
    return make
