"""The engine diff (tools/diff/engine.py) for real: on a throw-away kwok cluster, `pulumi up` of the base, then
`pulumi preview --diff` of a head that changes cluster.ingressNodePort: exactly one update, the gateway release.

Marked `engine` (deselected by default, `pytest -m engine`); skips, saying what is missing, unless the engine tier
(tools/testkit/bootstrap-engine.sh: the Pulumi CLI, the kubernetes provider, the kwok control plane) is built. The
tier is found through tests/engine/kwok.py, as tests/engine/test_engine.py finds it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tools.diff.engine import DEFAULT_CHARTS, DEFAULT_CRDS

pytestmark = pytest.mark.engine


def engine_tier() -> tuple[Any, dict[str, str]]:
    try:
        from tests.engine import kwok
    except ImportError as error:  # the tier is being rebuilt elsewhere: its helper may move
        pytest.skip(f"engine tier helper not importable: {error}")
    wanted = ("missing_binaries", "engine_bin", "engine_cache", "KwokCluster")
    if not all(hasattr(kwok, name) for name in wanted):
        pytest.skip(f"tests/engine/kwok.py no longer offers {', '.join(wanted)}")
    for path in (DEFAULT_CHARTS, DEFAULT_CRDS):
        if not path.exists():
            pytest.skip(f"no engine stand-in at {path} (the engine diff's default)")
    missing = kwok.missing_binaries()
    if missing:
        pytest.skip(f"engine tier not built ({', '.join(missing)} missing in {kwok.engine_bin()}): "
                    "run tools/testkit/bootstrap-engine.sh")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update({
        "PATH": f"{kwok.engine_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(kwok.engine_cache() / "pulumi-home"),
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    })
    return kwok, env


def test_engine_diff_of_one_value_is_one_update(tmp_path: Path) -> None:
    kwok, env = engine_tier()
    if shutil.which("git") is None:
        pytest.skip("needs git")
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    stack_file = clone / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text(encoding="utf-8").replace(
        "ingressNodePort: 30080", "ingressNodePort: 30081"), encoding="utf-8")
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "--quiet",
                    "-am", "fixture: one value"], cwd=clone, check=True)
    out = tmp_path / "engine.json"
    with kwok.KwokCluster.start(tmp_path / "kwok") as cluster:
        done = subprocess.run([sys.executable, "-m", "tools.diff.engine", "--base", "HEAD~1", "--stack", "dev",
                               "--kubeconfig", str(cluster.kubeconfig), "--json", str(out)],
                              cwd=clone, env=env, capture_output=True, text=True, timeout=1800, check=False)
        assert done.returncode == 0, done.stderr[-4000:]
        leftovers = cluster.user_objects()
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["status"] == "ok", result
    plan = result["stacks"]["dev"]
    assert {op: n for op, n in plan["counts"].items() if op != "same" and n} == {"update": 1}, plan
    [step] = plan["steps"]
    assert (step["op"], step["type"], step["name"]) == ("update", "kubernetes:helm.sh/v3:Release",
                                                       "istio-ingress-gateway")
    assert any(path.startswith("values") for path in step["diff"]), step
    assert leftovers == [], leftovers  # the tool destroys what it created
