"""The stack's program as the engine tier runs it against kwok: the real __main__.py, unchanged, plus the engine
tier's own Helm values overrides, read from engine-tier-values.json in the project directory (chart -> values) and
merged into the values of each helm.v3.Release of that chart before it is registered.

test_engine.py copies this file into its throw-away project as __main__.py and links the repo's __main__.py as
program.py; a user's stack never runs it. Today the only values override is the istiod release's webhook URLs
(see tests/engine/istiod.py).

engine-graph-variant.json ({"add": {name: [names]}, "remove": {name: [names]}}), when present, adds or removes
depends_on edges by resource name: the upgrade test uses it to measure another graph (components/istio.py before
a change, say) beside the stack's own. Never present in the other tests.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi

OVERRIDES_FILE = Path.cwd() / "engine-tier-values.json"
GRAPH_VARIANT_FILE = Path.cwd() / "engine-graph-variant.json"
RELEASE = "kubernetes:helm.sh/v3:Release"


def merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base.get(key), value) if key in base else value
        return out
    return override


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}


def graph_variant(add: dict[str, list[str]], remove: dict[str, list[str]]) -> Any:
    """A transformation adding or removing depends_on edges by resource name (each resource named must be
    registered before the one whose edges change)."""
    seen: dict[str, pulumi.Resource] = {}

    def apply(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        seen[args.name] = args.resource
        wanted, unwanted = add.get(args.name, []), remove.get(args.name, [])
        if not wanted and not unwanted:
            return None
        missing = [name for name in wanted + unwanted if name not in seen]
        if missing:
            raise ValueError(f"engine-graph-variant.json: {args.name} names {missing}, not registered before it")
        drop = [seen[name] for name in unwanted]
        current = args.opts.depends_on if args.opts is not None else None
        existing: list[Any] = list(current) if isinstance(current, list) else [current] if current else []
        kept = [d for d in existing if not any(d is r for r in drop)]
        if len(existing) - len(kept) != len(drop):
            raise ValueError(f"engine-graph-variant.json: {args.name} does not depend on all of {unwanted}")
        edges: list[Any] = kept + [seen[name] for name in wanted]
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions())
        opts.depends_on = edges
        return pulumi.ResourceTransformationResult(props=args.props, opts=opts)

    return apply


def chart_name(chart: object) -> str:
    """A Release's chart: a name, a repository path or a local directory; the last part names the chart."""
    return str(chart or "").rstrip("/").rsplit("/", 1)[-1]


def transform(by_chart: dict[str, dict[str, Any]]) -> Any:
    def apply(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != RELEASE:
            return None
        extra = by_chart.get(chart_name(args.props.get("chart")))
        if not extra:
            return None
        props = dict(args.props)
        props["values"] = merge(props.get("values") or {}, extra)
        return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

    return apply


def main() -> None:
    by_chart = read_json(OVERRIDES_FILE)
    if by_chart:
        pulumi.runtime.register_stack_transformation(transform(by_chart))
    variant = read_json(GRAPH_VARIANT_FILE)
    if variant:
        pulumi.runtime.register_stack_transformation(graph_variant(variant.get("add", {}), variant.get("remove", {})))
    runpy.run_path(str(Path.cwd() / "program.py"), run_name="__main__")


if __name__ == "__main__":
    main()
