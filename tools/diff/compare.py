"""The difference of two renders of one stack, object by object and field by field.

The field differences come from deepdiff (tree view); this module only decides how list entries pair up, how a path
is written, what is a secret, and which differences replace or delete something.

Paths are YAML paths: `spec.template.spec.containers[name=productpage].image`. List entries with a `name` pair by
name, so a changed, added or removed entry is that entry, not the shift of every entry after it. Other entries pair
by position when the list keeps its length (one changed port mapping is one changed field); when entries come or go
they pair by `containerPort`, `port` or `mountPath` if they have one, by position if they hold lists themselves (a
VirtualService's `http` routes), and by value otherwise (a route's `match` entries: the added one is the one added).
Paths name entries by that key where they have one (`ports[port=9080]`). Keys with dots or slashes are quoted:
`metadata.labels["istio.io/dataplane-mode"]`. A change of order alone is not reported.

What is replaced (`REPLACE_RULES`, and README's "Pull requests"): the render under mocks cannot ask a provider, so the
providers' own rules are written down here:

- an object whose identity changes (kind, namespace or name; a Helm release's name or namespace) while its Pulumi
  resource stays: the provider deletes it and creates the new one;
- fields the Kubernetes provider replaces on (pulumi-kubernetes' forceNew list) or that Kubernetes refuses to change:
  a workload's `spec.selector`, a StatefulSet's `serviceName`/`volumeClaimTemplates`/`podManagementPolicy`, a
  Service's `spec.clusterIP(s)`, a ConfigMap's or Secret's data, a Job's template, a binding's `roleRef`, a
  StorageClass's `provisioner`/`parameters`, a PersistentVolumeClaim's spec;
- a local command's `triggers` (pulumi-command marks them replaceOnChanges); a command without a delete step (the
  smoke check) replaced only runs again: counted as a replace, not flagged as destructive;
- the kind cluster's config: kind cannot reshape a cluster, so the cluster is deleted and created again, and with it
  every object in it (counted as replaced: "recreated with the kind cluster"); the commands whose trigger is the
  cluster command's id (read its kubeconfig, load images into it) run again on the new cluster;
- the provider pointing at another cluster (its context or kubeconfig changes, or the kind cluster comes or goes):
  every object is created in the new cluster and deleted from the old one.

Everything else that differs is an update in place. Secrets never appear: values the render already wrote as
[secret], a Secret's data, and keys named like credentials are shown as [secret] (a change is still reported).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepdiff import DeepDiff
from deepdiff.helper import CannotCompare
from deepdiff.helper import notpresent as _notpresent

REDACTED = "[secret]"
IDENTITY_KEYS = ("name", "containerPort", "port", "mountPath")
_SECRET_KEY = re.compile(r"(?i)^(password|passphrase|token|secret|private[-_]?key|client[-_]?key(-data)?|kubeconfig|"
                         r"credentials?)$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

OPS = ("create", "update", "replace", "delete")

# (roles or kinds, path prefix, why). A change at or under the prefix replaces the object.
REPLACE_RULES: tuple[tuple[frozenset[str], tuple[str, ...], str], ...] = (
    (frozenset({"*"}), ("metadata", "name"), "its name changes: the provider deletes it and creates the new one"),
    (frozenset({"*"}), ("metadata", "namespace"), "its namespace changes: deleted there, created in the new one"),
    (frozenset({"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}), ("spec", "selector"),
     "spec.selector is immutable: the workload is deleted and created again"),
    (frozenset({"StatefulSet"}), ("spec", "serviceName"), "spec.serviceName is immutable"),
    (frozenset({"StatefulSet"}), ("spec", "volumeClaimTemplates"), "spec.volumeClaimTemplates is immutable"),
    (frozenset({"StatefulSet"}), ("spec", "podManagementPolicy"), "spec.podManagementPolicy is immutable"),
    (frozenset({"Service"}), ("spec", "clusterIP"), "spec.clusterIP is immutable"),
    (frozenset({"Service"}), ("spec", "clusterIPs"), "spec.clusterIPs is immutable"),
    (frozenset({"ConfigMap"}), ("data",), "the provider replaces a ConfigMap whose data changes"),
    (frozenset({"ConfigMap"}), ("binaryData",), "the provider replaces a ConfigMap whose data changes"),
    (frozenset({"Secret"}), ("data",), "the provider replaces a Secret whose data changes"),
    (frozenset({"Secret"}), ("stringData",), "the provider replaces a Secret whose data changes"),
    (frozenset({"Secret"}), ("type",), "a Secret's type is immutable"),
    (frozenset({"Job"}), ("spec", "template"), "a Job's template is immutable"),
    (frozenset({"RoleBinding", "ClusterRoleBinding"}), ("roleRef",), "roleRef is immutable"),
    (frozenset({"StorageClass"}), ("provisioner",), "a StorageClass's provisioner is immutable"),
    (frozenset({"StorageClass"}), ("parameters",), "a StorageClass's parameters are immutable"),
    (frozenset({"PersistentVolumeClaim"}), ("spec",), "a PersistentVolumeClaim's spec is immutable"),
    (frozenset({"helmrelease"}), ("name",), "the release name changes: Helm uninstalls it and installs the new one"),
    (frozenset({"helmrelease"}), ("namespace",), "the release namespace changes: uninstalled, installed anew"),
    (frozenset({"command"}), ("triggers",), "its triggers changed: the command is replaced (delete, then create)"),
    (frozenset({"kindcluster"}), (), "the kind cluster's config changed: kind cannot reshape a cluster, it is "
                                     "deleted and created again, with everything in it"),
)
IN_CLUSTER_ROLES = ("object", "patch", "helmrelease")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Item:
    """One rendered file."""

    filename: str
    role: str  # object | patch | helmrelease | kindcluster | command | provider
    type: str  # Pulumi type token
    resource_name: str  # Pulumi resource name
    body: Any

    @property
    def kind(self) -> str:
        if self.role in ("object", "patch") and isinstance(self.body, Mapping):
            return str(self.body.get("kind", ""))
        return self.role

    @property
    def title(self) -> str:
        body = self.body if isinstance(self.body, Mapping) else {}
        if self.role in ("object", "patch"):
            metadata = body.get("metadata") or {}
            where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
            patch = " (patch)" if self.role == "patch" else ""
            return f"{body.get('kind')} {where}{metadata.get('name')}{patch}"
        if self.role == "helmrelease":
            return f"Helm release {body.get('namespace')}/{body.get('name')} (chart {body.get('chart')})"
        if self.role == "kindcluster":
            return f"kind cluster {body.get('name')}"
        return f"{self.role} {self.resource_name}"


@dataclass
class FieldChange:
    path: str
    change: str  # changed | added | removed
    old: Any = None
    new: Any = None
    secret: bool = False
    raw_path: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"path": self.path, "change": self.change}
        if self.change != "added":
            found["old"] = self.old
        if self.change != "removed":
            found["new"] = self.new
        if self.secret:
            found["secret"] = True
        return found

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldChange:
        return cls(data["path"], data["change"], data.get("old"), data.get("new"), bool(data.get("secret")))


@dataclass
class ObjectChange:
    op: str  # create | update | replace | delete
    filename: str
    role: str
    kind: str
    title: str
    reasons: list[str] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)
    old_filename: str | None = None
    cascade: bool = False  # replaced because its cluster is (it may have changes of its own too)
    rerun: bool = False  # a command without a delete step replaced: it only runs again, nothing is removed
    chart: str | None = None
    old_version: str | None = None
    new_version: str | None = None

    @property
    def flagged(self) -> bool:
        """Deletes something: a deletion, or a replacement other than a command running again."""
        return self.op == "delete" or (self.op == "replace" and not self.rerun)

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in vars(self).items() if key != "fields"}
        data["fields"] = [change.to_json() for change in self.fields]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObjectChange:
        values = dict(data)
        values["fields"] = [FieldChange.from_json(change) for change in data.get("fields", [])]
        return cls(**values)


@dataclass
class StackDiff:
    stack: str
    istio: tuple[str | None, str | None]  # (base, head) Istio version
    changes: list[ObjectChange] = field(default_factory=list)
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)
    status: str = "both"  # both | added (a new stack file) | removed

    @property
    def counts(self) -> dict[str, int]:
        return {op: sum(1 for change in self.changes if change.op == op) for op in OPS}

    @property
    def helm(self) -> list[ObjectChange]:
        """Helm releases whose chart version or values change (any op)."""
        return [change for change in self.changes
                if change.role == "helmrelease" and (not change.cascade or change.fields)
                and (change.old_version != change.new_version
                     or any(f.path.startswith("values") for f in change.fields) or change.op in ("create", "delete"))]

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "istio": list(self.istio), "changes": [c.to_json() for c in self.changes],
                "unchanged": self.unchanged, "notes": list(self.notes), "status": self.status}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackDiff:
        base, head = data["istio"]
        return cls(data["stack"], (base, head), [ObjectChange.from_json(c) for c in data["changes"]],
                   data["unchanged"], list(data["notes"]), data["status"])


@dataclass
class Report:
    base: str  # label of the base, e.g. "main (9411c0c)"
    head: str
    stacks: list[StackDiff]

    @property
    def counts(self) -> dict[str, int]:
        return {op: sum(stack.counts[op] for stack in self.stacks) for op in OPS}

    @property
    def changed(self) -> bool:
        return any(stack.changes for stack in self.stacks)

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "head": self.head, "stacks": [stack.to_json() for stack in self.stacks]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        return cls(data["base"], data["head"], [StackDiff.from_json(stack) for stack in data["stacks"]])


# --- field differences ------------------------------------------------------------------------------------------

def identity(entry: Any) -> tuple[str, Any] | None:
    """The key that names a list entry (name, containerPort, port, mountPath), if it has one."""
    if isinstance(entry, Mapping):
        for key in IDENTITY_KEYS:
            value = entry.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return key, value
    return None


def _holds_lists(value: Any) -> bool:
    if isinstance(value, list):
        return True
    return isinstance(value, Mapping) and any(_holds_lists(item) for item in value.values())


def same_entry(old: Any, new: Any, level: Any = None) -> bool:
    """deepdiff's iterable_compare_func: whether two list entries are the same entry (see the module docstring).
    Raising CannotCompare makes deepdiff pair the whole list by position."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        raise CannotCompare()
    if "name" in old or "name" in new:
        return bool(old.get("name") == new.get("name"))
    # Lists of the same length pair by position (one changed port is that port's field, not a new entry).
    same_length = level is not None and isinstance(level.t1, list) and isinstance(level.t2, list) and (
        len(level.t1) == len(level.t2))
    if same_length:
        raise CannotCompare()
    old_id, new_id = identity(old), identity(new)
    if old_id or new_id:
        return old_id == new_id
    if _holds_lists(old) or _holds_lists(new):
        raise CannotCompare()
    return bool(old == new)


