"""End to end on a fresh kind cluster: up, verify, no-op preview, a previewed change, destroy (`make test-e2e`).

Needs Docker with a running engine, kind, kubectl and the Pulumi CLI; skips with the reason otherwise. About
10 minutes, most of it pulling images. E2E_ARTIFACTS_DIR (default build/e2e) receives the verify report and, on
failure, the ztunnel logs.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from components.model.validate import parse_config
from tests.e2e import harness

pytestmark = pytest.mark.e2e

VERIFY_TIMEOUT = 900


@pytest.fixture(scope="module")
def prerequisites() -> None:
    reason = harness.skip_reason(harness.missing_prerequisites())
    if reason and harness.must_run():
        pytest.fail(f"{harness.REQUIRED_ENV} is set but {reason}")
    if reason:
        pytest.skip(reason)


def test_up_verify_preview_change_destroy(prerequisites: None) -> None:
    names = harness.unique_names()
    raw = harness.stack_config(names, harness.free_port())
    config = parse_config(raw)
    artifacts = harness.artifacts_dir()
    artifacts.mkdir(parents=True, exist_ok=True)
    report = artifacts / "verify-report.json"

    with harness.EphemeralStack(names, raw, artifacts=artifacts) as e2e:
        # 1. a fresh cluster and the whole mesh
        outputs = e2e.up()
        assert outputs["clusterName"] == names.cluster
        assert harness.cluster_exists(e2e.runner, names.cluster)

        # 2. the mesh works: verify reads the stack's outputs through the Pulumi CLI, like `make verify`
        env = {**os.environ, **e2e.env}
        command = harness.verify_command(names, config, outputs, report)
        done = subprocess.run(command, cwd=harness.REPO, env=env, capture_output=True, text=True,
                              timeout=VERIFY_TIMEOUT, check=False)
        print(done.stdout)
        assert done.returncode == 0, f"verify failed:\n{done.stdout}\n{done.stderr}"

        # 3. the program converges: a second preview has nothing to do
        result, steps = e2e.preview()
        harness.assert_no_changes(result.change_summary, steps)

        # 4. one changed value gives exactly the predicted diff (previewed only, never applied)
        changed = harness.with_change(raw)
        expected = harness.predicted_changes(raw, changed)
        assert expected, "the change should touch at least one resource"
        _, steps = e2e.preview(changed)
        harness.assert_diff(steps, expected)
        e2e.preview(raw)  # back to the deployed config

        # 5. destroy takes the kind cluster with it
        e2e.destroy()
        assert not harness.cluster_exists(e2e.runner, names.cluster), f"kind cluster {names.cluster} is still there"
