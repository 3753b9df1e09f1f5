"""The real plan of a change: `pulumi up` of the base, then `pulumi preview --diff` of the head on that state.

    python -m tools.diff.engine --base REF --kubeconfig FILE [--sources DIR] [--stack S] [--json out.json]

For each stack file of the head (or those named with --stack): `pulumi up` of the base's program and config into a
throw-away local file backend, against a cluster you hand over and lose (cluster.provider=existing with that
kubeconfig; give each stack a cluster of its own: destroy leaves what Istio keeps by design), then `pulumi preview
--diff --json` of this working tree's program and config on that state, then `pulumi destroy`. The counts (create /
update / replace / delete) and each step's property diffs are what the engine itself decides: what the offline diff
(`python -m tools.diff`) can only predict. The kind cluster is not created (existing mode) and the smoke check is
off on both sides alike: their changes are the offline diff's.

Pull requests run it on the engine tier: `python -m tests.engine.diff` gives each stack a kwok cluster, the real
istiod beside it and Istio's own charts, and calls `run` below with them (a `Target` per stack).

Nothing in the repository changes: each side runs in a copy (the base from `git archive`, the head's program
linked), the project's .venv linked into both. The Pulumi CLI comes from PATH (or --pulumi); the state and its
passphrase (empty) die with the temp directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import render
from tools.diff import report as formats
from tools.diff.compare import OPS
from tools.diff.snapshot import DiffError, archive, default_base, describe

PROJECT = "ambient-mesh"
# What the head shares with the base's copy: the program and what it imports. The stack file is written, not linked.
PROGRAM = ("__main__.py", "components")
HEAD = "head"


@dataclass(frozen=True)
class Target:
    """Where one stack's plan is made: the cluster, and what the stack reads there instead of the network.

    sources: local copies laid out as `istio-<istio.version>/<chart>/` (and `addons/` beside the charts) and
    `gateway-api-<version>/standard-install.yaml`
    (the engine tier's cache); None: the stack's own repository and bundle URL. Each side's `istio.repository` is
    one path that points at its own version's charts, so an Istio version change diffs as the version alone, as
    against the chart repository.
    wrapper: a program run as __main__.py that runs the stack's (as program.py) with additions of its own, reading
    `wrapper_files` (name -> text) beside it; the engine tier's tests/engine/engine_main.py, say.
    """

    kubeconfig: Path
    sources: Path | None = None
    wrapper: Path | None = None
    wrapper_files: Mapping[str, str] = field(default_factory=dict)


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

    def changes(self) -> dict[str, int]:
        return {op: n for op, n in self.counts.items() if op != "same" and n}


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


@dataclass
class Side:
    """The ambient-mesh config one side runs with on the target, and its Istio version."""

    config: dict[str, Any]
    istio_version: str | None


def side_config(stack_file: Path, target: Target, charts_link: Path) -> Side | None:
    """A stack file's ambient-mesh config pointed at the target (None when the side has no such stack file)."""
    if not stack_file.is_file():
        return None
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    config = dict(document.get("config") or {})

    def section(name: str, **values: Any) -> dict[str, Any]:
        key = f"{PROJECT}:{name}"
        config[key] = {**(config.get(key) or {}), **values}
        return dict(config[key])

    section("cluster", provider="existing", kubeconfig=str(target.kubeconfig))
    section("verify", smokeCheck=False)  # real traffic through the mesh: not what a plan is about
    istio = section("istio")
    version = istio.get("version")
    if target.sources is not None:
        section("istio", repository=str(charts_link))
        gateway_api = config.get(f"{PROJECT}:gatewayApi") or {}
        if gateway_api.get("version"):
            section("gatewayApi", source=str(target.sources / f"gateway-api-{gateway_api['version']}" /
                                              "standard-install.yaml"))
        observability = config.get(f"{PROJECT}:observability") or {}
        if observability.get("addons") and not observability.get("source"):
            # Istio's add-on files beside its charts (istio-<version>/addons/), through the same one path.
            section("observability", source=str(charts_link / "addons"))
    return Side(config, None if version is None else str(version))


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


def project_dir(target_dir: Path, tree: Path, venv: Path, wrapper: Path | None, files: Mapping[str, str],
                link: bool) -> Path:
    """A project directory for one side: the tree's program (linked, or moved when `link` is False: a `git archive`
    copy of the base), its Pulumi.yaml, the .venv; with a wrapper, the program becomes program.py."""
    target_dir.mkdir(parents=True, exist_ok=True)
    if tree != target_dir:
        shutil.copy(tree / "Pulumi.yaml", target_dir / "Pulumi.yaml")
    for name in PROGRAM:
        source, dest = tree / name, target_dir / name
        if name == "__main__.py" and wrapper is not None:
            dest = target_dir / "program.py"
        if source.exists() and source != dest:
            if link:
                dest.symlink_to(source)
            else:
                source.rename(dest)
    if wrapper is not None:
        shutil.copy(wrapper, target_dir / "__main__.py")
        for name, text in files.items():
            (target_dir / name).write_text(text, encoding="utf-8")
    if not (target_dir / ".venv").exists():
        (target_dir / ".venv").symlink_to(venv)
    return target_dir


class StackSession:
    """One stack on one target: `up` of the base (or nothing, for a stack the base lacks), then any number of heads
    previewed against that state; `close` destroys it."""

    def __init__(self, pulumi: Pulumi, stack: str, target: Target, workdir: Path) -> None:
        self.pulumi, self.stack, self.target = pulumi, stack, target
        self.charts_link = workdir / f"istio-charts-{stack}"
        self.base: Side | None = None
        self.base_project: Path | None = None
        self.salt: str | None = None

    def _point_charts(self, side: Side) -> None:
        """istio.repository (one path for both sides) -> this side's version of the charts."""
        if self.target.sources is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.charts_link.unlink()
        self.charts_link.symlink_to(self.target.sources / f"istio-{side.istio_version}")

    def up(self, base_project: Path) -> None:
        self.base_project = base_project
        self.base = side_config(base_project / f"Pulumi.{self.stack}.yaml", self.target, self.charts_link)
        if self.base is not None:
            write_stack_file(base_project, self.stack, self.base.config)
        self.pulumi(base_project, "stack", "init", self.stack)
        if self.base is not None:
            self._point_charts(self.base)
            self.pulumi(base_project, "up", "--yes", "--skip-preview", "--stack", self.stack)
        stack_file = base_project / f"Pulumi.{self.stack}.yaml"
        if stack_file.is_file():
            self.salt = (yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}).get("encryptionsalt")

    def preview(self, head_project: Path, head_stack_file: Path) -> StackPlan:
        head = side_config(head_stack_file, self.target, self.charts_link)
        if head is None:
            raise DiffError(f"no stack file {head_stack_file.name} in the head")
        write_stack_file(head_project, self.stack, head.config, self.salt)
        self._point_charts(head)
        counts, steps = parse_preview(self.pulumi(head_project, "preview", "--diff", "--json", "--stack", self.stack))
        return StackPlan(self.stack, counts, [step for step in steps if step.op != "same"])

    def close(self) -> None:
        if self.base_project is None:
            return
        try:
            if self.base is not None:
                self._point_charts(self.base)
            self.pulumi(self.base_project, "destroy", "--yes", "--skip-preview", "--stack", self.stack)
        finally:
            self.pulumi(self.base_project, "stack", "rm", "--yes", "--force", "--stack", self.stack)


