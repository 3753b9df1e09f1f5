"""Renders of every stack: the head (this working tree, in this process) and the base (a git ref, by its own code).

The base is `git archive`d into a temporary directory and rendered there by the base's own `python -m tools.render`
(with this interpreter: the base's program and render, this venv's packages), one directory per stack; a base whose
render has `--all-stacks` renders all its stacks in one process, an older one gets one process per stack file. The
files are read back as they were written: `# <type> <resource name>` on the first line, then the YAML body.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import render
from tools.diff.compare import Item, Report, diff_stack

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a render reads back in a tenth of the time


class DiffError(RuntimeError):
    pass


@dataclass
class Snapshot:
    """One stack rendered: its files, and the render's index (_render.yaml)."""

    stack: str
    items: dict[str, Item]
    index: dict[str, Any] = field(default_factory=dict)
    graph: Any = None  # the mock graph, where rendered in this process (the policy pack runs on it)
    config: Any = None


def role_of(filename: str) -> str:
    prefix = filename.split("-", 1)[0]
    if prefix in ("helmrelease", "kindcluster", "command", "provider"):
        return prefix
    return "patch" if "@" in filename else "object"


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - CSafeLoader or SafeLoader: both safe


def read_item(path: Path) -> Item:
    text = path.read_text(encoding="utf-8")
    first = text.split("\n", 1)[0]
    type_, _, resource_name = first.removeprefix("# ").partition(" ")
    return Item(path.name, role_of(path.name), type_, resource_name, safe_load(text))


def read_render(directory: Path, stack: str) -> Snapshot:
    """A render directory (tools.render's layout) as a snapshot."""
    items = {path.name: read_item(path) for path in sorted(directory.glob("*.yaml")) if path.name != render.INDEX}
    index_file = directory / render.INDEX
    index = safe_load(index_file.read_text(encoding="utf-8")) if index_file.exists() else {}
    return Snapshot(stack, items, index or {})


def from_render(stack: render.StackRender) -> Snapshot:
    items = {r.filename: Item(r.filename, r.role, r.type, r.resource_name, r.body) for r in stack.rendered}
    from tools.testkit.mockgraph import run_stack

    return Snapshot(stack.stack, items, dict(stack.index), run_stack(stack.config, stack.stack), stack.config)


def render_head(repo: Path = render.REPO, gateway_api_crds: str | None = None,
                download: bool = False) -> dict[str, Snapshot]:
    """Every stack file of this working tree, rendered in this process."""
    if repo.resolve() != render.REPO:
        raise DiffError(f"the head is the working tree this tool runs from ({render.REPO}), not {repo}")
    return {render.stack_name(path): from_render(render.render_stack(path, (), gateway_api_crds, download))
            for path in render.stack_files(repo)}


# --- git --------------------------------------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DiffError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def default_base(repo: Path) -> str:
    """The merge base of HEAD with main (or origin/main)."""
    for branch in ("main", "origin/main"):
        try:
            return git(repo, "merge-base", "HEAD", branch)
        except DiffError:
            continue
    raise DiffError("no merge base with main or origin/main: name the base with --base <git ref>")


def describe(repo: Path, ref: str) -> str:
    """`ref (abc1234)`, or the short sha alone when ref is a sha."""
    sha = git(repo, "rev-parse", "--short=7", f"{ref}^{{commit}}")
    return sha if git(repo, "rev-parse", f"{ref}^{{commit}}").startswith(ref) else f"{ref} ({sha})"


def describe_head(repo: Path) -> str:
    try:
        sha = git(repo, "rev-parse", "--short=7", "HEAD")
        dirty = git(repo, "status", "--porcelain", "--untracked-files=no")
    except DiffError:
        return "working tree"
    return f"working tree at {sha}" + (" (with uncommitted changes)" if dirty else "")


def archive(repo: Path, ref: str, target: Path) -> None:
    """The tree of `ref` extracted into `target` (no .git: the base's tracked files only)."""
    done = subprocess.run(["git", "archive", "--format=tar", f"{ref}^{{commit}}"], cwd=repo, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise DiffError(f"git archive {ref}: {done.stderr.decode(errors='replace').strip()}")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(target, filter="data")


@dataclass
class BaseRender:
    """The base's render, running in the background while the head renders here."""

    tree: Path
    out: Path
    processes: list[tuple[str, subprocess.Popen[str]]]

    def stop(self) -> None:
        for _, process in self.processes:
            process.kill()
            process.communicate()

    def wait(self) -> dict[str, Snapshot]:
        failures = []
        for label, process in self.processes:
            stdout, stderr = process.communicate()
            if process.returncode != 0:
                failures.append(f"{label} exited {process.returncode}:\n{stdout[-2000:]}{stderr[-4000:]}")
        if failures:
            raise DiffError("the base did not render:\n" + "\n".join(failures))
        return {path.name: read_render(path, path.name) for path in sorted(self.out.iterdir()) if path.is_dir()}


def start_base(repo: Path, ref: str, workdir: Path, gateway_api_crds: str | None = None,
               download: bool = False, python: str = sys.executable) -> BaseRender:
    """Extract `ref` and start its own render of every stack file it has."""
    tree, out = workdir / "base", workdir / "base-render"
    archive(repo, ref, tree)
    out.mkdir(parents=True, exist_ok=True)
    renderer = tree / "tools" / "render.py"
    if not renderer.is_file():
        raise DiffError(f"{ref} has no tools/render.py: it cannot render itself")
    options: list[str] = []
    if gateway_api_crds:
        options += ["--gateway-api-crds", str(Path(gateway_api_crds).resolve())]
    if download:
        options.append("--download")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    runs: list[tuple[str, list[str]]]
    if "--all-stacks" in renderer.read_text(encoding="utf-8"):
        runs = [("render --all-stacks", ["--all-stacks", "--out", str(out), *options])]
    else:
        runs = [(f"render {path.name}", ["--stack-file", str(path), "--out", str(out / render.stack_name(path)),
                                         *options]) for path in sorted(tree.glob("Pulumi.*.yaml"))]
    processes = [(label, subprocess.Popen([python, "-m", "tools.render", *args], cwd=tree, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
                 for label, args in runs]
    return BaseRender(tree, out, processes)


def source_notes(base: Snapshot | None, head: Snapshot | None, same_file: bool = False) -> list[str]:
    """What the reader should know about where the Gateway API CRDs came from on each side (`same_file`: both
    sides were given one bundle)."""
    notes = []
    labels = [snapshot.index.get("gatewayApiCrds") for snapshot in (base, head) if snapshot is not None]
    if len(labels) == 2 and labels[0] != labels[1] and not same_file:
        notes.append(f"Gateway API CRDs rendered from {labels[0]} (base) and {labels[1]} (head)")
    if any("stand-in" in str(label) for label in labels):
        notes.append("Gateway API CRDs: the test stand-in was rendered (the configured bundle is not available "
                     "offline; pass --download): their fields are not the real ones")
    return notes


def stacks(snapshots: Sequence[dict[str, Snapshot]]) -> list[str]:
    return sorted({name for found in snapshots for name in found})


def build_report(base: Mapping[str, Snapshot], head: Mapping[str, Snapshot], base_label: str,
                 head_label: str, same_gateway_api_file: bool = False) -> Report:
    found = []
    for stack in stacks([dict(base), dict(head)]):
        old, new = base.get(stack), head.get(stack)
        found.append(diff_stack(stack, old.items if old else None, new.items if new else None,
                                source_notes(old, new, same_gateway_api_file)))
    return Report(base_label, head_label, found)
