"""Validate rendered Kubernetes objects offline against published schemas, strictly (unknown fields are errors).

Where the schemas come from (none is written here):
- core kinds: the JSON schemas bundled in PyPI `kubernetes-validate` (its `-strict` variants), for KUBERNETES_VERSION;
- Istio kinds: the CustomResourceDefinitions that the Go module `istio.io/api` ships at the Istio release the stack
  installs (kubernetes/customresourcedefinitions.gen.yaml, the source of the base chart's CRDs);
- Gateway API kinds: the standard-channel CustomResourceDefinitions of the Go module `sigs.k8s.io/gateway-api` at the
  release the stack installs (config/crd/standard, the content of standard-install.yaml).

Not a schema but validated against them: Istio's own add-on files (samples/addons of the Go module `istio.io/istio`,
ISTIO_ADDONS), which the schema tier applies through the stack's observability code path.

The Go modules are pinned below by version and go.sum hash; `python -m tools.testkit.schemas fetch` (the install
step) puts them in Go's module cache, after which every run is offline. A CRD's openAPIV3Schema is made strict the
way the API server's strict field validation behaves: every object schema that lists properties, and does not
preserve unknown fields, gets `additionalProperties: false`; `metadata` is checked against kubernetes-validate's
ObjectMeta. Not checked: CEL rules (x-kubernetes-validations), list-map key uniqueness, formats.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from components.model import gateway_api, versions

# kind's default node image (the dev stack leaves cluster.nodeImage empty) runs Kubernetes 1.35.
KUBERNETES_VERSION = "1.35"


@dataclass(frozen=True)
class GoModule:
    path: str
    version: str
    sum: str  # the h1: hash go.sum would record; checked after every download
    crd_files: tuple[str, ...]  # glob patterns inside the module
    sample_files: tuple[str, ...] = ()  # glob patterns of objects to validate (not schemas)

    @property
    def ref(self) -> str:
        return f"{self.path}@{self.version}"


ISTIO_API = GoModule("istio.io/api", "v1.31.1", "h1:5Yb5ihcz4YQsCkciusK7DnFpBMwRB6EFWeUKH1Atuyk=",
                     ("kubernetes/customresourcedefinitions.gen.yaml",))
GATEWAY_API = GoModule("sigs.k8s.io/gateway-api", "v1.6.3", "h1:lKpJa5bGlraC/QeACvCpsHLdmO6y0iKfzVl6gzaFEYc=",
                       ("config/crd/standard/*.yaml",))
MODULES = (ISTIO_API, GATEWAY_API)

# Istio's add-on files (samples/addons: prometheus.yaml, kiali.yaml, grafana.yaml), the objects the schema tier checks
# as the stack applies them. The module proxy serves istio.io/istio only at commits, not release tags: this is the
# engine tier's snapshot standing in for the stack's release (tests/engine/upstream.py ISTIO_SNAPSHOTS, same version
# and hash, so Go's module cache holds one copy for both tiers).
# Cold: a 12 MB zip, 58 MB unpacked, in 2-3 s (2026-12-05).
ISTIO_ADDONS = GoModule("istio.io/istio", "v0.0.0-20260827124520-eed52ebb66ad",
                        "h1:ui9TJjRMAV/hb5ehQaZDq7IUGxuQP6dra9lapT/VjHI=", (), ("samples/addons/*.yaml",))
ADDONS_DIR = "samples/addons"
SAMPLE_MODULES = (ISTIO_ADDONS,)

# API group -> the module whose CRDs define it.
GROUPS: dict[str, GoModule] = {
    "networking.istio.io": ISTIO_API,
    "security.istio.io": ISTIO_API,
    "telemetry.istio.io": ISTIO_API,
    "extensions.istio.io": ISTIO_API,
    "gateway.networking.k8s.io": GATEWAY_API,
}

# What each pin must track: the stack's own versions (a bump there fails the schema tests until this file follows).
TRACKS = {ISTIO_API: f"v{versions.ISTIO_VERSION}", GATEWAY_API: versions.GATEWAY_API_VERSION}


class SchemaNotFound(Exception):
    """No published schema for an object's apiVersion/kind: it cannot be validated (and so it fails)."""


