"""What the Istio components request in total, per resource profile, on the dev stack's cluster size; and what
Istio's add-ons request (the getting-started stack's).

`python -m bench.resource_report [--nodes N]` prints a markdown table (README's "Resource profile" section).
"""

from __future__ import annotations

import argparse
import sys

from components.model import addons, charts
from components.model.config import RESOURCE_PROFILES, ConfigError, read_stack_file
from components.model.validate import parse_config
from tools import render
from tools.graph import REPO

BUDGET = charts.Requests(cpu_millicores=500, memory_mib=1024)


def report(nodes: int) -> str:
    lines = [f"Requests of istiod + istio-cni + ztunnel + ingress gateway on {nodes} nodes "
             "(cni and ztunnel run on every node):", "",
             "| profile | istiod | cni (per node) | ztunnel (per node) | gateway | total CPU | total memory |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in RESOURCE_PROFILES:
        cells = [f"{charts.requests(name, c).cpu_millicores}m / {charts.requests(name, c).memory_mib}Mi"
                 for c in charts.CHART_DEFAULTS]
        total = charts.totals(name, nodes)
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {total.cpu_millicores}m | {total.memory_mib}Mi |")
    laptop = charts.totals("laptop", nodes)
    fits = laptop.cpu_millicores <= BUDGET.cpu_millicores and laptop.memory_mib <= BUDGET.memory_mib
    lines += ["", f"laptop budget {BUDGET.cpu_millicores}m / {BUDGET.memory_mib}Mi: {'within' if fits else 'OVER'}"]
    return "\n".join(lines)


def addons_report() -> str:
    """What Istio's add-ons request per profile, as the getting-started stack runs them (observability.addons)."""
    raw = read_stack_file(REPO / "Pulumi.getting-started.yaml")
    raw["gatewayApi"] = {**raw["gatewayApi"], "source": str(REPO / "tests" / "fixtures" / "gateway-api-crds.yaml")}
    files = render.addons_source(raw)
    if files is None:
        return "getting-started runs no add-on"
    if files.source:
        raw["observability"] = {**raw["observability"], "source": files.source}
    lines = [f"Requests of Istio's add-ons (the files: {files.label}):", "",
             "| profile | " + " | ".join(raw["observability"]["addons"]) + " | total |",
             "| --- |" + " --- |" * (len(raw["observability"]["addons"]) + 1)]
    for name in RESOURCE_PROFILES:
        config = parse_config({**raw, "istio": {**raw["istio"], "resourceProfile": name}})
        objects = addons.addon_objects(config)
        cells = [addons.requests({a: objects[a]}) for a in config.observability.addons]
        total = addons.requests(objects)
        lines.append(f"| {name} | " + " | ".join(f"{c}m / {m}Mi" for c, m in cells)
                     + f" | {total[0]}m / {total[1]}Mi |")
    return "\n".join(lines)


def main() -> int:
    try:
        dev_nodes = parse_config(read_stack_file(REPO / "Pulumi.dev.yaml")).cluster.nodes
    except ConfigError as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=dev_nodes)
    print(report(parser.parse_args().nodes))
    print()
    print(addons_report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
