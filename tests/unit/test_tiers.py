"""The tier directories (tests/schema, tests/engine, tests/e2e) are skipped whole when the -m expression deselects
their tier (tests/conftest.py): that is only right while every test module in them carries its tier's marker."""

from __future__ import annotations

import ast
import shlex
import tomllib

import pytest

from tests.conftest import REPO, TIER_DIRECTORIES, tier_deselected


def module_markers(tree: ast.Module) -> set[str]:
    """The `pytest.mark.<name>` names in a module-level `pytestmark = ...` (one mark or a list)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for inner in ast.walk(node.value):
                if (isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Attribute)
                        and inner.value.attr == "mark"):
                    found.add(inner.attr)
    return found


@pytest.mark.parametrize("tier", TIER_DIRECTORIES)
def test_every_test_module_of_a_tier_directory_carries_the_tier(tier: str) -> None:
    modules = sorted((REPO / "tests" / tier).rglob("test_*.py"))
    assert modules, f"no test module in tests/{tier}"
    for module in modules:
        markers = module_markers(ast.parse(module.read_text(encoding="utf-8")))
        assert tier in markers, f"{module.relative_to(REPO)}: its pytestmark must include pytest.mark.{tier}"


def default_markexpr() -> str:
    addopts = shlex.split(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
                          ["tool"]["pytest"]["ini_options"]["addopts"])
    return addopts[addopts.index("-m") + 1]


@pytest.mark.parametrize("tier", TIER_DIRECTORIES)
def test_the_default_run_skips_the_tier_directories_and_their_own_run_does_not(tier: str) -> None:
    assert tier_deselected(tier, default_markexpr())
    assert not tier_deselected(tier, tier)
    other = next(name for name in TIER_DIRECTORIES if name != tier)
    assert not tier_deselected(tier, f"{tier} or {other}")
    assert not tier_deselected(tier, "")  # no -m at all: everything is collected
    assert tier_deselected(tier, other)
