"""The engine diff (tools/diff/engine.py on the engine tier, tests/engine/diff.py) for real: each stack's base `up` on
a kwok cluster of its own with the real istiod and Istio's own charts, then `pulumi preview --diff` of each fixture
change as a head: the engine's own counts and steps are exactly the change's, and a no-op is no change.

The fixtures are the offline diff's (tests/tools/test_diff.py), made as edits of a clone's tree: a resource request,
a VirtualService match added, the ingress NodePort, the Istio version, a release renamed (a replacement), a change
in only the zero-trust stack, and a no-op. One `up` per stack serves every head. Marked `engine` (deselected by
default); skips, saying what is missing, unless the engine tier is built (tools/testkit/bootstrap-engine.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.model import charts
from tests.conftest import REPO
from tests.engine import diff as engine_tier
from tools.diff import engine
from tools.diff.snapshot import archive

pytestmark = pytest.mark.engine

RELEASE = "kubernetes:helm.sh/v3:Release"


def edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    """A fixture edit of one file of the head's tree; it must apply exactly once (else the fixture is stale)."""

    def apply(tree: Path) -> None:
        path = tree / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"fixture edit of {relative} no longer applies: {old!r}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    return apply


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(tree: Path) -> None:
        for one in edits:
            one(tree)

    return apply