def _steps(level: Any, new_side: bool) -> list[tuple[Any, Any]]:
    """(key or index, the value it leads to) from the root down to a deepdiff level, on one side. Read from the
    levels' own relations: deepdiff's path(use_t2=True) can give the other side's index for entries it paired."""
    steps: list[tuple[Any, Any]] = []
    node = level.all_up
    while node is not None and node is not level:
        relation = node.t2_child_rel if new_side else node.t1_child_rel
        child = node.down
        if relation is None or child is None:
            break
        steps.append((relation.param, child.t2 if new_side else child.t1))
        node = child
    return steps


def step_path(steps: Sequence[tuple[Any, Any]]) -> str:
    """Steps as a YAML path, list entries named where they have a name."""
    text = ""
    for step, value in steps:
        if isinstance(step, int):
            named = identity(value)
            text += f"[{named[0]}={named[1]}]" if named else f"[{step}]"
        else:
            key = str(step)
            text += (f".{key}" if text else key) if _PLAIN_KEY.match(key) else f'["{key}"]'
    return text


def display_path(path: Sequence[Any], document: Any) -> str:
    """A deepdiff path (list of keys and indices) as a YAML path, list entries named where they have a name."""
    text = ""
    node = document
    for step in path:
        if isinstance(step, int):
            entry = node[step] if isinstance(node, list) and 0 <= step < len(node) else None
            named = identity(entry)
            text += f"[{named[0]}={named[1]}]" if named else f"[{step}]"
        else:
            key = str(step)
            text += (f".{key}" if text else key) if _PLAIN_KEY.match(key) else f'["{key}"]'
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
    return text


