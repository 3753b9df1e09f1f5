"""The real plan of a change: `python -m tools.diff.engine --base REF --kubeconfig FILE [--json out.json]`.

For each stack file of the head (or those named with --stack): `pulumi up` of the base's program and config into a
throw-away local file backend, against an existing cluster (cluster.provider=existing, the kubeconfig given: a kwok
cluster in CI and in the engine tier), then `pulumi preview --diff --json` of this working tree's program and config
on that state, then `pulumi destroy`. The counts (create / update / replace / delete) and each step's property diffs
are what the engine itself decides: what the offline diff can only predict.

Against kwok the Istio charts are stand-ins (--charts, default tests/engine/charts), the Gateway API CRDs a local
file (--gateway-api-crds, default tests/engine/gateway-api-crds.yaml) and the smoke check is off (kwok's pods serve
nothing), on both sides alike. The kind cluster is not created (existing mode): its changes are the offline diff's.
Nothing in the repository changes: each side runs in a copy (the base from `git archive`, the head's program linked),
the project's .venv linked into both. The Pulumi CLI comes from PATH (or --pulumi); PULUMI_HOME and the rest of the
environment are the caller's; the state and its passphrase (empty) die with the temp directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import render
from tools.diff.compare import OPS
from tools.diff.snapshot import DiffError, archive, default_base, describe

PROJECT = "ambient-mesh"
DEFAULT_CHARTS = render.REPO / "tests" / "engine" / "charts"
DEFAULT_CRDS = render.REPO / "tests" / "engine" / "gateway-api-crds.yaml"
# What the head shares with the base's copy: the program and what it imports. The stack file is written, not linked.
PROGRAM = ("__main__.py", "components")


@dataclass
class Step:
    op: str
    type: str
    name: str
    diff: dict[str, str] = field(default_factory=dict)  # property path -> add | update | delete (-replace)


@dataclass
class StackPlan:
    stack: str
    counts: dict[str, int]
    steps: list[Step]

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "steps": [vars(step) for step in self.steps]}


def parse_preview(output: str) -> tuple[dict[str, int], list[Step]]:
    """`pulumi preview --json`: counts per operation (a replacement counted once, as replace) and the steps."""
    document = json.loads(output)
    steps: list[Step] = []
    for raw in document.get("steps") or []:
        op = raw.get("op", "")
        if op in ("create-replacement", "delete-replaced", "discard-replaced"):
            continue  # the halves of a replace, which is its own step
        urn = raw.get("urn", "")
        type_ = urn.split("::")[2].split("$")[-1] if urn.count("::") >= 3 else ""
        name = urn.rsplit("::", 1)[-1]
        if type_ == "pulumi:pulumi:Stack":
            continue
        diff = {path: str(detail.get("kind", "update")) for path, detail in (raw.get("detailedDiff") or {}).items()}
        if not diff:
            diff = {reason: "update" for reason in raw.get("diffReasons") or []}
        steps.append(Step(op, type_, name, diff))
    counts = {op: sum(1 for step in steps if step.op == op) for op in (*OPS, "same")}
    # The JSON lists the steps that change something; how many stay the same is in its summary.
    counts["same"] = int((document.get("changeSummary") or {}).get("same", counts["same"]))
    return counts, steps


def stack_config(stack_file: Path, kubeconfig: Path, charts: Path, crds: Path) -> dict[str, Any]:
    """A stack file's ambient-mesh config, pointed at the existing (kwok) cluster with the stand-ins."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    config = dict(document.get("config") or {})

    def section(name: str, **values: Any) -> None:
        key = f"{PROJECT}:{name}"
        config[key] = {**(config.get(key) or {}), **values}

    section("cluster", provider="existing", kubeconfig=str(kubeconfig))
    section("istio", repository=str(charts))
    section("gatewayApi", source=str(crds))
    section("verify", smokeCheck=False)
    return config


