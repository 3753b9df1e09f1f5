"""The stack's `pulumi up` beside a plain install of the same objects, on kwok with the real istiod (engine tier).

    .venv/bin/python -m bench.engine_side_by_side [--runs 3] [--stack dev]

Each run gets a fresh kwok cluster and its own pilot-discovery (tests/engine: the engine tier's Istio charts and
Gateway API CRDs, the tier-only webhook values). Two ways, interleaved run by run:

- stack: `pulumi up` of the stack file (existing-cluster mode, smoke check off), through the Automation API;
- plain: what a user following Istio's docs types, with the very objects the stack creates (rendered offline by
  tools.render from the same config): `kubectl apply --server-side` of the Gateway API CRDs and namespaces, then
  `helm install --wait` of base, istiod, cni, ztunnel and gateway one after another with the stack's values, then
  `kubectl apply --server-side` of everything else (Bookinfo, clients, Istio config; the label patches each as
  its own field manager) and
  `kubectl wait` until every Gateway API Gateway is Programmed and every Deployment is Available.

Both end with the same objects Ready. Wall times, their medians and stack/plain go to stdout and to
$AMBIENT_MESH_ENGINE_CACHE/engine-side-by-side-<stack>.json. Needs the engine tier and the helm piece
(tools/testkit/bootstrap-engine.sh helm).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from components.model.validate import parse_config
from tests.engine.engine_main import chart_name, merge
from tests.engine.istiod import LABEL, Istiod
from tests.engine.kwok import KwokCluster, engine_bin, engine_cache
from tests.engine.test_engine import kwok_config, new_stack, project_copy
from tools.render import Rendered, render_config

# Istio's documented order (Helm install docs): base, istiod, cni, ztunnel, then the gateway.
RELEASE_ORDER = ("istio-base", "istiod", "istio-cni", "ztunnel", "istio-ingressgateway")
FIRST_KINDS = ("CustomResourceDefinition", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
               "Namespace")


def write_objects(items: list[Rendered], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        (directory / item.filename).write_text(yaml.safe_dump(item.body, sort_keys=False), encoding="utf-8")
    return directory


def run(args: list[str], timeout: float = 900) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")


def plain_install(cluster: KwokCluster, config: dict[str, Any], tier_values: dict[str, dict[str, Any]],
                  workdir: Path) -> float:
    rendered = render_config(parse_config(config))
    releases = {item.body["name"]: item.body for item in rendered if item.role == "helmrelease"}
    objects = [item for item in rendered if item.role != "helmrelease"]
    first = [item for item in objects if item.role != "patch" and item.body["kind"] in FIRST_KINDS]
    patches = [item for item in objects if item.role == "patch"]
    rest = [item for item in objects if item not in first and item not in patches]
    first_dir, rest_dir = write_objects(first, workdir / "first"), write_objects(rest, workdir / "rest")
    kubectl = [str(engine_bin() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    helm = [str(engine_bin() / "helm"), "--kubeconfig", str(cluster.kubeconfig)]
    started = time.monotonic()
    run([*kubectl, "apply", "--server-side", "-f", str(first_dir)])
    run([*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"])
    for name in RELEASE_ORDER:
        if name not in releases:
            continue
        release = releases[name]
        values = workdir / f"values-{name}.yaml"
        overrides = tier_values.get(chart_name(release["chart"]), {})
        values.write_text(yaml.safe_dump(merge(release.get("values") or {}, overrides)), encoding="utf-8")
        run([*helm, "install", name, f"{release['repository']}/{release['chart']}", "--namespace",
             release["namespace"], "--wait", "--timeout", "10m", "--values", str(values)])
    run([*kubectl, "apply", "--server-side", "-f", str(rest_dir)])
    # Each patch (the ambient label, waypoint labels on Services) as its own field manager, as the stack's patches
    # are: applied by kubectl's own manager it would drop the fields of the full object applied just before.
    for index, patch in enumerate(patches):
        path = write_objects([patch], workdir / f"patch-{index}") / patch.filename
        run([*kubectl, "apply", "--server-side", "--force-conflicts", f"--field-manager=plain-patch-{index}", "-f",
             str(path)])
    namespace = config["app"]["namespace"]
    if any(item.body["kind"] == "Gateway" and item.body["apiVersion"].startswith("gateway.networking.k8s.io/")
           for item in rest):
        # The stack waits for its Gateway API Gateways (the waypoint) to be Programmed; so does this.
        run([*kubectl, "wait", "--for=condition=Programmed", "gateways.gateway.networking.k8s.io", "--all", "-n",
             namespace, "--timeout=300s"])
    run([*kubectl, "wait", "--for=condition=Available", "deployment", "--all", "-n", namespace, "--timeout=300s"])
    return time.monotonic() - started


def one_run(way: str, stack_file: str, root: Path) -> float:
    with KwokCluster.start(root / "kwok", nodes=2, disregard=LABEL) as cluster, \
            Istiod(cluster, root / "istiod") as istiod:
        config = kwok_config(cluster.kubeconfig, stack_file)
        if way == "plain":
            return plain_install(cluster, config, istiod.chart_values(), root / "plain")
        workdir = project_copy(root / "project", "engine", config, tier_values=istiod.chart_values())
        stack = new_stack(workdir, "engine", root / "backend", root / "cache")
        started = time.monotonic()
        result = stack.up()
        took = time.monotonic() - started
        if result.summary.result != "succeeded":
            raise RuntimeError(f"up: {result.summary.result}")
        return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stack", default="dev", help="stack file Pulumi.<stack>.yaml (default dev)")
    options = parser.parse_args(argv)
    times: dict[str, list[float]] = {"stack": [], "plain": []}
    for index in range(options.runs):
        for way in ("stack", "plain"):
            with tempfile.TemporaryDirectory(prefix=f"side-by-side-{way}-") as root:
                took = one_run(way, options.stack, Path(root))
            times[way].append(round(took, 1))
            print(f"run {index + 1} {way}: {took:.1f} s", flush=True)
    medians = {way: statistics.median(values) for way, values in times.items()}
    ratio = round(medians["stack"] / medians["plain"], 2)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3] if Path("/proc/loadavg").exists() else []
    report = {"stack_file": f"Pulumi.{options.stack}.yaml", "runs": times, "median_s": medians,
              "stack_over_plain": ratio, "loadavg_after": load}
    print(json.dumps(report, indent=2))
    out = engine_cache() / f"engine-side-by-side-{options.stack}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
