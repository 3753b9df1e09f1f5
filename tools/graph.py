"""Draw the stack's dependency graph as a mermaid diagram, from what the program really registers.

`python -m tools.graph` prints it; README embeds it between markers and a test keeps the two equal.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from components.model.config import PROJECT
from components.model.validate import parse_config
from tools.testkit.mockgraph import Graph, Registration, run_stack

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- graph:begin (python -m tools.graph --write) -->"
END = "<!-- graph:end -->"
# Components whose resources are drawn one by one: their internal order is the point of the picture.
EXPANDED = ("ambient-mesh:cluster:Cluster", "ambient-mesh:istio:IstioAmbient")


def node_of(graph: Graph, registration: Registration) -> Registration:
    component = graph.component_of(registration)
    if component is None or component.type in EXPANDED:
        return registration
    return component


def label(graph: Graph, node: Registration) -> str:
    if node.type.startswith(f"{PROJECT}:"):
        count = sum(1 for r in graph if r.custom and graph.component_of(r) is node)
        return f"{node.type.rsplit(':', 1)[1]} '{node.name}'<br/>{count} resources"
    kind = node.type.rsplit(":", 1)[1]
    if kind == "Release":
        return f"helm {node.inputs['name']}<br/>chart {node.inputs['chart'].rsplit('/', 1)[-1]}"
    if kind == "Command":
        return f"command {node.name}"
    if kind == "kubernetes":
        return "kubernetes provider"
    return f"{kind} {node.inputs.get('metadata', {}).get('name', node.name)}"


def mermaid(graph: Graph) -> str:
    nodes: dict[str, Registration] = {}
    edges: set[tuple[str, str]] = set()
    for resource in graph:
        if not resource.custom:
            continue
        node = node_of(graph, resource)
        nodes[node.name] = node
        for urn in resource.dependencies:
            before = node_of(graph, graph.by_urn(urn))
            if before.name != node.name:
                edges.add((before.name, node.name))
    provider = next(r.name for r in graph if r.type == "pulumi:providers:kubernetes")
    # Every Kubernetes resource uses the provider; draw that only where nothing else comes first.
    starts = {after for _, after in edges}
    for name, node in nodes.items():
        if name not in starts and not node.type.startswith(("command:", "pulumi:providers:")):
            edges.add((provider, name))
    edges = transitive_reduction(edges)
    ids = {name: re.sub(r"[^A-Za-z0-9]", "_", name) for name in nodes}
    lines = ["flowchart LR"]
    for name in sorted(nodes):
        lines.append(f'  {ids[name]}["{label(graph, nodes[name])}"]')
    for first, then in sorted(edges):
        lines.append(f"  {ids[first]} --> {ids[then]}")
    return "\n".join(lines) + "\n"


def transitive_reduction(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Drop a -> c where a -> ... -> c already says it: the picture shows only the orders that matter."""
    successors: dict[str, set[str]] = {}
    for before, after in edges:
        successors.setdefault(before, set()).add(after)

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [n for n in successors.get(start, ()) if (start, n) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(successors.get(node, ()))
        return seen

    return {(a, c) for a, c in edges if c not in reachable(a, (a, c))}


def dev_graph() -> Graph:
    """The program's defaults: the tutorial, as the shipped dev stack sets it (and as it stays when a user edits it)."""
    # Our small stand-in CRD bundle: the picture needs the CRDs' place in the graph, not their content.
    fixture = REPO / "tests" / "fixtures" / "gateway-api-crds.yaml"
    return run_stack(parse_config({"gatewayApi": {"source": str(fixture)}}))


def readme_block(diagram: str) -> str:
    return f"{BEGIN}\n```mermaid\n{diagram}```\n{END}"


def main(argv: list[str]) -> int:
    diagram = mermaid(dev_graph())
    if "--write" in argv:
        readme = REPO / "README.md"
        text = readme.read_text(encoding="utf-8")
        start, end = text.index(BEGIN), text.index(END) + len(END)
        readme.write_text(text[:start] + readme_block(diagram) + text[end:], encoding="utf-8")
    else:
        sys.stdout.write(diagram)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
