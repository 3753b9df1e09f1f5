"""Render every Kubernetes object the stack creates, offline: `python -m tools.render` (or `make render`).

The program runs under Pulumi mocks (tools/mockgraph: no cluster, no engine, no network). Every Kubernetes resource
it registers is written as one YAML file in the output directory (cleaned first):

- `<kind>-<namespace>-<name>.yaml`, all lower case; `_` stands for the namespace of an object that names none
  (cluster-scoped kinds: Namespace, CustomResourceDefinition, ...). `_` is never a namespace name. Should two
  objects differ only by API group (Istio's and Gateway API's Gateway of one name), both become
  `<kind>.<group>-<namespace>-<name>.yaml`.
- a server-side-apply patch (e.g. `kubernetes:core/v1:NamespacePatch`) is written as the object it applies
  (kind Namespace) in `namespacepatch-_-<name>@<pulumi resource name>.yaml` (several patches may share an object):
  only the fields in it are managed by the stack.
- each Helm release (`kubernetes:helm.sh/v3:Release`) as `helmrelease-<namespace>-<release>.yaml`: its chart,
  version, repository and values (the objects the chart creates are Helm's business, not rendered).
- the kind cluster, as `kindcluster-_-<cluster name>.yaml`: the config `kind create cluster --config -` reads
  (nodes, node image, port mappings). It is the cluster command's stdin and its trigger: any change to it replaces
  the cluster (kind cannot reshape one in place).
- each local command (`command:local:Command`: create the cluster, read its kubeconfig, the smoke check) as
  `command-_-<pulumi resource name>.yaml`: its scripts, environment (secrets as [secret]), working directory
  (relative to the repository) and triggers. Triggers of the form `name=<JSON>` are written as a mapping
  {name: value}, so one changed config value shows as one field; a change of a trigger replaces the command, a change
  of anything else re-runs it in place.
- each Kubernetes provider as `provider-_-<pulumi resource name>.yaml`: which cluster the objects go to (kubeconfig
  as [secret], context).
- `_render.yaml`: what was rendered (stack file, --set overrides, the Gateway API CRD source used).

`--all-stacks` renders every stack file of the repository (`Pulumi.<stack>.yaml`) into `<out>/<stack>/`, in one
process (tools/diff reads that layout).

apiVersion and kind come from the resource type token (`kubernetes:apps/v1:Deployment` -> apps/v1 Deployment). Keys
are ordered apiVersion, kind, metadata (name, namespace first), then alphabetically; lists keep their order. Pulumi's
wire numbers (floats) are written as integers where integral. Nothing depends on time or the machine, so two renders
diff cleanly.

The Gateway API CRD bundle: `--gateway-api-crds FILE` wins; else a configured local file; else a configured URL
(the default: the official release) is read from the download cache that `pulumi up` fills; if it has not been
downloaded, `--download` fetches it (the only network access render ever makes); otherwise the official release is
rendered from the pinned sigs.k8s.io/gateway-api module that the install step fetched for the schema tests (its
standard-install.yaml is the concatenation of that module's config/crd/standard/gateway*.yaml); failing that, the
test stand-in tests/fixtures/gateway-api-crds.yaml is rendered, and `_render.yaml` and stderr say so.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import rpc

from components.model import addons, gateway_api, versions
from components.model.config import ConfigError, StackConfig, read_stack_file
from components.model.validate import parse_config
from tools.testkit.mockgraph import Registration, run_stack

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STACK_FILE = REPO / "Pulumi.dev.yaml"
DEFAULT_OUT = REPO / "render"
GATEWAY_API_STAND_IN = REPO / "tests" / "fixtures" / "gateway-api-crds.yaml"
ADDONS_STAND_IN = REPO / "tests" / "fixtures" / "addons"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
COMMAND = "command:local:Command"
PROVIDER_PREFIX = "pulumi:providers:"
KIND_CLUSTER_API = "kind.x-k8s.io/"
CLUSTER = "_"  # the namespace part of a file name for an object without a namespace
INDEX = "_render.yaml"


@dataclass(frozen=True)
class Rendered:
    """One output file: a Kubernetes object, a patch, or a Helm release."""

    filename: str
    role: str  # "object" | "patch" | "helmrelease" | "kindcluster" | "command" | "provider"
    type: str  # Pulumi type token
    resource_name: str  # Pulumi resource name
    body: dict[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def is_object(self) -> bool:
        return self.role in ("object", "patch")

    @property
    def text(self) -> str:
        header = [f"# {self.type} {self.resource_name}", *(f"# {note}" for note in self.notes)]
        return "\n".join(header) + "\n" + dump(self.body)


@dataclass
class RenderSource:
    """The Gateway API CRD source actually rendered: `source` for the config, `label` for _render.yaml."""

    source: str
    label: str
    stand_in: bool = False
    notes: list[str] = field(default_factory=list)
    configured: str = ""  # gatewayApi.source as the stack file has it (what `pulumi up` sees)
    addons: RenderSource | None = None  # the add-on files substituted for the render, when any


# --- plain data ---------------------------------------------------------------------------------------------------

REDACTED = "[secret]"


def plain(value: Any) -> Any:
    """Pulumi's deserialized inputs as plain YAML data: integral floats as ints, None dropped, secrets never written
    (REDACTED in their place), unknowns refused."""
    if rpc.is_rpc_secret(value):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    raise ValueError(f"cannot render a value of type {type(value).__name__}: {value!r} (unknown at render time?)")


_FIRST = {"": ("apiVersion", "kind", "metadata"), "metadata": ("name", "namespace")}


def ordered(value: Any, key: str = "") -> Any:
    """Mappings in a fixed order: the keys of _FIRST, then alphabetical; lists keep their order."""
    if isinstance(value, dict):
        first = [k for k in _FIRST.get(key, ()) if k in value]
        rest = sorted(k for k in value if k not in first)
        return {k: ordered(value[k], k if not key else f"{key}.{k}") for k in first + rest}
    if isinstance(value, list):
        return [ordered(v, key + "[]") for v in value]
    return value


# libyaml's emitter when PyYAML has it (its wheels do): a render's CRDs are written in a tenth of the time. Its output
# differs from the pure-Python emitter's only in how it folds a few long quoted strings; both read back the same.
_SafeDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # every value written out in full, never as &anchor/*alias
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line strings (CRD descriptions, scripts) as block literals when YAML allows it: readable diffs.
    style = "|" if "\n" in data and not re.search(r"[^\S\n]\n|\t", data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(body: Any) -> str:
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=120, indent=2)


# --- registrations -> files -------------------------------------------------------------------------------------

def api_version_kind(type_token: str) -> tuple[str, str]:
    """`kubernetes:apps/v1:Deployment` -> ("apps/v1", "Deployment"); `kubernetes:core/v1:X` -> ("v1", "X")."""
    package, group_version, kind = type_token.split(":")
    if package != "kubernetes" or "/" not in group_version:
        raise ValueError(f"not a Kubernetes object type: {type_token}")
    group, version = group_version.rsplit("/", 1)
    return (version if group == "core" else group_version), kind


def _file_part(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "_", text.lower())


def filename(kind: str, namespace: str | None, name: str) -> str:
    return f"{_file_part(kind)}-{_file_part(namespace or CLUSTER)}-{_file_part(name)}.yaml"


def _relative(path: str) -> str:
    """Paths inside the repository without the machine's part, so renders on two machines agree."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except (ValueError, OSError):
        return path


