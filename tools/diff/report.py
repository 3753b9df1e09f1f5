"""A plan diff as text: a summary first (counts, replacements and deletions, Helm releases, per stack), then every
change at field level (`~ path: old → new`, `+ path: new`, `- path: old`). Plain text for a terminal, Markdown for a
pull-request comment; both deterministic (sorted, no times)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from tools.diff.compare import OPS, REDACTED, FieldChange, ObjectChange, Report, StackDiff

MAX_VALUE = 120  # characters of one value on a field line
WORD_DIFF_OVER = 100  # one-line strings longer than this are shown as the words that changed
SYMBOL = {"create": "+", "update": "~", "replace": "±", "delete": "-"}


def show(value: Any, limit: int = MAX_VALUE) -> str:
    """One value on one line: YAML flow style, cut at `limit` characters."""
    if value == REDACTED:
        return REDACTED
    if isinstance(value, str) and not value:
        return '""'
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True, sort_keys=False).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    if "\n" in text:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _words(old: str, new: str) -> tuple[str, str]:
    """The words that differ between two long one-line strings, a word of context each side."""
    a, b = old.split(" "), new.split(" ")
    old_parts: list[str] = []
    new_parts: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        old_parts.append(" ".join(a[max(i1 - 1, 0):i2 + 1]))
        new_parts.append(" ".join(b[max(j1 - 1, 0):j2 + 1]))
    return "… " + " … ".join(old_parts) + " …", "… " + " … ".join(new_parts) + " …"


def field_lines(change: FieldChange) -> list[str]:
    old, new = change.old, change.new
    if change.change == "added":
        return [f"+ {change.path}: {show(new)}"]
    if change.change == "removed":
        return [f"- {change.path}: {show(old)}"]
    if change.secret or old == new:
        return [f"~ {change.path}: {REDACTED} (changed)"]
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        lines = [f"~ {change.path}:"]
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1):
            if line.startswith(("---", "+++")):
                continue
            lines.append(f"    {line}")
        return lines
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > WORD_DIFF_OVER:
        before, after = _words(old, new)
        return [f"~ {change.path}: {show(before, 400)} → {show(after, 400)}"]
    return [f"~ {change.path}: {show(old)} → {show(new)}"]


def counts_line(counts: dict[str, int]) -> str:
    if not any(counts.values()):
        return "no changes"
    words = {"create": "to create", "update": "to update", "replace": "to replace", "delete": "to delete"}
    return ", ".join(f"{counts[op]} {words[op]}" for op in OPS if counts[op])


def istio_label(stack: StackDiff) -> str:
    base, head = stack.istio
    if base and head and base != head:
        return f"Istio {base} → {head}"
    return f"Istio {head or base}" if head or base else "no Istio"


def stack_line(stack: StackDiff) -> str:
    status = {"added": " (new stack)", "removed": " (stack removed)"}.get(stack.status, "")
    return f"{stack.stack}{status} ({istio_label(stack)}): {counts_line(stack.counts)}"


def helm_line(change: ObjectChange) -> str:
    versions = (f"chart {change.chart} {change.old_version} → {change.new_version}"
                if change.old_version and change.new_version and change.old_version != change.new_version
                else f"chart {change.chart} {change.new_version or change.old_version}")
    values = sum(1 for f in change.fields if f.path.startswith("values"))
    parts = [versions] + ([f"{values} value{'s' if values != 1 else ''} changed"] if values else [])
    name = change.title.removeprefix("Helm release ").split(" (chart")[0]
    return f"{name}: {change.op}, " + ", ".join(parts)


def flagged(report: Report) -> list[tuple[str, ObjectChange]]:
    """Replacements and deletions that are not only a consequence of another (the cluster's, or a whole stack
    removed: removed_stacks says that in one line)."""
    return [(stack.stack, change) for stack in report.stacks if stack.status != "removed"
            for change in stack.changes if change.flagged and not change.cascade]


def removed_stacks(report: Report) -> list[StackDiff]:
    return [stack for stack in report.stacks if stack.status == "removed" and stack.changes]


def reruns(report: Report) -> list[tuple[str, ObjectChange]]:
    return [(stack.stack, change) for stack in report.stacks for change in stack.changes if change.rerun]


def cascaded(stack: StackDiff) -> list[ObjectChange]:
    """What is recreated with the cluster (commands that only run again on it are listed under "run again")."""
    return [change for change in stack.changes if change.cascade and not change.rerun]


def detail_lines(change: ObjectChange, max_fields: int = 0) -> list[str]:
    lines: list[str] = []
    if change.old_filename:
        lines.append(f"  (was {change.old_filename})")
    for reason in change.reasons if change.op == "replace" else []:
        lines.append(f"  replaced: {reason}")
    body: list[str] = []
    for field_change in change.fields:
        body.extend(field_lines(field_change))
    if max_fields and len(body) > max_fields:
        hidden = len(body) - max_fields
        body = body[:max_fields] + [f"… {hidden} more line{'s' if hidden != 1 else ''} (python -m tools.diff shows "
                                    "them all)"]
    return lines + [f"    {line}" for line in body]


# --- plain text ---------------------------------------------------------------------------------------------------

def text(report: Report, max_fields: int = 0) -> str:
    out = [f"Plan diff: {report.base} → {report.head}", ""]
    out += [f"  {stack_line(stack)}" for stack in report.stacks]
    if not report.changed:
        out += ["", "No changes: `pulumi up` of the head would do what the base does."]
        return "\n".join(out) + "\n"
    flags = flagged(report)
    if flags or removed_stacks(report):
        out += ["", "REPLACED OR DELETED (check these first):"]
        for stack in removed_stacks(report):
            out.append(f"  {stack.stack}: its stack file is gone: `pulumi destroy` of that stack would delete "
                       f"{len(stack.changes)} objects (nothing deletes them by itself)")
        for stack_name, change in flags:
            out.append(f"  {stack_name}: {change.op.upper()} {change.title}: {'; '.join(change.reasons)}")
        for stack in report.stacks:
            if cascaded(stack):
                out.append(f"  {stack.stack}: {len(cascaded(stack))} objects replaced with it: "
                           f"{_names(cascaded(stack), limit=6)}")
    if reruns(report):
        out += ["", "Run again: " + "; ".join(f"{stack_name}: {change.title}" for stack_name, change in reruns(report))]
    helm = [(stack.stack, change) for stack in report.stacks for change in stack.helm]
    if helm:
        out += ["", "Helm releases:"]
        out += [f"  {stack_name}: {helm_line(change)}" for stack_name, change in helm]
    for stack in report.stacks:
        if not stack.changes and not stack.notes:
            continue
        out += ["", f"== {stack_line(stack)}"]
        out += [f"  note: {note}" for note in stack.notes]
        for change in stack.changes:
            if change.cascade and not change.fields:
                continue
            out.append(f"{SYMBOL[change.op]} {change.op} {change.title}")
            out += detail_lines(change, max_fields)
        if cascaded(stack):
            out.append(f"± replace (with the cluster) {_names(cascaded(stack))}")
    return "\n".join(out) + "\n"


def _names(changes: Iterable[ObjectChange], limit: int = 0) -> str:
    titles = [change.title for change in changes]
    if limit and len(titles) > limit:
        return ", ".join(titles[:limit]) + f" and {len(titles) - limit} more"
    return ", ".join(titles)


# --- Markdown -----------------------------------------------------------------------------------------------------

def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def _code(value: str) -> str:
    value = value.replace("`", "'")
    return f"`{value}`"


def markdown_summary(report: Report) -> list[str]:
    """The part of the comment that is always visible: counts per stack, flags, Helm releases."""
    out = ["| stack | Istio | create | update | replace | delete |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for stack in report.stacks:
        counts = stack.counts
        status = {"added": " (new)", "removed": " (removed)"}.get(stack.status, "")
        cells = [f"{counts[op]}" if not counts[op] or op in ("create", "update") else f"**{counts[op]}**"
                 for op in OPS]
        out.append(f"| `{stack.stack}`{status} | {istio_label(stack).removeprefix('Istio ')} | "
                   + " | ".join(cells) + " |")
    flags = flagged(report)
    if flags or removed_stacks(report):
        out += ["", "> [!WARNING]", "> **Replaced or deleted** — check these first:"]
        for stack in removed_stacks(report):
            out.append(f"> - `{stack.stack}`: its stack file is gone ({len(stack.changes)} objects; `pulumi destroy` "
                       "of that stack deletes them)")
        for stack_name, change in flags:
            out.append(f"> - `{stack_name}`: **{change.op}** {_code(change.title)}: "
                       + _cell("; ".join(change.reasons)))
        for stack in report.stacks:
            if cascaded(stack):
                out.append(f"> - `{stack.stack}`: {len(cascaded(stack))} objects are replaced with the cluster")
    if reruns(report):
        out += ["", "Run again (replaced, nothing removed): "
                + "; ".join(f"`{stack_name}` {_code(change.title)}" for stack_name, change in reruns(report))]
    helm = [(stack.stack, change) for stack in report.stacks for change in stack.helm]
    if helm:
        out += ["", "Helm releases whose chart or values change:"]
        out += [f"- `{stack_name}` {_code(helm_line(change))}" for stack_name, change in helm]
    if not report.changed:
        out += ["", "**No changes**: `pulumi up` of the head would do what the base does."]
    return out


def markdown_details(report: Report, max_fields: int = 60) -> list[str]:
    out: list[str] = []
    for stack in report.stacks:
        if not stack.changes and not stack.notes:
            continue
        out += [f"#### `{stack.stack}`: {counts_line(stack.counts)}", ""]
        out += [f"- note: {note}" for note in stack.notes]
        own = [change for change in stack.changes if not change.cascade or change.fields]
        if own:
            out.append("```diff")
            for change in own:
                out.append(f"{SYMBOL[change.op]} {change.op} {change.title}".replace("±", "!"))
                out += detail_lines(change, max_fields)
            out.append("```")
        if cascaded(stack):
            out += ["", f"Replaced with the cluster: {_names(cascaded(stack))}."]
        out.append("")
    return out


def markdown(report: Report, max_fields: int = 60) -> str:
    out = [f"**Plan diff** {_code(report.base)} → {_code(report.head)}", ""]
    out += markdown_summary(report)
    details = markdown_details(report, max_fields)
    if details:
        out += ["", "<details><summary>Every change, field by field</summary>", "", *details, "</details>"]
    return "\n".join(out).rstrip() + "\n"


def strip_ansi(value: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", value)