def _sensitive(item: Item, path: Sequence[Any]) -> bool:
    if item.kind == "Secret" and path and path[0] in ("data", "stringData"):
        return True
    return any(isinstance(step, str) and _SECRET_KEY.match(step) for step in path)


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: REDACTED if isinstance(key, str) and _SECRET_KEY.match(key) and item not in (None, "", [], {})
                else _redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


_ADDED = ("dictionary_item_added", "iterable_item_added", "attribute_added", "set_item_added")
_REMOVED = ("dictionary_item_removed", "iterable_item_removed", "attribute_removed", "set_item_removed")
_CHANGED = ("values_changed", "type_changes")


def field_changes(old: Item, new: Item) -> list[FieldChange]:
    """Every field that differs between two renders of one object, sorted by path."""
    found: list[FieldChange] = []
    if old.body == new.body:  # most objects: deepdiff takes a while to find nothing in a large CRD
        return found
    tree = DeepDiff(old.body, new.body, view="tree", iterable_compare_func=same_entry)
    for report_type, levels in tree.items():
        if report_type in _CHANGED:
            change = "changed"
        elif report_type in _ADDED:
            change = "added"
        elif report_type in _REMOVED:
            change = "removed"
        else:
            continue  # iterable_item_moved: order alone is not reported
        for level in levels:
            steps = _steps(level, new_side=change != "removed")
            raw = tuple(step for step, _ in steps)
            path = step_path(steps)
            secret = _sensitive(new if change != "removed" else old, raw) and any(
                value not in (None, "", [], {}) for value in (level.t1, level.t2) if value is not _notpresent)
            old_value = None if change == "added" else (REDACTED if secret else _redact(level.t1))
            new_value = None if change == "removed" else (REDACTED if secret else _redact(level.t2))
            found.append(FieldChange(path, change, old_value, new_value, secret, raw))
    return sorted(found, key=lambda f: (f.path, f.change))