def render_object(reg: Registration) -> Rendered:
    api_version, token_kind = api_version_kind(reg.type)
    inputs = plain(reg.inputs)
    kind = inputs.get("kind") or token_kind
    role = "object"
    notes: list[str] = []
    if kind != token_kind:
        if token_kind != f"{kind}Patch":
            raise ValueError(f"{reg.name}: type {reg.type} carries kind {kind}")
        role = "patch"
        notes.append(f"Server-side apply patch of an existing {kind}: the stack manages only these fields.")
    if inputs.get("apiVersion", api_version) != api_version:
        raise ValueError(f"{reg.name}: type {reg.type} carries apiVersion {inputs['apiVersion']}")
    body = {**inputs, "apiVersion": api_version, "kind": kind}
    metadata = body.setdefault("metadata", {})
    if not metadata.get("name"):
        # Pulumi would auto-name it <resource name>-<random suffix>.
        metadata["name"] = f"{reg.name}-xxxxxxxx"
        notes.append("metadata.name is chosen by Pulumi at create time (auto-naming): xxxxxxxx is random.")
    if role == "patch":
        # Several patches may share one object (each manages its own fields): the file also names the resource.
        name = filename(token_kind, metadata.get("namespace"), metadata["name"])
        name = name.removesuffix(".yaml") + f"@{_file_part(reg.name)}.yaml"
    else:
        name = filename(kind, metadata.get("namespace"), metadata["name"])
    return Rendered(name, role, reg.type, reg.name, ordered(body), tuple(notes))