def write_stack_file(project: Path, stack: str, config: Mapping[str, Any], salt: str | None = None) -> Path:
    path = project / f"Pulumi.{stack}.yaml"
    document: dict[str, Any] = {}
    if salt:
        document["encryptionsalt"] = salt
    document["config"] = dict(config)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Pulumi:
    binary: str
    env: dict[str, str]
    log: list[str] = field(default_factory=list)

    def __call__(self, project: Path, *args: str, timeout: float = 1200) -> str:
        started = time.monotonic()
        done = subprocess.run([self.binary, *args], cwd=project, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        self.log.append(f"$ pulumi {' '.join(args)}  # {project.name}, {time.monotonic() - started:.0f} s, "
                        f"exit {done.returncode}\n{done.stderr[-4000:]}")
        if done.returncode != 0:
            raise DiffError(f"pulumi {' '.join(args)} in {project.name} exited {done.returncode}:\n"
                            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout


def head_project(target: Path, repo: Path) -> Path:
    """The head's program, linked (nothing written into the repository), with Pulumi.yaml copied."""
    target.mkdir(parents=True)
    shutil.copy(repo / "Pulumi.yaml", target / "Pulumi.yaml")
    for name in PROGRAM:
        if (repo / name).exists():
            (target / name).symlink_to(repo / name)
    return target


def plan_stack(pulumi: Pulumi, stack: str, base: Path, head: Path, base_file: Path | None, head_file: Path,
               kubeconfig: Path, charts: Path, crds: Path) -> StackPlan:
    if base_file is not None:
        write_stack_file(base, stack, stack_config(base_file, kubeconfig, charts, crds))
    pulumi(base, "stack", "init", stack)
    try:
        if base_file is not None:
            pulumi(base, "up", "--yes", "--skip-preview", "--stack", stack)
        salt = (yaml.safe_load((base / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")) or {}).get(
            "encryptionsalt")
        write_stack_file(head, stack, stack_config(head_file, kubeconfig, charts, crds), salt)
        counts, steps = parse_preview(pulumi(head, "preview", "--diff", "--json", "--stack", stack))
        return StackPlan(stack, counts, [step for step in steps if step.op != "same"])
    finally:
        try:
            pulumi(base, "destroy", "--yes", "--skip-preview", "--stack", stack)
        finally:
            pulumi(base, "stack", "rm", "--yes", "--force", "--stack", stack)


def run(base_ref: str | None, kubeconfig: Path, stacks: Sequence[str] = (), charts: Path = DEFAULT_CHARTS,
        crds: Path = DEFAULT_CRDS, pulumi_binary: str | None = None, repo: Path = render.REPO) -> dict[str, Any]:
    binary = pulumi_binary or shutil.which("pulumi")
    if binary is None:
        return {"status": "skipped", "reason": "no Pulumi CLI on PATH"}
    for path, what in ((kubeconfig, "kubeconfig"), (charts, "stand-in charts"), (crds, "Gateway API CRDs")):
        if not path.exists():
            return {"status": "skipped", "reason": f"no {what} at {path}"}
    ref = base_ref or default_base(repo)
    head_files = {render.stack_name(path): path for path in render.stack_files(repo)}
    wanted = list(stacks) or sorted(head_files)
    result: dict[str, Any] = {"status": "ok", "base": describe(repo, ref), "stacks": {}}
    with tempfile.TemporaryDirectory(prefix="ambient-mesh-engine-diff-") as workdir:
        root = Path(workdir)
        base = root / "base"
        archive(repo, ref, base)
        venv = repo / ".venv" if (repo / ".venv").exists() else Path(sys.prefix)
        (base / ".venv").symlink_to(venv)
        head = head_project(root / "head", repo)
        (head / ".venv").symlink_to(venv)
        backend = root / "backend"
        backend.mkdir()
        env = {**os.environ, "PULUMI_BACKEND_URL": backend.as_uri(), "PULUMI_CONFIG_PASSPHRASE": "",
               "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_SKIP_CONFIRMATIONS": "true"}
        env.pop("PULUMI_ACCESS_TOKEN", None)
        pulumi = Pulumi(binary, env)
        try:
            for stack in wanted:
                if stack not in head_files:
                    raise DiffError(f"no stack file Pulumi.{stack}.yaml in the head")
                base_file = base / f"Pulumi.{stack}.yaml"
                original = base_file.read_bytes() if base_file.exists() else None
                source = root / f"base-Pulumi.{stack}.yaml"
                if original is not None:
                    source.write_bytes(original)
                plan = plan_stack(pulumi, stack, base, head, source if original is not None else None,
                                  head_files[stack], kubeconfig, charts, crds)
                result["stacks"][stack] = plan.to_json()
        except (DiffError, subprocess.TimeoutExpired) as error:
            return {"status": "failed", "reason": str(error)[-3000:], "log": pulumi.log}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="git ref (default: the merge base of HEAD with main)")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="the throw-away cluster (kwok)")
    parser.add_argument("--stack", action="append", default=[], help="only this stack (repeatable)")
    parser.add_argument("--charts", type=Path, default=DEFAULT_CHARTS)
    parser.add_argument("--gateway-api-crds", type=Path, default=DEFAULT_CRDS)
    parser.add_argument("--pulumi", help="the Pulumi CLI (default: pulumi on PATH)")
    parser.add_argument("--json", metavar="FILE", help="write the result here")
    args = parser.parse_args(argv)
    result = run(args.base, args.kubeconfig.resolve(), args.stack, args.charts.resolve(),
                 args.gateway_api_crds.resolve(), args.pulumi)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if result["status"] != "ok":
        print(f"engine: {result['status']}: {result['reason']}", file=sys.stderr)
        return 1 if result["status"] == "failed" else 0
    for stack, plan in result["stacks"].items():
        counts = plan["counts"]
        print(f"{stack}: " + (", ".join(f"{counts[op]} to {op}" for op in OPS if counts[op]) or "no changes"))
        for step in plan["steps"]:
            print(f"  {step['op']} {step['type']} {step['name']}: "
                  + ", ".join(f"{path} ({kind})" for path, kind in sorted(step["diff"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