def leaf_fields(item: Item, change: str) -> list[FieldChange]:
    """A created (or deleted) object as its fields: one line per leaf value."""
    found: list[FieldChange] = []

    def walk(value: Any, raw: tuple[Any, ...]) -> None:
        if isinstance(value, Mapping) and value:
            for key in value:
                walk(value[key], (*raw, key))
        elif isinstance(value, list) and value and any(isinstance(entry, Mapping | list) for entry in value):
            for index, entry in enumerate(value):
                walk(entry, (*raw, index))
        else:
            secret = _sensitive(item, raw) and value not in (None, "", [], {})
            shown = REDACTED if secret else _redact(value)
            found.append(FieldChange(display_path(raw, item.body), change,
                                     shown if change == "removed" else None, shown if change == "added" else None,
                                     secret, raw))

    walk(item.body, ())
    return found


# --- objects and stacks -----------------------------------------------------------------------------------------

def replace_reasons(item: Item, changes: Iterable[FieldChange]) -> list[str]:
    reasons: list[str] = []
    for roles, prefix, why in REPLACE_RULES:
        if "*" not in roles and item.kind not in roles and item.role not in roles:
            continue
        if "*" in roles and item.role not in ("object", "patch"):
            continue
        hits = [change for change in changes if tuple(change.raw_path[:len(prefix)]) == prefix]
        if hits:
            where = ", ".join(sorted({change.path for change in hits})[:3]) if prefix else ""
            reason = f"{why} ({where})" if where else why
            if reason not in reasons:
                reasons.append(reason)
    return reasons


def _release_versions(old: Item | None, new: Item | None) -> dict[str, Any]:
    item = new or old
    if item is None or item.role != "helmrelease":
        return {}
    return {"chart": item.body.get("chart"),
            "old_version": str(old.body.get("version")) if old is not None else None,
            "new_version": str(new.body.get("version")) if new is not None else None}


def istio_version(items: Mapping[str, Item]) -> str | None:
    """The Istio version a stack installs: its istiod release's chart version."""
    versions = [str(item.body.get("version")) for item in items.values()
                if item.role == "helmrelease" and item.body.get("chart") == "istiod"]
    return versions[0] if versions else None