def render_release(reg: Registration) -> Rendered:
    inputs = plain(reg.inputs)
    chart = inputs["chart"]
    repository = (inputs.get("repositoryOpts") or {}).get("repo")
    if repository is None and "/" in chart:
        # oci://registry/path/chart or a local chart directory: Helm's repository is everything before the name.
        repository, chart = chart.rsplit("/", 1)
    if repository and not re.match(r"^[a-z]+://", repository):
        repository = _relative(repository)
    namespace = inputs.get("namespace") or "default"
    name = inputs.get("name") or reg.name
    body = {
        "name": name,
        "namespace": namespace,
        "chart": chart,
        "version": inputs.get("version"),
        "repository": repository,
        "values": ordered(inputs.get("values") or {}),
    }
    return Rendered(filename("helmrelease", namespace, name), "helmrelease", reg.type, reg.name, body,
                    ("Helm release: chart, version, repository and values (not a Kubernetes object).",))


def kind_cluster_config(text: Any) -> dict[str, Any] | None:
    """The kind cluster config a command feeds kind on stdin, or None when its stdin is something else."""
    if not isinstance(text, str):
        return None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(document, dict) and document.get("kind") == "Cluster" and str(
            document.get("apiVersion", "")).startswith(KIND_CLUSTER_API):
        return document
    return None


def _triggers(triggers: list[Any]) -> Any:
    """`name=<JSON>` triggers (the smoke check's versions and config) as {name: value}; others as they are."""
    parsed: dict[str, Any] = {}
    for trigger in triggers:
        name, separator, text = trigger.partition("=") if isinstance(trigger, str) else ("", "", "")
        if not separator or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name) or name in parsed:
            return triggers
        try:
            parsed[name] = json.loads(text)
        except ValueError:
            return triggers
    return parsed if parsed else triggers


def render_command(reg: Registration) -> list[Rendered]:
    """A local command; the kind cluster it creates, when its stdin is a kind config, as a file of its own."""
    inputs = plain(reg.inputs)
    rendered: list[Rendered] = []
    notes = ["Local command: a change of its triggers replaces it (runs delete, then create); a change of anything "
             "else runs it again in place."]
    cluster = kind_cluster_config(inputs.get("stdin"))
    if cluster is not None:
        cluster_file = filename("kindcluster", None, str(cluster.get("name") or reg.name))
        rendered.append(Rendered(
            cluster_file, "kindcluster", reg.type, reg.name, ordered(cluster),
            (f"kind cluster config (stdin and trigger of the command {reg.name}): any change replaces the cluster.",)))
        reference = f"(the kind config: {cluster_file})"
        inputs["stdin"] = reference
        inputs["triggers"] = [reference if t == reg.inputs.get("stdin") else t for t in inputs.get("triggers", [])]
    if isinstance(inputs.get("triggers"), list):
        inputs["triggers"] = _triggers(inputs["triggers"])
    if isinstance(inputs.get("dir"), str):
        inputs["dir"] = _relative(inputs["dir"])
    environment = inputs.get("environment")
    if isinstance(environment, dict) and isinstance(environment.get("STACK_OWNER"), str):
        # "<project>/<stack> <checkout>": the checkout is the machine's part.
        owner, _, checkout = environment["STACK_OWNER"].partition(" ")
        environment["STACK_OWNER"] = f"{owner} <checkout>" if _relative(checkout) == "." else environment["STACK_OWNER"]
    rendered.append(Rendered(filename("command", None, reg.name), "command", reg.type, reg.name, ordered(inputs),
                             tuple(notes)))
    return rendered


