"""The stack's `make up` / no-op `make up` / `make destroy` beside a plain install of the same work, on real kind.

    .venv/bin/python -m bench.kind_side_by_side [--runs 2] [--out FILE]

Two ways, interleaved run by run (stack, plain, stack, plain, ...) so that drift on the machine hits both; every
run gets a fresh cluster named `ambient-bench` (not the kind tier's `ambient-tier`), deleted at the end of the run
even when it fails:

- stack: a fresh work copy of this checkout (tests/kind/tier.py: its own state backend and kubeconfig), then
  `make up` from empty, `make up` again (a no-op: its changes are recorded) and `make destroy`, each timed;
- plain: what a user types with the same inputs: `kind create cluster --config <the kind config the stack renders>
  --wait 120s`; the stack's own pull and load scripts (components/model/images.py: every-node images into every
  node, the rest into the workers, one-platform `docker save` + `kind load image-archive`); `kubectl apply
  --server-side` of the Gateway API CRDs and namespaces; `helm install --wait` of base, istiod, cni, ztunnel (and
  the gateway when the config has an Istio ingress) one after another, in Istio's order, with the values the stack
  renders (tools.render); `kubectl apply --server-side` of everything else it renders (Bookinfo, clients, Istio
  config); `kubectl wait` until the Deployments are Available (and Gateway API Gateways Programmed); then the
  namespace label as its own field manager, as the tutorial labels after applying the app; then the stack's own
  kind delete script, timed as its destroy.

Figures per run: wall times and their phases (create, load, crds+namespaces, helm, apply+wait; plain: one after
another; stack: windows of `make up`'s streamed Pulumi output, which overlap where the graph runs things side by
side, e.g. the pull beside kind create, plus `preflight`: make doctor and stack select until the first resource
event; none if Pulumi's display changes); images per node after each up (`crictl images`: all of them, and how
many of those the stack preloads there are present); peak memory of the node containers during each up (`docker
stats` every ~5 s: the peak of their sum and each node's peak). Medians, min and max per figure and stack/plain
of the medians go to stdout and as JSON to --out (default $KIND_TIER_CACHE/kind-side-by-side.json); each run's
make/kubectl log beside it (kind-side-by-side-logs/).

What is real: Docker, kind and its nodes (the kind tier's node image offline), kubelet, containerd, Istio's charts
(the pinned snapshot offline: tests/engine/upstream.py), Helm, kubectl, the Pulumi CLI and its kubernetes
provider, Bookinfo's and curl's images. Stand-ins: the engine tier's command provider (its stand-in for
command:local:Command runs the same shell scripts), and whichever images tier.standins() names (offline usually
ztunnel and proxyv2: then, as in the kind tier, `app.ingress: none` and `verify.smokeCheck: false`, and the mesh
carries no traffic). Every figure is from this machine, on this load; the load average is recorded beside them.
Needs the kind tier (tools/testkit/bootstrap-kind.sh), the engine tier's pulumi and a helm on PATH (the engine
tier's helm piece: tools/testkit/bootstrap-engine.sh helm).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.engine_side_by_side import FIRST_KINDS, RELEASE_ORDER, write_objects
from components.model import images as image_model
from components.model.charts import RELEASE_TIMEOUT_SECONDS
from components.model.config import StackConfig
from components.model.kind import KIND_DELETE, kind_config, node_names
from components.model.validate import parse_config
from tests.engine import kwok
from tests.kind import tier
from tools.render import Rendered, render_config

CLUSTER = "ambient-bench"
WAYS = ("stack", "plain")
UP_TIMEOUT = 1800  # tests/kind/test_kind.py's for a first make up
SAMPLE_SECONDS = 5.0
MIB = 1024 * 1024

Record = dict[str, Any]  # one run of one way: {"way", "run", "figures": {name: number}, ...}


# --- pure pieces ------------------------------------------------------------------------------------------------

_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4,
          "kB": 1000, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4}


def mem_bytes(text: str) -> float:
    """`1.5GiB` (docker stats' MemUsage, left of the slash) -> bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?i?B|kB)\s*", text)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a memory size: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def node_memory(stats: str, nodes: Iterable[str]) -> dict[str, float]:
    """`docker stats --format '{{.Name}} {{.MemUsage}}'` lines -> MiB used by each of the given containers."""
    wanted, found = set(nodes), {}
    for line in stats.splitlines():
        name, _, usage = line.strip().partition(" ")
        if name in wanted and usage:
            try:
                found[name] = mem_bytes(usage.split("/")[0]) / MIB
            except ValueError:
                continue  # "--" while a container starts or stops
    return found


def memory_peaks(samples: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """The peak of the nodes' summed memory over the samples, and each node's own peak (MiB)."""
    per_node: dict[str, float] = {}
    for sample in samples:
        for name, mib in sample.items():
            per_node[name] = max(per_node.get(name, 0.0), mib)
    peak_sum = max((sum(sample.values()) for sample in samples), default=0.0)
    return {"peak_sum_mib": round(peak_sum, 1), "per_node_peak_mib": {k: round(v, 1) for k, v in
                                                                       sorted(per_node.items())},
            "samples": len(samples)}


def image_ref(name: str) -> str:
    """An image reference as containerd names it: `curlimages/curl:8` -> `docker.io/curlimages/curl:8`."""
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def image_counts(crictl_json: str, wanted: Iterable[str]) -> tuple[int, list[str]]:
    """`crictl images -o json` of one node -> how many images it has, and which of `wanted` it lacks."""
    listed = json.loads(crictl_json or "{}").get("images") or []
    tags = {image_ref(tag) for image in listed for tag in image.get("repoTags") or []}
    return len(listed), sorted(image for image in wanted if image_ref(image) not in tags)


# A row of Pulumi's non-interactive display: ` +  command:local:Command cluster-kind creating (0s)`.
_EVENT = re.compile(r"^\W*(?P<type>[\w.-]+:[\w./-]+:[\w.-]+)\s+(?P<name>\S+)\s+(?P<status>creating|created)\b")


def pulumi_events(lines: Iterable[tuple[float, str]]) -> dict[tuple[str, str], tuple[float, float]]:
    """(type, name) -> (first `creating`, `created`) times, from timestamped lines of `pulumi up`'s output."""
    starts: dict[tuple[str, str], float] = {}
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for at, line in lines:
        match = _EVENT.match(line)
        if not match:
            continue
        key = (match["type"], match["name"])
        starts.setdefault(key, at)
        if match["status"] == "created":
            spans[key] = (starts[key], at)
    return spans


def stack_phase(kind: str, name: str) -> str | None:
    """Which phase of the plain way a resource of the stack does the work of (components/stack.py's names)."""
    if kind == "command:local:Command":
        return {"cluster-kind": "create", "images-pull": "load", "images-load-mesh": "load",
                "images-load-app": "load"}.get(name)
    if kind.startswith("kubernetes:helm.sh/"):
        return "helm"
    if kind.startswith("kubernetes:"):
        return "crds+namespaces" if kind.rsplit(":", 1)[-1] in FIRST_KINDS else "apply+wait"
    return None


def stack_phases(lines: Sequence[tuple[float, str]], started: float) -> dict[str, float]:
    """Wall windows of `make up`: preflight (until the first resource event) and the plain way's phases, each
    from its first resource's start to its last one's end (windows overlap where the graph runs side by side)."""
    spans = pulumi_events(lines)
    if not spans:
        return {}
    phases = {"preflight": min(at for at, line in lines if _EVENT.match(line)) - started}
    windows: dict[str, list[tuple[float, float]]] = {}
    for (kind, name), span in spans.items():
        phase = stack_phase(kind, name)
        if phase:
            windows.setdefault(phase, []).append(span)
    for phase, found in windows.items():
        phases[phase] = max(end for _, end in found) - min(start for start, _ in found)
    return {phase: round(seconds, 1) for phase, seconds in phases.items()}


@dataclass(frozen=True)
class PlainPlan:
    """The stack's rendered objects as the plain way installs them."""

    first: list[Rendered]  # CRDs, admission policies, namespaces: before the charts
    releases: list[dict[str, Any]]  # in Istio's order
    rest: list[Rendered]
    patches: list[Rendered]  # each applied as its own field manager

    def namespaces_of(self, kind: str, api_prefix: str = "") -> list[str]:
        return sorted({item.body["metadata"].get("namespace", "default") for item in self.rest
                       if item.body["kind"] == kind and item.body["apiVersion"].startswith(api_prefix)})


def plain_plan(rendered: Sequence[Rendered]) -> PlainPlan:
    """Only Kubernetes objects and Helm releases: with cluster.provider=kind, tools.render also yields the kind
    config, the local commands and the provider, which the plain way replaces by its own commands."""
    releases = {item.body["name"]: item.body for item in rendered if item.role == "helmrelease"}
    unknown = sorted(set(releases) - set(RELEASE_ORDER))
    if unknown:
        raise ValueError(f"releases not in Istio's order (bench.engine_side_by_side.RELEASE_ORDER): {unknown}")
    objects = [item for item in rendered if item.is_object]
    first = [item for item in objects if item.role == "object" and item.body["kind"] in FIRST_KINDS]
    patches = [item for item in objects if item.role == "patch"]
    rest = [item for item in objects if item not in first and item not in patches]
    return PlainPlan(first, [releases[name] for name in RELEASE_ORDER if name in releases], rest, patches)


def helm_install(release: Mapping[str, Any], values: Path) -> list[str]:
    """`helm install --wait` of one rendered release: a local chart directory, an oci:// or an http(s) repository."""
    repository, chart = release.get("repository"), release["chart"]
    if repository and re.match(r"^https?://", repository):
        source = [chart, "--repo", repository, "--version", release["version"]]
    elif repository and repository.startswith("oci://"):
        source = [f"{repository}/{chart}", "--version", release["version"]]
    elif repository:
        directory = Path(repository) if Path(repository).is_absolute() else tier.REPO / repository
        source = [str(directory / chart)]
    else:
        source = [chart, "--version", release["version"]]
    return ["helm", "install", release["name"], *source, "--namespace", release["namespace"], "--wait",
            "--timeout", f"{RELEASE_TIMEOUT_SECONDS}s", "--values", str(values)]


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


def summarize(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    """figure -> {way: median/min/max/n, "stack/plain": ratio of the medians}, over the runs that succeeded (a
    failed run's partial figures stay in its record only)."""
    values: dict[str, dict[str, list[float]]] = {}
    for record in records:
        if "error" in record:
            continue
        for figure, value in record["figures"].items():
            values.setdefault(figure, {}).setdefault(record["way"], []).append(float(value))
    summary: dict[str, dict[str, Any]] = {}
    for figure, by_way in values.items():
        row: dict[str, Any] = {way: _stats(found) for way, found in by_way.items()}
        if "stack" in row and "plain" in row and row["plain"]["median"]:
            row["stack/plain"] = round(row["stack"]["median"] / row["plain"]["median"], 2)
        summary[figure] = row
    return summary


def table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    def cell(stats: Mapping[str, float] | None) -> str:
        if not stats:
            return "-"
        return f"{stats['median']:g} ({stats['min']:g}-{stats['max']:g})"

    rows = [("figure", "stack median (min-max)", "plain median (min-max)", "stack/plain")]
    rows += [(figure, cell(row.get("stack")), cell(row.get("plain")), f"{row['stack/plain']:g}"
              if "stack/plain" in row else "-") for figure, row in summary.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


# --- the machine ------------------------------------------------------------------------------------------------

def docker_stats() -> str:
    return tier.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", timeout=60).stdout


class MemorySampler:
    """Samples the nodes' memory in a background thread, every `every` seconds, while the `with` block runs."""

    def __init__(self, nodes: Iterable[str], every: float = SAMPLE_SECONDS,
                 sample: Callable[[], str] = docker_stats) -> None:
        self.nodes, self.every, self.sample = list(nodes), every, sample
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            try:
                found = node_memory(self.sample(), self.nodes)
            except (OSError, subprocess.SubprocessError):
                found = {}
            if found:
                self.samples.append(found)
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def peaks(self) -> dict[str, Any]:
        return memory_peaks(self.samples)


def node_images(config: StackConfig) -> dict[str, dict[str, Any]]:
    """Each node's images (crictl) and which of those the stack preloads there it lacks."""
    plan = image_model.preload(config)
    wanted = {node: set(plan.every_node_images) for node in plan.every_node}
    for node in plan.workers:
        wanted[node] |= set(plan.worker_images)
    found = {}
    for node, images in sorted(wanted.items()):
        done = tier.docker("exec", node, "crictl", "images", "-o", "json")
        total, missing = image_counts(done.stdout, images) if done.returncode == 0 else (0, sorted(images))
        found[node] = {"images": total, "preloaded": len(images) - len(missing), "missing": missing}
    return found


def image_figures(found: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for node, counts in found.items():
        figures[f"images on {node}"] = counts["images"]
        figures[f"preloaded on {node}"] = counts["preloaded"]
    return figures


def memory_figures(peaks: Mapping[str, Any]) -> dict[str, float]:
    figures = {"peak node memory MiB (sum)": peaks["peak_sum_mib"]} if peaks["samples"] else {}
    figures.update({f"peak memory {node} MiB": mib for node, mib in peaks["per_node_peak_mib"].items()})
    return figures


def end_group(process: subprocess.Popen[str], grace: float = 60) -> None:
    """SIGTERM to the process group `process` leads (Pulumi cancels its update), SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def stream(argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float,
           log: list[str]) -> tuple[int, list[tuple[float, str]]]:
    """Runs a command, stdout and stderr merged, each line with the monotonic time it arrived. On a timeout or an
    interrupt, its whole process group ends (make's pulumi and plugins too)."""
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, start_new_session=True) as process:
        timer = threading.Timer(timeout, end_group, (process,))
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append((time.monotonic(), line.rstrip("\n")))
            code = process.wait()
        except BaseException:
            end_group(process)
            raise
        finally:
            timer.cancel()
    log.append(f"$ {' '.join(argv)}  (exit {code})\n" + "\n".join(line for _, line in lines))
    return code, lines


def sh(argv: Sequence[str], env: Mapping[str, str], log: list[str], timeout: float = 900, check: bool = True) -> str:
    done = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    log.append(f"$ {' '.join(argv)}  (exit {done.returncode})\n{done.stdout}{done.stderr}")
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def tool_env(kubeconfig: Path) -> dict[str, str]:
    """The tools the stack's work copy finds (tier.WorkCopy): the kind tier's bin, then the engine tier's."""
    env = {**os.environ, **kwok.pulumi_env(), "KUBECONFIG": str(kubeconfig)}
    env["PATH"] = os.pathsep.join([str(tier.kind_cache() / "bin"), env["PATH"]])
    return env


def cluster_exists() -> bool:
    return bool(tier.docker("ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER}").stdout.strip())


def delete_cluster(env: Mapping[str, str], log: list[str], check: bool = True) -> None:
    """The stack's own delete script (kind delete by name; the kind network once nothing uses it)."""
    sh(["/bin/sh", "-c", KIND_DELETE], {**env, "CLUSTER_NAME": CLUSTER}, log, timeout=600, check=check)


@contextmanager
def phase(figures: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        key = f"phase {name} s"
        figures[key] = round(figures.get(key, 0.0) + time.monotonic() - started, 1)


# --- the two ways -----------------------------------------------------------------------------------------------

def bench_config() -> tuple[dict[str, Any], dict[str, str], str | None]:
    """The kind tier's dev stack config under the bench's cluster name, adjusted for stand-ins as the tier does."""
    local = tier.offline()
    raw = tier.tier_config(tier.stack_raw(), tier.free_port(), local=local, allow_cgroup_v1=tier.cgroup_v1())
    raw["cluster"]["name"] = CLUSTER
    config = parse_config(raw)
    missing = tier.missing_images(config) if local else []
    if missing:
        raise SystemExit(f"the kind tier lacks images the stack runs: {', '.join(missing)}")
    found = tier.standins(config)
    gaps = tier.data_plane_gaps(config, found)
    if gaps:
        raw["app"]["ingress"] = "none"
        raw["verify"]["smokeCheck"] = False
    return raw, found, gaps


def stack_run(raw: dict[str, Any], root: Path, record: Record) -> None:
    config = parse_config(raw)
    control_plane, workers = node_names(config.cluster)
    work = tier.WorkCopy.create(root / "work", raw)
    figures = record["figures"]
    try:
        with MemorySampler([control_plane, *workers]) as memory:
            started = time.monotonic()
            code, lines = stream(["make", "up"], work.root, work.env, UP_TIMEOUT, work.log)
            took = time.monotonic() - started
        if code != 0:
            raise RuntimeError("make up failed:\n" + "\n".join(line for _, line in lines[-80:]))
        figures["up s"] = round(took, 1)
        figures.update({f"phase {name} s": seconds for name, seconds in stack_phases(lines, started).items()})
        record["memory"] = memory.peaks()
        figures.update(memory_figures(record["memory"]))
        record["images"] = node_images(config)
        figures.update(image_figures(record["images"]))
        started = time.monotonic()
        work.make("up", timeout=900)
        figures["no-op up s"] = round(time.monotonic() - started, 1)
        record["no-op changes"] = work.last_update_changes()
        started = time.monotonic()
        work.make("destroy", timeout=900)
        figures["destroy s"] = round(time.monotonic() - started, 1)
    finally:
        record["log"] = work.log
        if cluster_exists():
            work.make("destroy", check=False, timeout=900)
            delete_cluster(work.env, work.log, check=False)


def plain_install(plan: PlainPlan, workdir: Path, env: Mapping[str, str], figures: dict[str, float],
                  log: list[str]) -> None:
    kubectl = ["kubectl", "--context", f"kind-{CLUSTER}"]
    with phase(figures, "crds+namespaces"):
        if plan.first:
            sh([*kubectl, "apply", "--server-side", "-f", str(write_objects(plan.first, workdir / "first"))], env, log)
            sh([*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"], env, log)
    with phase(figures, "helm"):
        for release in plan.releases:
            values = workdir / f"values-{release['name']}.yaml"
            values.write_text(yaml.safe_dump(release.get("values") or {}), encoding="utf-8")
            sh([*helm_install(release, values), "--kube-context", f"kind-{CLUSTER}"], env, log,
               timeout=RELEASE_TIMEOUT_SECONDS + 60)
    with phase(figures, "apply+wait"):
        if plan.rest:
            sh([*kubectl, "apply", "--server-side", "-f", str(write_objects(plan.rest, workdir / "rest"))], env, log)
        for namespace in plan.namespaces_of("Gateway", "gateway.networking.k8s.io/"):
            sh([*kubectl, "wait", "--for=condition=Programmed", "gateways.gateway.networking.k8s.io", "--all", "-n",
                namespace, "--timeout=300s"], env, log, timeout=360)
        for namespace in plan.namespaces_of("Deployment"):
            sh([*kubectl, "wait", "--for=condition=Available", "deployment", "--all", "-n", namespace,
                "--timeout=300s"], env, log, timeout=360)
        # Then the label, as the tutorial does (kubectl apply the app, then label the namespace): the pods are
        # running when ambient captures them (with a stand-in ztunnel a pod created after the label never starts).
        for index, patch in enumerate(plan.patches):
            path = write_objects([patch], workdir / f"patch-{index}") / patch.filename
            sh([*kubectl, "apply", "--server-side", "--force-conflicts", f"--field-manager=plain-patch-{index}",
                "-f", str(path)], env, log)


def plain_run(raw: dict[str, Any], root: Path, record: Record) -> None:
    config = parse_config(raw)
    control_plane, workers = node_names(config.cluster)
    plan = plain_plan(render_config(config))  # offline, before the clock starts
    preload = image_model.preload(config)
    env, log, figures = tool_env(root / "kubeconfig"), record.setdefault("log", []), record["figures"]
    cluster_file = root / "kind.yaml"
    cluster_file.write_text(kind_config(config.cluster), encoding="utf-8")
    try:
        with MemorySampler([control_plane, *workers]) as memory:
            started = time.monotonic()
            with phase(figures, "create"):
                sh(["kind", "create", "cluster", "--name", CLUSTER, "--config", str(cluster_file), "--wait", "120s"],
                   env, log, timeout=600)
            with phase(figures, "load"):
                sh(["/bin/sh", "-c", image_model.PULL_SCRIPT], {**env, **image_model.pull_environment(preload)},
                   log)
                sh(["/bin/sh", "-c", image_model.LOAD_SCRIPT],
                   {**env, **image_model.load_environment(config.cluster, preload)}, log)
            plain_install(plan, root, env, figures, log)
            figures["up s"] = round(time.monotonic() - started, 1)
        record["memory"] = memory.peaks()
        figures.update(memory_figures(record["memory"]))
        record["images"] = node_images(config)
        figures.update(image_figures(record["images"]))
        started = time.monotonic()
        delete_cluster(env, log)
        figures["destroy s"] = round(time.monotonic() - started, 1)
    finally:
        if cluster_exists():
            delete_cluster(env, log, check=False)


def prerequisites() -> list[str]:
    path = tool_env(Path(os.devnull))["PATH"]
    reasons = [] if tier.docker("info").returncode == 0 else ["no Docker engine answers"]
    reasons += [f"{tool} not found (PATH: kind tier, engine tier, then yours)" for tool in ("kind", "kubectl", "helm",
                                                                                          "pulumi", "make")
                if not shutil.which(tool, path=path)]
    reasons += [f"engine tier: plugin {p} missing" for p in kwok.missing_plugins(("kubernetes", "command"))]
    return reasons


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default $KIND_TIER_CACHE/"
                                                                "kind-side-by-side.json)")
    options = parser.parse_args(argv)
    out: Path = options.out or tier.kind_cache() / "kind-side-by-side.json"
    reasons = prerequisites()
    if reasons:
        print("kind side by side: cannot run: " + "; ".join(reasons))
        return 2
    log: list[str] = []
    if cluster_exists():
        print(f"deleting a leftover {CLUSTER} cluster of an earlier run")
        delete_cluster(tool_env(Path(os.devnull)), log)
    raw, found, gaps = bench_config()
    for image, why in sorted(found.items()):
        print(f"STAND-IN: {image} ({why})")
    logs = out.parent / "kind-side-by-side-logs"
    logs.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    for index in range(1, options.runs + 1):
        for way in WAYS:
            record: Record = {"way": way, "run": index, "figures": {}}
            raw["cluster"]["ingressHostPort"] = tier.free_port()
            with tempfile.TemporaryDirectory(prefix=f"kind-side-by-side-{way}-") as root:
                try:
                    (stack_run if way == "stack" else plain_run)(raw, Path(root), record)
                except Exception as error:  # a failed run is reported; the next one still runs
                    record["error"] = f"{type(error).__name__}: {error}"[-4000:]
                    record.setdefault("log", []).append(traceback.format_exc())
            (logs / f"run{index}-{way}.log").write_text("\n".join(record.pop("log", [])), encoding="utf-8")
            shown = {k: v for k, v in record["figures"].items() if k in ("up s", "no-op up s", "destroy s")}
            print(f"run {index} {way}: {shown}" + (f"  FAILED: {record['error'][:300]}" if "error" in record else ""),
                  flush=True)
            records.append(record)
    summary = summarize(records)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3] if Path("/proc/loadavg").exists() else []
    report = {"cluster": CLUSTER, "runs": options.runs, "standins": found, "data_plane_gaps": gaps,
              "machine": {"cpus": os.cpu_count(), "loadavg_after": load,
                          "docker": tier.docker("info", "--format", "{{.NCPU}} CPUs, {{.MemTotal}} B").stdout.strip()},
              "summary": summary, "records": records}
    print(table(summary))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report: {out}; logs: {logs}")
    return 1 if any("error" in record for record in records) else 0


if __name__ == "__main__":
    raise SystemExit(main())