def diff_stack(stack: str, base: Mapping[str, Item] | None, head: Mapping[str, Item] | None,
               notes: Sequence[str] = ()) -> StackDiff:
    """Every object that is created, updated, replaced or deleted between two renders of one stack."""
    old_items = dict(base or {})
    new_items = dict(head or {})
    result = StackDiff(stack, (istio_version(old_items) if base is not None else None,
                               istio_version(new_items) if head is not None else None),
                       notes=list(notes), status="both" if base is not None and head is not None
                       else ("added" if head is not None else "removed"))
    gone = {name: item for name, item in old_items.items() if name not in new_items}
    new = {name: item for name, item in new_items.items() if name not in old_items}
    # An object that keeps its Pulumi resource but gets another identity (file name): the same resource, replaced.
    by_resource = {(item.type, item.resource_name): name for name, item in gone.items()}
    renamed: dict[str, str] = {}
    for name, item in new.items():
        old_name = by_resource.get((item.type, item.resource_name))
        if old_name is not None and old_items[old_name].role == item.role:
            renamed[name] = old_name

    for name in sorted(set(old_items) | set(new_items)):
        old, now = old_items.get(name), new_items.get(name)
        if now is not None and name in renamed:
            old = old_items[renamed[name]]
            fields = field_changes(old, now)
            reasons = replace_reasons(now, fields) or [f"its identity changes ({old.title} → {now.title})"]
            result.changes.append(ObjectChange("replace", name, now.role, now.kind, now.title, reasons, fields,
                                               old_filename=old.filename, **_release_versions(old, now)))
        elif now is not None and old is None:
            result.changes.append(ObjectChange("create", name, now.role, now.kind, now.title, [],
                                               leaf_fields(now, "added"), **_release_versions(None, now)))
        elif old is not None and now is None:
            if name in renamed.values():
                continue
            result.changes.append(ObjectChange("delete", name, old.role, old.kind, old.title,
                                               [f"{old.title} is no longer in the stack: `pulumi up` deletes it"],
                                               [], **_release_versions(old, None)))
        elif old is not None and now is not None:
            fields = field_changes(old, now)
            if not fields:
                result.unchanged += 1
                continue
            reasons = replace_reasons(now, fields)
            rerun = bool(reasons) and now.role == "command" and not now.body.get("delete")
            if rerun:
                reasons = ["its triggers changed: it is replaced, i.e. runs again (it has no delete step: nothing "
                           "is removed)"]
            result.changes.append(ObjectChange("replace" if reasons else "update", name, now.role, now.kind,
                                               now.title, reasons, fields, rerun=rerun,
                                               **_release_versions(old, now)))
    _cascade(result, old_items, new_items)
    order = {op: index for index, op in enumerate(("replace", "delete", "create", "update"))}
    first = {"kindcluster": 0, "provider": 1}  # what everything else goes with, then the rest by file name
    result.changes.sort(key=lambda c: (c.cascade, order[c.op], first.get(c.role, 2), c.filename))
    return result


def _cascade(result: StackDiff, old_items: Mapping[str, Item], new_items: Mapping[str, Item]) -> None:
    """The kind cluster replaced, created or deleted, or the provider pointed elsewhere: every object in the cluster
    goes with it."""
    cause = None
    for change in result.changes:
        if change.role == "kindcluster":
            cause = {"replace": "recreated with the kind cluster", "create": "created in the new kind cluster",
                     "delete": "the kind cluster is deleted; created in the cluster the provider now names",
                     "update": None}[change.op]
        elif change.role == "provider" and cause is None:
            cause = "the provider points at another cluster: created there, deleted from the old one"
        if cause:
            break
    if cause is None or not old_items or not new_items:
        return
    if not all(any(item.role == "provider" for item in items.values()) for items in (old_items, new_items)):
        # One side's render predates rendering the cluster, commands and provider: they only seem to come or go.
        result.notes.append("one side's render does not include the kind cluster, local commands and provider "
                            "(its tools/render.py predates them): they show as created or deleted, and nothing is "
                            "counted as recreated with the cluster")
        return
    touched = {change.filename for change in result.changes}
    # Commands triggered by the cluster command's id (read its kubeconfig, load images into it) run again on a new
    # cluster: under mocks an id is `<resource name>-id`, so the trigger shows no change of its own.
    cluster_ids = {f"{item.resource_name}-id" for item in new_items.values() if item.role == "kindcluster"}
    for name in sorted(set(old_items) & set(new_items)):
        item = new_items[name]
        triggers = item.body.get("triggers") if item.role == "command" else None
        if cause == "recreated with the kind cluster" and isinstance(triggers, list) and cluster_ids & {
                str(trigger) for trigger in triggers}:
            reason = "runs again on the new cluster (its trigger is the cluster's id)"
            existing = [change for change in result.changes if change.filename == name]
            if existing:
                existing[0].op, existing[0].cascade, existing[0].rerun = "replace", True, not item.body.get("delete")
                existing[0].reasons = [reason + " (and its own change)"]
            else:
                result.unchanged -= 1
                result.changes.append(ObjectChange("replace", name, item.role, item.kind, item.title, [reason], [],
                                                   cascade=True, rerun=not item.body.get("delete")))
            continue
        if item.role not in IN_CLUSTER_ROLES:
            continue
        if name in touched:
            for change in result.changes:
                if change.filename == name and change.op == "update":
                    change.op, change.cascade = "replace", True
                    change.reasons.append(f"{cause} (and its own change)")
            continue
        result.unchanged -= 1
        result.changes.append(ObjectChange("replace", name, item.role, item.kind, item.title, [cause], [],
                                           cascade=True, **_release_versions(old_items[name], item)))