def render_provider(reg: Registration) -> Rendered:
    inputs = plain(reg.inputs)
    body = {"package": reg.type.removeprefix(PROVIDER_PREFIX),
            **{key: value for key, value in inputs.items() if key != "version"}}
    return Rendered(filename("provider", None, reg.name), "provider", reg.type, reg.name, ordered(body),
                    ("Provider: the cluster every object of the stack goes to.",))


def is_kubernetes_object(reg: Registration) -> bool:
    return reg.custom and reg.type.startswith("kubernetes:") and reg.type != HELM_RELEASE


def _qualified(item: Rendered) -> Rendered:
    """The same file named `<kind>.<group>-...`: for kinds of one name in two API groups (Istio's and Gateway API's
    Gateway) that would otherwise share a file name."""
    group = item.body["apiVersion"].rpartition("/")[0] or "core"
    kind, _, rest = item.filename.partition("-")
    return dataclasses.replace(item, filename=f"{kind}.{_file_part(group)}-{rest}")


def render_graph(graph: Iterable[Registration]) -> list[Rendered]:
    """Every Kubernetes object, Helm release, local command (with the kind cluster) and provider the stack
    registers, sorted by file name."""
    rendered = []
    for reg in graph:
        if reg.type == HELM_RELEASE:
            rendered.append(render_release(reg))
        elif reg.type == COMMAND:
            rendered.extend(render_command(reg))
        elif reg.type.startswith(PROVIDER_PREFIX):
            rendered.append(render_provider(reg))
        elif is_kubernetes_object(reg):
            rendered.append(render_object(reg))
    clashing: dict[str, list[Rendered]] = {}
    for item in rendered:
        clashing.setdefault(item.filename, []).append(item)
    by_name: dict[str, Rendered] = {}
    for items in clashing.values():
        if len(items) > 1 and len({item.body.get("apiVersion") for item in items}) == len(items):
            items = [_qualified(item) for item in items]
        for item in items:
            if item.filename in by_name:
                other = by_name[item.filename]
                raise ValueError(f"{item.resource_name} and {other.resource_name} are the same object "
                                 f"({item.filename})")
            by_name[item.filename] = item
    return [by_name[name] for name in sorted(by_name)]


def render_config(config: StackConfig, stack_name: str = "dev") -> list[Rendered]:
    return render_graph(run_stack(config, stack_name))


# --- config -------------------------------------------------------------------------------------------------------

def apply_sets(raw: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """`section.key=value` overrides (value read as YAML: 2 -> int, true -> bool, none -> "none")."""
    raw = copy.deepcopy(raw)
    for item in sets:
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)\.([A-Za-z][A-Za-z0-9]*)=(.*)", item, flags=re.S)
        if not match:
            raise SystemExit(f"--set {item!r}: expected section.key=value, e.g. app.ingress=none")
        section, key, text = match.groups()
        value = yaml.safe_load(text) if text else ""
        raw.setdefault(section, {})
        if raw[section] is None:
            raw[section] = {}
        raw[section][key] = value
    return raw


def gateway_api_source(raw: dict[str, Any], override: str | None = None, download: bool = False) -> RenderSource:
    """Where the Gateway API bundle is read from for this render (see the module docstring)."""
    if override:
        return RenderSource(str(Path(override).resolve()), _relative(override))
    config = parse_config(raw).gateway_api
    source = config.resolved_source
    if not config.install or not source.startswith(("http://", "https://")):
        return RenderSource(source, _relative(source) if config.install else "(not installed: gatewayApi.mode skip)")
    if gateway_api.cached_path(source).is_file():
        return RenderSource(source, source, notes=[f"read from the download cache {gateway_api.cached_path(source)}"])
    if download:
        gateway_api.read_source(source)
        return RenderSource(source, source, notes=["downloaded"])
    from tools.testkit import schemas

    module_bundle = schemas.gateway_api_standard_install(config.version)
    if module_bundle is not None and source == versions.GATEWAY_API_RELEASE_URL.format(version=config.version):
        label = f"{schemas.GATEWAY_API.ref} config/crd/standard (the objects of {source})"
        return RenderSource(str(module_bundle), label,
                            notes=[f"{source} is not downloaded: rendered the same objects from {label}"])
    return RenderSource(str(GATEWAY_API_STAND_IN), f"{_relative(str(GATEWAY_API_STAND_IN))} (test stand-in)",
                        stand_in=True,
                        notes=[f"{source} has not been downloaded (pass --download, or --gateway-api-crds FILE): "
                               "rendered the test stand-in CRDs instead, whose schemas are NOT the real ones"])