TargetFor = Callable[[str], AbstractContextManager[Target]]


def run(base_ref: str | None, target_for: TargetFor, stacks: Sequence[str] = (),
        heads: Mapping[str, Path] | None = None, pulumi_binary: str | None = None, repo: Path = render.REPO,
        env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Each stack planned on its own target (`target_for(stack)`), for one or more heads (label -> a tree with the
    program and stack files). The result: {"status", "base", "heads": {label: {stack: plan}}}; without `heads`,
    this working tree alone: {"status", "base", "stacks": {stack: plan}}, what the comment and `report` read."""
    environment = dict(os.environ if env is None else env)
    binary = pulumi_binary or shutil.which("pulumi", path=environment.get("PATH"))
    if binary is None:
        return {"status": "skipped", "reason": "no Pulumi CLI on PATH"}
    trees = dict(heads or {HEAD: repo})
    ref = base_ref or default_base(repo)
    head_files = {label: {render.stack_name(path): path for path in render.stack_files(tree)}
                  for label, tree in trees.items()}
    wanted = list(stacks) or sorted({stack for files in head_files.values() for stack in files})
    result: dict[str, Any] = {"status": "ok", "base": describe(repo, ref), "heads": {label: {} for label in trees}}
    venv = repo / ".venv" if (repo / ".venv").exists() else Path(sys.prefix)
    with tempfile.TemporaryDirectory(prefix="ambient-mesh-engine-diff-") as workdir:
        root = Path(workdir)
        backend = root / "backend"
        backend.mkdir()
        environment.update({"PULUMI_BACKEND_URL": backend.as_uri(), "PULUMI_CONFIG_PASSPHRASE": "",
                            "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_SKIP_CONFIRMATIONS": "true"})
        environment.pop("PULUMI_ACCESS_TOKEN", None)
        pulumi = Pulumi(binary, environment)
        try:
            for stack in wanted:
                missing = [label for label, files in head_files.items() if stack not in files]
                if missing:
                    raise DiffError(f"no stack file Pulumi.{stack}.yaml in {', '.join(missing)}")
                with target_for(stack) as target:
                    base_tree = root / stack / "base-tree"
                    archive(repo, ref, base_tree)
                    base = project_dir(base_tree, base_tree, venv, target.wrapper, target.wrapper_files, link=False)
                    session = StackSession(pulumi, stack, target, root / stack)
                    try:
                        session.up(base)
                        for label, tree in trees.items():
                            head = project_dir(root / stack / f"head-{label}", tree, venv, target.wrapper,
                                               target.wrapper_files, link=True)
                            result["heads"][label][stack] = session.preview(head, head_files[label][stack]).to_json()
                    finally:
                        session.close()
        except (DiffError, subprocess.TimeoutExpired) as error:
            return {"status": "failed", "reason": str(error)[-3000:], "log": pulumi.log}
    if heads is None:
        result["stacks"] = result.pop("heads")[HEAD]
    return result


def text(result: Mapping[str, Any]) -> str:
    """The terminal's view of a result: per stack, the counts, then each step with its property diffs."""
    lines = []
    for stack, plan in result.get("stacks", {}).items():
        lines.append(f"{stack}: " + formats.counts_line({op: plan["counts"][op] for op in OPS}))
        for step in plan["steps"]:
            lines.append(f"  {step['op']} {step['type']} {step['name']}: "
                         + ", ".join(f"{path} ({kind})" for path, kind in sorted(step["diff"].items())))
    return "\n".join(lines) + "\n"


def report(result: Mapping[str, Any], json_path: str | None) -> int:
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if result["status"] != "ok":
        print(f"engine: {result['status']}: {result['reason']}", file=sys.stderr)
        for entry in result.get("log", [])[-3:]:
            print(entry, file=sys.stderr)
        return 1 if result["status"] == "failed" else 0
    sys.stdout.write(text(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="git ref (default: the merge base of HEAD with main)")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="a throw-away cluster (one stack per cluster)")
    parser.add_argument("--sources", type=Path, help="local Istio charts and Gateway API bundles (see Target)")
    parser.add_argument("--stack", action="append", default=[], help="only this stack (repeatable)")
    parser.add_argument("--pulumi", help="the Pulumi CLI (default: pulumi on PATH)")
    parser.add_argument("--json", metavar="FILE", help="write the result here")
    args = parser.parse_args(argv)
    kubeconfig = args.kubeconfig.resolve()
    if not kubeconfig.is_file():
        print(f"engine: no kubeconfig at {kubeconfig}", file=sys.stderr)
        return 2
    sources = args.sources.resolve() if args.sources else None
    result = run(args.base, lambda _stack: contextlib.nullcontext(Target(kubeconfig, sources)), args.stack,
                 pulumi_binary=args.pulumi)
    return report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