ISTIOD_CHART = 'Chart("istiod", "istiod", "istiod", False, {"laptop": Requests(100, 256)'
FIXTURES: dict[str, Callable[[Path], None]] = {
    "no-op": lambda tree: None,
    "resource-request": edit("components/model/charts.py", ISTIOD_CHART, ISTIOD_CHART.replace("100, 256", "150, 256")),
    "virtual-service-match": edit("components/model/specs.py", '    ("prefix", "/static"),\n',
                                  '    ("prefix", "/static"),\n    ("prefix", "/api/v1/ratings"),\n'),
    "ingress-node-port": edit("Pulumi.dev.yaml", "ingressNodePort: 30080", "ingressNodePort: 30081"),
    # The engine tier has Istio's charts for 1.31.1 (the pin) and an older 1.31 labelled 1.31.0 (upstream.py).
    "istio-version": both(edit("Pulumi.dev.yaml", "version: 1.31.1", "version: 1.31.0"),
                          edit("Pulumi.zero-trust.yaml", "version: 1.31.1", "version: 1.31.0")),
    "release-renamed": edit("components/model/charts.py", 'Chart("istiod", "istiod", "istiod", False',
                            'Chart("istiod", "istiod", "istiod-main", False'),
    "zero-trust-only": edit("Pulumi.zero-trust.yaml", "l7Methods: [GET]", "l7Methods: [GET, HEAD]"),
}


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lacking = engine_tier.missing()
    if lacking:
        pytest.skip(f"engine tier not built ({', '.join(lacking)}): run tools/testkit/bootstrap-engine.sh")
    if shutil.which("git") is None:
        pytest.skip("needs git")
    root = tmp_path_factory.mktemp("engine-diff")
    clone = root / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    (clone / ".venv").symlink_to(REPO / ".venv")
    heads = {}
    for label, apply in FIXTURES.items():
        tree = root / "heads" / label
        archive(clone, "HEAD", tree)
        apply(tree)
        heads[label] = tree
    result = engine_tier.run("HEAD", heads=heads, repo=clone)
    (root / "engine.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    assert result["status"] == "ok", json.dumps(result, indent=1)[-6000:]
    return dict(result["heads"])


def changes(plans: dict[str, Any], fixture: str, stack: str) -> dict[str, int]:
    return {op: n for op, n in plans[fixture][stack]["counts"].items() if op != "same" and n}


def steps(plans: dict[str, Any], fixture: str, stack: str) -> dict[tuple[str, str, str], dict[str, str]]:
    return {(step["op"], step["type"], step["name"]): step["diff"] for step in plans[fixture][stack]["steps"]}


def test_a_no_op_is_no_change(plans: dict[str, Any]) -> None:
    for stack in ("dev", "zero-trust"):
        assert changes(plans, "no-op", stack) == {}, plans["no-op"][stack]
        assert plans["no-op"][stack]["steps"] == []


def test_a_resource_request_is_one_update_of_istiod(plans: dict[str, Any]) -> None:
    for stack in ("dev", "zero-trust"):
        assert changes(plans, "resource-request", stack) == {"update": 1}
        assert steps(plans, "resource-request", stack) == {("update", RELEASE, "istio-istiod"): {
            "values.resources.requests.cpu": "update"}}


def test_a_virtual_service_match_is_one_update(plans: dict[str, Any]) -> None:
    for stack in ("dev", "zero-trust"):
        assert changes(plans, "virtual-service-match", stack) == {"update": 1}
        # The engine compares lists by position: the match inserted third shifts the three after it (the offline
        # diff names the one entry added).
        assert steps(plans, "virtual-service-match", stack) == {
            ("update", "kubernetes:networking.istio.io/v1:VirtualService", "ingress-virtualservice"): {
                "spec.http[0].match[2].uri.exact": "delete", "spec.http[0].match[2].uri.prefix": "add",
                "spec.http[0].match[3].uri.exact": "update",
                "spec.http[0].match[4].uri.exact": "add", "spec.http[0].match[4].uri.prefix": "delete",
                "spec.http[0].match[5]": "add"}}


def test_the_ingress_node_port_is_one_update_of_the_gateway_in_dev_only(plans: dict[str, Any]) -> None:
    assert changes(plans, "ingress-node-port", "zero-trust") == {}
    assert changes(plans, "ingress-node-port", "dev") == {"update": 1}
    assert steps(plans, "ingress-node-port", "dev") == {
        ("update", RELEASE, "istio-ingress-gateway"): {"values.service.ports[1].nodePort": "update"}}


def image_tag_key(chart: str) -> dict[str, str]:
    """Where a release pins its image tag (components/model/charts.py: image_pins), as the engine names the field."""
    pins = charts.CHARTS[chart].image_pins("x")
    return {"values.global.tag" if "global" in pins else "values.tag": "update"} if pins else {}


def test_the_istio_version_updates_the_five_releases_in_place(plans: dict[str, Any]) -> None:
    releases = {"istio-base": "base", "istio-istiod": "istiod", "istio-cni": "cni", "istio-ztunnel": "ztunnel",
                "istio-ingress-gateway": "ingress-gateway"}
    for stack in ("dev", "zero-trust"):
        assert changes(plans, "istio-version", stack) == {"update": 5}
        # The version, and the image tag of the charts that run an image of their own: each side's
        # istio.repository is one path (tools.diff.engine points it at the side's version), as against the chart
        # repository, where the chart's name stays and the version changes.
        assert steps(plans, "istio-version", stack) == {
            ("update", RELEASE, release): {"version": "update", **image_tag_key(chart)}
            for release, chart in releases.items()}


def test_a_renamed_release_is_a_replacement(plans: dict[str, Any]) -> None:
    for stack in ("dev", "zero-trust"):
        assert changes(plans, "release-renamed", stack) == {"replace": 1}
        [(key, diff)] = steps(plans, "release-renamed", stack).items()
        assert key == ("replace", RELEASE, "istio-istiod")
        assert diff == {"name": "update-replace"}, diff


def test_a_change_in_only_zero_trust(plans: dict[str, Any]) -> None:
    assert changes(plans, "zero-trust-only", "dev") == {}
    assert changes(plans, "zero-trust-only", "zero-trust") == {"update": 1}
    assert steps(plans, "zero-trust-only", "zero-trust") == {
        ("update", "kubernetes:security.istio.io/v1:AuthorizationPolicy", "security-productpage-l7"): {
            "spec.rules[0].to[0].operation.methods[1]": "add"}}


def test_the_cli_writes_what_the_comment_reads(plans: dict[str, Any], tmp_path: Path) -> None:
    """tools.diff.engine's text and JSON for one head: what the workflow uploads and tools.diff.comment reads."""
    result = {"status": "ok", "base": "HEAD", "stacks": plans["ingress-node-port"]}
    out = tmp_path / "engine.json"
    assert engine.report(result, str(out)) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["stacks"]["dev"]["counts"]["update"] == 1
    assert engine.text(result).splitlines()[0] == "dev: 1 to update"