def addons_source(raw: dict[str, Any], download: bool = False) -> RenderSource | None:
    """Where Istio's add-on files are read from for this render, as for the Gateway API bundle: the configured
    directory; else the release branch's files from the download cache `pulumi up` fills (or fetched with
    --download); else the test stand-ins tests/fixtures/addons, said in _render.yaml and on stderr."""
    observability = raw.get("observability") or {}
    wanted = observability.get("addons") or []
    if not wanted:
        return None
    configured = str(observability.get("source") or "")
    if configured:
        return RenderSource(configured, _relative(configured), configured=configured)
    version = str((raw.get("istio") or {}).get("version") or versions.ISTIO_VERSION)
    urls = [addons.ADDONS_URL.format(minor=versions.minor(version), addon=a) for a in wanted]
    if all(gateway_api.cached_path(url).is_file() for url in urls) or download:
        for url in urls:
            gateway_api.read_source(url, "observability.source")
        return RenderSource("", f"Istio's samples/addons of release-{versions.minor(version)}",
                            notes=["add-ons read from the download cache" + (" (downloaded)" if download else "")])
    return RenderSource(str(ADDONS_STAND_IN), f"{_relative(str(ADDONS_STAND_IN))} (test stand-in)", stand_in=True,
                        notes=[f"Istio's add-on files of release-{versions.minor(version)} have not been downloaded "
                               "(pass --download): rendered the test stand-ins instead, which are NOT Istio's"])


def load_config(stack_file: str | Path = DEFAULT_STACK_FILE, sets: Sequence[str] = (),
                gateway_api_crds: str | None = None, download: bool = False) -> tuple[StackConfig, RenderSource]:
    raw = apply_sets(read_stack_file(stack_file), sets)
    source = gateway_api_source(raw, gateway_api_crds, download)
    addon_files = addons_source(raw, download)
    if addon_files is not None:
        source.notes += addon_files.notes
        source.addons = addon_files
        if addon_files.source:
            raw["observability"] = {**raw["observability"], "source": addon_files.source}
    raw.setdefault("gatewayApi", {})
    if raw["gatewayApi"] is None:
        raw["gatewayApi"] = {}
    source.configured = str(raw["gatewayApi"].get("source") or "")
    raw["gatewayApi"]["source"] = source.source
    return parse_config(raw), source


def _unsubstitute(value: Any, rendered_from: str, configured: str) -> Any:
    """The config the smoke check's triggers carry, with the CRD bundle render read put back to the configured
    source: machine paths stay out of the render, and the trigger is the one `pulumi up` computes."""
    if isinstance(value, dict):
        return {key: (configured if key == "source" and item == rendered_from
                      else _unsubstitute(item, rendered_from, configured)) for key, item in value.items()}
    if isinstance(value, list):
        return [_unsubstitute(item, rendered_from, configured) for item in value]
    return value


@dataclass
class StackRender:
    """One stack file rendered: its config, where the Gateway API CRDs came from, the files, the index."""

    stack: str
    stack_file: Path
    config: StackConfig
    source: RenderSource
    rendered: list[Rendered]
    index: dict[str, Any]


def render_stack(stack_file: str | Path, sets: Sequence[str] = (), gateway_api_crds: str | None = None,
                 download: bool = False) -> StackRender:
    stack_file = Path(stack_file)
    config, source = load_config(stack_file, sets, gateway_api_crds, download)
    rendered = [dataclasses.replace(item, body=_unsubstitute(item.body, source.source, source.configured))
                if item.role == "command" and source.source != source.configured else item
                for item in render_config(config, stack_name(stack_file))]
    if source.addons is not None and source.addons.source != source.addons.configured:
        # The smoke check's trigger carries observability as configured, not the files the render read.
        rendered = [dataclasses.replace(item, body=_unsubstitute(item.body, source.addons.source,
                                                                 source.addons.configured))
                    if item.role == "command" else item for item in rendered]
    index = {
        "stackFile": _relative(str(stack_file)),
        "set": list(sets),
        "gatewayApiCrds": source.label,
        **({"addons": source.addons.label} if source.addons is not None else {}),
        "files": len(rendered),
    }
    return StackRender(stack_name(stack_file), stack_file, config, source, rendered, index)


