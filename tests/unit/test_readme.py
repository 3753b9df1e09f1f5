"""README stays true: its graph is the program's, its commands exist, its config reference covers every key."""

from __future__ import annotations

import re

from components.model import versions
from components.model.config import SECTIONS
from tests.conftest import REPO
from tools import graph as drawing
from tools.testkit.mockgraph import Graph

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_graph_is_the_programs(graph: Graph) -> None:
    assert drawing.readme_block(drawing.mermaid(graph)) in README, "run `make graph`"


def test_graph_shows_the_real_orderings(graph: Graph) -> None:
    diagram = drawing.mermaid(graph)
    for edge in ("istio_base --> istio_istiod", "istio_istiod --> istio_ztunnel", "istio_ztunnel --> ambient",
                 "istio_cni --> ambient", "istio_istiod --> ingress", "istio_istiod --> istio_ingress_gateway"):
        assert edge in diagram
    assert not re.search(r"istio_\w+ --> (bookinfo|clients)\b", diagram)


def test_quickstart_commands_are_make_targets() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"\bmake ([a-z0-9-]+)", README):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test` (`python -m pytest -q -n auto`)" in README
    assert "python -m pytest -q -n auto\n" in ci


def test_config_reference_lists_every_key() -> None:
    for section, keys in SECTIONS.items():
        assert f"`ambient-mesh:{section}`" in README, section
        for key in keys:
            assert f"| `{key}` |" in README, f"{section}.{key}"


def test_readme_compatibility_table_is_the_codes() -> None:
    rows = re.findall(r"^\| (\d+\.\d+) \| (\d+\.\d+)\.x \| (\d+\.\d+)–(\d+\.\d+) \|$", README, re.MULTILINE)
    assert {istio: versions.Compatibility(gateway_api, (low, high)) for istio, gateway_api, low, high in rows} == (
        versions.COMPATIBILITY)
