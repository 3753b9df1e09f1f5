"""Resource URNs are the identity of what a stack manages: a refactoring that changes one makes Pulumi delete and
recreate that resource. tests/fixtures/urns/<stack>.json records each shipped stack's config and URNs (recorded
before the redesign of issue 11); the program must give the same URNs for the same config. A deliberate change
re-records them (see the fixture's header in README's Tests section)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.model.validate import parse_config
from tests.conftest import ADDONS_FIXTURE, GATEWAY_API_FIXTURE, STACK_FILES, stack_name
from tools.testkit.mockgraph import run_stack

RECORDED = sorted((Path(__file__).parents[1] / "fixtures" / "urns").glob("*.json"))


def recorded(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_every_shipped_stack_has_recorded_urns() -> None:
    assert {stack_name(f) for f in STACK_FILES} <= {recorded(p)["stack"] for p in RECORDED}


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_urns_are_the_recorded_ones(path: Path) -> None:
    document = recorded(path)
    raw = document["config"]
    raw["gatewayApi"]["source"] = str(GATEWAY_API_FIXTURE)  # offline
    if (raw.get("observability") or {}).get("addons"):
        raw["observability"]["source"] = str(ADDONS_FIXTURE)
    graph = run_stack(parse_config(raw), document["stack"])
    assert sorted(r.urn for r in graph) == document["urns"]