class ObjectInvalid(Exception):
    def __init__(self, obj: dict[str, Any], errors: list[str]) -> None:
        self.errors = errors
        meta = obj.get("metadata") or {}
        where = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p)
        super().__init__(f"{obj.get('apiVersion')} {obj.get('kind')} {where}: " + "; ".join(errors))


# --- the Go modules ---------------------------------------------------------------------------------------------

def _escape(module_path: str) -> str:
    """Go's module cache spelling: each upper-case letter becomes '!' + its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), module_path)


@cache
def gomodcache() -> Path:
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True).stdout.strip()
        if out:
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    return Path(gopath.split(os.pathsep)[0]) / "pkg" / "mod"


def module_dir(module: GoModule) -> Path:
    """The module's files in Go's cache, after checking they are the pinned ones."""
    cache_root = gomodcache()
    directory = cache_root / f"{_escape(module.path)}@{module.version}"
    ziphash = cache_root / "cache" / "download" / _escape(module.path) / "@v" / f"{module.version}.ziphash"
    if not directory.is_dir() or not ziphash.is_file():
        raise SchemaNotFound(f"{module.ref} is not in Go's module cache ({cache_root}); run the install step: "
                             "python -m tools.testkit.schemas fetch")
    found = ziphash.read_text(encoding="utf-8").strip()
    if found != module.sum:
        raise SchemaNotFound(f"{module.ref} in {cache_root} has hash {found}, pinned {module.sum}")
    return directory


# sigs.k8s.io/gateway-api v1.6.3's go.mod says go 1.26.0: an older Go refuses the download (or, with
# GOTOOLCHAIN=auto, fetches 1.26 itself from the module proxy).
GO_MINIMUM = "1.26"
NEEDS_GO = (f"the schema tier (tests/schema) and `render --validate` need the pinned schema modules, which "
            f"`make venv` fetches with Go {GO_MINIMUM} or newer")


def missing_modules(modules: Iterable[GoModule] = MODULES) -> list[str]:
    """The pinned modules not (correctly) in Go's module cache: what `fetch` would still have to download."""
    missing = []
    for module in modules:
        try:
            module_dir(module)
        except SchemaNotFound:
            missing.append(module.ref)
    return missing


def addons_dir() -> Path:
    """Istio's samples/addons at the pinned snapshot (an observability.source), or SchemaNotFound."""
    return module_dir(ISTIO_ADDONS) / ADDONS_DIR


def fetch(modules: Iterable[GoModule] = (*MODULES, *SAMPLE_MODULES), required: bool = False) -> int:
    """Download the pinned modules into Go's module cache (checksum-verified by Go and against our pins).

    Without Go, one line says what that leaves out; `required` (CI) makes it an error."""
    if shutil.which("go") is None:
        if not missing_modules(modules):
            print("schemas: Go is not installed, but the pinned schema modules are already fetched")
            return 0
        print(f"schemas: Go is not installed: {NEEDS_GO}; everything else works without it", file=sys.stderr)
        return 1 if required else 0
    for module in modules:
        # Outside any go.mod (a module@version download needs none), whatever GOFLAGS the caller has.
        result = subprocess.run(["go", "mod", "download", "-json", module.ref], capture_output=True, text=True,
                                cwd=tempfile.gettempdir(), env={**os.environ, "GOFLAGS": ""}, check=False)
        info = json.loads(result.stdout or "{}")
        if result.returncode != 0 or info.get("Error"):
            raise SystemExit(f"go mod download {module.ref} failed: {info.get('Error') or result.stderr.strip()}")
        if info.get("Sum") != module.sum:
            raise SystemExit(f"{module.ref}: downloaded hash {info.get('Sum')} differs from the pin {module.sum}")
        root = module_dir(module)
        if module.crd_files:
            print(f"{module.ref} {module.sum}: {len(_crds(module))} CustomResourceDefinitions")
        else:
            found = sorted({path.name for pattern in module.sample_files for path in root.glob(pattern)})
            print(f"{module.ref} {module.sum}: {', '.join(found)}")
    return 0


def _parsed_cache(module: GoModule) -> Path:
    """The module's CRDs as JSON (parsing the YAML takes ten times longer), keyed by the pinned hash."""
    digest = hashlib.sha256(module.sum.encode()).hexdigest()[:16]
    name = f"{_escape(module.path).replace('/', '_')}@{module.version}-{digest}.json"
    return gateway_api.cache_dir() / "schemas" / name


