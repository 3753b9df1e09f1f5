"""Shared fixtures: the repository's stack files, evaluated offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from components.model.config import StackConfig, read_stack_file
from components.model.validate import parse_config

if TYPE_CHECKING:
    from tools.testkit.mockgraph import Graph

REPO = Path(__file__).resolve().parent.parent
DEV_STACK_FILE = REPO / "Pulumi.dev.yaml"
# Every stack file the repository ships: each must be valid, render, validate and come up in the engine tier.
STACK_FILES = sorted(REPO.glob("Pulumi.*.yaml"))
# Our own small stand-ins for the Gateway API bundle and Istio's add-on files: unit tests never touch the network.
GATEWAY_API_FIXTURE = REPO / "tests" / "fixtures" / "gateway-api-crds.yaml"
ADDONS_FIXTURE = REPO / "tests" / "fixtures" / "addons"


# The tiers with a directory of their own, every test in it marked with the tier (tests/unit/test_tiers.py checks):
# a run whose -m expression deselects a tier does not import its directory at all (the unit tier then collects in
# half the time, in each xdist worker).
TIER_DIRECTORIES = ("schema", "tools", "engine", "e2e", "kind")


def tier_deselected(tier: str, markexpr: str) -> bool:
    """Whether `-m markexpr` deselects every test that carries the `tier` marker and no other."""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression  # noqa: PLC0415 - pytest's own -m parser, not public API
    except ImportError:  # moved: collect everything, as without this shortcut
        return False

    def matcher(name: str, /, **_kwargs: str | int | bool | None) -> bool:
        return name == tier

    return not Expression.compile(markexpr).evaluate(matcher)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.parent == Path(__file__).parent and collection_path.name in TIER_DIRECTORIES:
        return tier_deselected(collection_path.name, config.option.markexpr) or None
    return None


def stack_name(stack_file: Path) -> str:
    return stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")


def stack_raw_config(stack_file: Path, **overrides: dict[str, Any]) -> dict[str, Any]:
    """A stack file's config as plain data, offline (fixture CRD bundle), with per-section overrides."""
    raw = copy.deepcopy(read_stack_file(stack_file))
    raw["gatewayApi"]["source"] = str(GATEWAY_API_FIXTURE)
    if (raw.get("observability") or {}).get("addons"):
        raw["observability"]["source"] = str(ADDONS_FIXTURE)
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw


def base_raw_config(**overrides: dict[str, Any]) -> dict[str, Any]:
    """The tests' own baseline config: the program's defaults (the tutorial's settings), offline (fixture CRD bundle),
    with per-section overrides. Not Pulumi.dev.yaml: a user may edit that within its documented ranges, and the
    behaviour tests must not notice; tests over the shipped stack files use stack_config()."""
    raw: dict[str, Any] = {"gatewayApi": {"source": str(GATEWAY_API_FIXTURE)}}
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw


def stack_config(stack_file: Path, **overrides: dict[str, Any]) -> StackConfig:
    return parse_config(stack_raw_config(stack_file, **overrides))


def base_config(**overrides: dict[str, Any]) -> StackConfig:
    return parse_config(base_raw_config(**overrides))


@pytest.fixture
def base_stack_config() -> StackConfig:
    return base_config()


@pytest.fixture(scope="session")
def graph() -> Graph:
    """The baseline config's stack, evaluated once under mocks for every test that only reads it."""
    # Imported here: this conftest loads in xdist's controller too, before it starts the workers, and Pulumi's SDK
    # is a quarter of a second there that no test of the controller's uses.
    from tools.testkit.mockgraph import run_stack  # noqa: PLC0415

    return run_stack(base_config())


# The tests' own zero-trust slice (independent of any stack file): an L4 allow-list without notsleep, default deny.
L4_ZERO_TRUST: dict[str, Any] = {"mtls": "strict", "productpageClients": ["ingress", "sleep"], "defaultDeny": True}


def local_charts(root: Path, charts: tuple[str, ...] = ("base", "istiod", "cni", "ztunnel", "gateway")) -> Path:
    """A local chart directory as istio.repository expects one: a sub-directory with a Chart.yaml per chart."""
    for chart in charts:
        (root / chart).mkdir(parents=True, exist_ok=True)
        (root / chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {chart}\nversion: 1.31.1\n", encoding="utf-8")
    return root
