"""The stack's program as the engine tier runs it against kwok: the real __main__.py, unchanged, plus the engine
tier's own Helm values overrides, read from engine-tier-values.json in the project directory (release name ->
values) and merged into the matching helm.v3.Release's values before it is registered.

test_engine.py copies this file into its throw-away project as __main__.py and links the repo's __main__.py as
program.py; a user's stack never runs it. Today the only values override is the istiod release's webhook URLs
(see tests/engine/istiod.py).

engine-proposed-graph.json (resource name -> names of resources it should also depend on), when present, adds
dependencies: the upgrade test uses it to measure a graph change proposed for components/istio.py beside the
stack's own graph. Never present in the other tests.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi

OVERRIDES_FILE = Path.cwd() / "engine-tier-values.json"
PROPOSED_GRAPH_FILE = Path.cwd() / "engine-proposed-graph.json"
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


def added_dependencies(extra: dict[str, list[str]]) -> Any:
    """A transformation adding depends_on edges by resource name (the resources named must be registered first)."""
    seen: dict[str, pulumi.Resource] = {}

    def apply(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        seen[args.name] = args.resource
        wanted = extra.get(args.name)
        if not wanted:
            return None
        missing = [name for name in wanted if name not in seen]
        if missing:
            raise ValueError(f"engine-proposed-graph.json: {args.name} needs {missing}, not registered before it")
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(depends_on=[seen[n] for n in wanted]))
        return pulumi.ResourceTransformationResult(props=args.props, opts=opts)

    return apply


def transform(by_release: dict[str, dict[str, Any]]) -> Any:
    def apply(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != RELEASE:
            return None
        extra = by_release.get(str(args.props.get("name")))
        if not extra:
            return None
        props = dict(args.props)
        props["values"] = merge(props.get("values") or {}, extra)
        return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

    return apply


def main() -> None:
    by_release = read_json(OVERRIDES_FILE)
    if by_release:
        pulumi.runtime.register_stack_transformation(transform(by_release))
    proposed = read_json(PROPOSED_GRAPH_FILE)
    if proposed:
        pulumi.runtime.register_stack_transformation(added_dependencies(proposed))
    runpy.run_path(str(Path.cwd() / "program.py"), run_name="__main__")


if __name__ == "__main__":
    main()