@cache
def _crds(module: GoModule) -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CustomResourceDefinition, from the module's CRD files."""
    root = module_dir(module)
    parsed = _parsed_cache(module)
    if parsed.is_file():
        docs = json.loads(parsed.read_text(encoding="utf-8"))
    else:
        docs = []
        for pattern in module.crd_files:
            for path in sorted(root.glob(pattern)):
                with path.open(encoding="utf-8") as handle:
                    docs += [doc for doc in yaml.load_all(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                             if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"]
        try:
            parsed.parent.mkdir(parents=True, exist_ok=True)
            temporary = parsed.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(docs), encoding="utf-8")
            temporary.replace(parsed)
        except (OSError, TypeError):
            pass  # no cache only costs time
    return {(doc["spec"]["group"], doc["spec"]["names"]["kind"]): doc for doc in docs}


# --- strict schemas -----------------------------------------------------------------------------------------------

_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD structural schema as a JSON schema in which unknown fields are errors (a copy; the input is untouched)."""
    out = copy.copy(schema)
    if "properties" in out:
        out["properties"] = {key: strict_schema(value) for key, value in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("items"), dict):
        out["items"] = strict_schema(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(out["additionalProperties"])
    if isinstance(out.get("not"), dict):
        out["not"] = strict_schema(out["not"])
    for key in _SUBSCHEMA_LISTS:
        if key in out:
            out[key] = [strict_schema(item) for item in out[key]]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@cache
def _crd_validator(group: str, version: str, kind: str) -> jsonschema.protocols.Validator:
    module = GROUPS[group]
    crd = _crds(module).get((group, kind))
    if crd is None:
        raise SchemaNotFound(f"{module.ref} has no CustomResourceDefinition for {group} {kind}")
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        raise SchemaNotFound(f"{module.ref}: {kind} is not served as {group}/{version} (served: {', '.join(served)})")
    schema = strict_schema(served[version]["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are checked on their own (the API server handles them before the schema).
    for key in ("apiVersion", "kind", "metadata"):
        schema.get("properties", {}).pop(key, None)
    # OpenAPI v3.0 schemas follow draft 4's keywords (exclusiveMaximum as a boolean, no const).
    return jsonschema.validators.Draft4Validator(schema)


# --- kubernetes-validate --------------------------------------------------------------------------------------------

@cache
def _schema_dir(kubernetes_version: str) -> str:
    wanted = kv_utils.major_minor(kubernetes_version.lstrip("v"))
    available = [v for v in kv_utils.all_versions() if _minor_key(v) <= _minor_key(wanted)]
    if not available or _minor_key(wanted) > _minor_key(kv_utils.latest_version()):
        raise SchemaNotFound(f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for "
                             f"Kubernetes {kubernetes_version}")
    return f"kubernetes-json-schema/v{available[-1]}-local-strict"


def _minor_key(version: str) -> tuple[int, int]:
    major, minor = kv_utils.major_minor(version).split(".")[:2]
    return int(major), int(minor)


@cache
def _core_registry(schema_dir: str) -> Registry:
    definitions = kv_utils.schema_contents(f"{schema_dir}/_definitions.json", schema_dir)
    return Resource.from_contents(definitions) @ Registry()


@cache
def _core_validator(kubernetes_version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """kubernetes-validate's strict schema for one kind, loaded once (its validate() reloads them on every call)."""
    schema_dir = _schema_dir(kubernetes_version)
    # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", kubernetes_version)
    except FileNotFoundError:
        raise SchemaNotFound(f"kubernetes-validate has no schema for {api_version} {kind} "
                             f"(Kubernetes {kubernetes_version})") from None
    registry = Resource.from_contents(schema) @ _core_registry(schema_dir)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


# --- validation ------------------------------------------------------------------------------------------------------

def _path(error: jsonschema.ValidationError, prefix: Iterable[str | int] = ()) -> str:
    parts = [*prefix, *error.absolute_path]
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or "(root)"


def _messages(errors: Iterator[jsonschema.ValidationError], prefix: Iterable[str | int] = (),
              partial: bool = False) -> list[str]:
    out = []
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        if partial and error.validator == "required":
            continue
        out.append(f"{_path(error, prefix)}: {error.message}")
    return out


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def kubernetes_version(node_image: str | None) -> str:
    """The Kubernetes minor a kind node image runs (kindest/node:v1.34.2 -> 1.34); KUBERNETES_VERSION otherwise."""
    return versions.node_image_kubernetes(node_image or "") or KUBERNETES_VERSION


def errors(obj: dict[str, Any], kubernetes_version: str = KUBERNETES_VERSION, partial: bool = False) -> list[str]:
    """Every schema violation of one object; `partial` for a patch (required fields may be left out)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["apiVersion and kind are required"]
    group = group_of(api_version)
    if group not in GROUPS:
        return _messages(_core_validator(kubernetes_version, api_version, kind).iter_errors(obj), partial=partial)
    validator = _crd_validator(group, api_version.rsplit("/", 1)[1], kind)
    body = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind", "metadata")}
    found = _messages(validator.iter_errors(body), partial=partial)
    meta = _core_validator(kubernetes_version, "meta/v1", "ObjectMeta")
    found += _messages(meta.iter_errors(obj.get("metadata") or {}), prefix=["metadata"], partial=partial)
    if not (obj.get("metadata") or {}).get("name") and not partial:
        found.append("metadata.name: required")
    return found


def validate(obj: dict[str, Any], kubernetes_version: str = KUBERNETES_VERSION, partial: bool = False) -> None:
    found = errors(obj, kubernetes_version, partial)
    if found:
        raise ObjectInvalid(obj, found)


def describe_sources(kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    return [f"kubernetes-validate {kubernetes_validate.__version__} (Kubernetes {kubernetes_version}, strict)",
            *(f"{m.ref} {m.sum} ({', '.join(m.crd_files)})" for m in MODULES),
            *(f"{m.ref} {m.sum} ({', '.join(m.sample_files)}: objects validated, not schemas)"
              for m in SAMPLE_MODULES)]


def gateway_api_standard_install(version: str) -> Path | None:
    """The objects of the Gateway API release's standard-install.yaml, offline: that file is the concatenation of the
    module's config/crd/standard/gateway*.yaml, in file name order. None unless `version` is the pinned module's and
    the module has been fetched."""
    if version != GATEWAY_API.version:
        return None
    try:
        root = module_dir(GATEWAY_API)
    except SchemaNotFound:
        return None
    bundle = gateway_api.cache_dir() / "schemas" / f"gateway-api-{version}-standard-install.yaml"
    if not bundle.is_file():
        files = sorted((root / "config" / "crd" / "standard").glob("gateway*.yaml"))
        parts = [path.read_text(encoding="utf-8") for path in files]
        bundle.parent.mkdir(parents=True, exist_ok=True)
        temporary = bundle.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text("---\n".join(part if part.endswith("\n") else part + "\n" for part in parts),
                             encoding="utf-8")
        temporary.replace(bundle)
    return bundle


def served_kinds(module: GoModule) -> list[str]:
    return sorted(f"{group}/{v['name']} {kind}" for (group, kind), crd in _crds(module).items()
                  for v in crd["spec"]["versions"] if v.get("served"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.testkit.schemas", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_args = sub.add_parser("fetch", help="download the pinned schema modules into Go's module cache (the "
                                "install step)")
    fetch_args.add_argument("--required", action="store_true", help="fail when Go is missing (CI)")
    sub.add_parser("sources", help="list the schema sources and the CRD kinds they define")
    check = sub.add_parser("check", help="validate YAML files of Kubernetes objects (e.g. render/*.yaml)")
    check.add_argument("files", nargs="+")
    check.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        return fetch(required=args.required)
    if args.command == "sources":
        for line in describe_sources():
            print(line)
        for module in MODULES:
            for kind in served_kinds(module):
                print(f"  {kind}")
        return 0
    failures = 0
    for name in args.files:
        with open(name, encoding="utf-8") as handle:
            for doc in yaml.safe_load_all(handle):
                if not isinstance(doc, dict) or "apiVersion" not in doc:
                    continue  # e.g. a Helm release description
                # tools.render names a patch <kind>patch-<namespace>-<name>.yaml: required fields may be absent.
                partial = os.path.basename(name).split("-", 1)[0].endswith("patch")
                try:
                    validate(doc, args.kubernetes_version, partial=partial)
                except (ObjectInvalid, SchemaNotFound) as problem:
                    failures += 1
                    print(f"FAIL {name}: {problem}", file=sys.stderr)
    print(f"{len(args.files)} files checked, {failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