# --- output -------------------------------------------------------------------------------------------------------

def write(rendered: Sequence[Rendered], out: Path, index: dict[str, Any] | None = None) -> None:
    """Replace `out` with the rendered files (the directory is removed first: no stale objects survive)."""
    if out.exists():
        if not out.is_dir():
            raise SystemExit(f"{out} exists and is not a directory")
        if any(child.suffix not in (".yaml", ".yml") for child in out.iterdir()):
            raise SystemExit(f"{out} holds files other than YAML: not a render directory, refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for item in rendered:
        (out / item.filename).write_text(item.text, encoding="utf-8")
    if index is not None:
        (out / INDEX).write_text(dump(index), encoding="utf-8")


def stack_files(repo: Path = REPO) -> list[Path]:
    """The repository's stack files, `Pulumi.<stack>.yaml`: those git tracks or would track (ignored leftovers such as
    an interrupted e2e run's are not stacks of the repository); every one that exists outside a git work tree."""
    found = sorted(repo.glob("Pulumi.*.yaml"))
    if not (repo / ".git").exists():
        return found
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "Pulumi.*.yaml"],
                            cwd=repo, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        return found
    names = set(listed.stdout.split())
    return [path for path in found if path.name in names]


def stack_name(stack_file: Path) -> str:
    return stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.render",
        description="Write every Kubernetes object the stack creates (and each Helm release) as YAML, offline.")
    parser.add_argument("--stack-file", default=str(DEFAULT_STACK_FILE), help="default: Pulumi.dev.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config key, e.g. --set app.ingress=none (repeatable)")
    parser.add_argument("--all-stacks", action="store_true",
                        help="render every stack file of the repository into OUT/<stack>/ (--stack-file is ignored)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output directory, cleaned first (default: render/)")
    parser.add_argument("--gateway-api-crds", metavar="FILE", help="Gateway API CRD bundle to render")
    parser.add_argument("--download", action="store_true",
                        help="download the configured Gateway API bundle if it is not cached yet")
    parser.add_argument("--validate", action="store_true",
                        help="also validate every object against the published schemas (tools/testkit/schemas.py)")
    args = parser.parse_args(argv)

    try:
        if args.all_stacks:
            out = Path(args.out)
            if out.exists() and any(child.is_file() for child in out.iterdir()):
                raise SystemExit(f"{out} holds files: --all-stacks writes one directory per stack into it")
            failures = 0
            for stack_file in stack_files():
                failures += write_stack(stack_file, args.sets, out / stack_name(stack_file), args)
            return 1 if failures else 0
        return 1 if write_stack(Path(args.stack_file), args.sets, Path(args.out), args) else 0
    except ConfigError as error:
        print(f"render: {error}", file=sys.stderr)  # one line, like `pulumi up` prints it
        return 2


def write_stack(stack_file: Path, sets: Sequence[str], out: Path, args: argparse.Namespace) -> int:
    """Render one stack file into `out`; the number of objects that failed validation (with --validate)."""
    stack = render_stack(stack_file, sets, args.gateway_api_crds, args.download)
    for note in stack.source.notes:
        print(f"render: Gateway API CRDs: {note}", file=sys.stderr)
    config, rendered = stack.config, stack.rendered
    write(rendered, out, stack.index)
    print(f"render: {len(rendered)} files in {out}")
    if not args.validate:
        return 0
    from tools.testkit import schemas

    failures = 0
    for item in rendered:
        if item.is_object:
            try:
                schemas.validate(item.body, schemas.kubernetes_version(config.cluster.node_image),
                                 partial=item.role == "patch")
            except (schemas.ObjectInvalid, schemas.SchemaNotFound) as problem:
                failures += 1
                print(f"render: INVALID {item.filename}: {problem}", file=sys.stderr)
    print(f"render: {sum(i.is_object for i in rendered)} objects validated, {failures} invalid")
    return failures


if __name__ == "__main__":
    sys.exit(main())
