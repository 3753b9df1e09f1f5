"""Shared fixtures: the dev stack's own config file, evaluated offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from components.config import StackConfig, parse_config, read_stack_file
from tools.mockgraph import Graph, run_stack

REPO = Path(__file__).resolve().parent.parent
DEV_STACK_FILE = REPO / "Pulumi.dev.yaml"
# Our own small stand-in for the Gateway API bundle: unit tests never touch the network.
GATEWAY_API_FIXTURE = REPO / "tests" / "fixtures" / "gateway-api-crds.yaml"


def dev_raw_config(**overrides: dict[str, Any]) -> dict[str, Any]:
    """Pulumi.dev.yaml's config as plain data, offline (fixture CRD bundle), with per-section overrides."""
    raw = copy.deepcopy(read_stack_file(DEV_STACK_FILE))
    raw["gatewayApi"]["source"] = str(GATEWAY_API_FIXTURE)
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw


def dev_config(**overrides: dict[str, Any]) -> StackConfig:
    return parse_config(dev_raw_config(**overrides))


@pytest.fixture
def dev_stack_config() -> StackConfig:
    return dev_config()


@pytest.fixture(scope="session")
def graph() -> Graph:
    """The dev stack, evaluated once under mocks for every test that only reads it."""
    return run_stack(dev_config())
