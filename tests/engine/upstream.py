"""Istio's own Helm charts and Gateway API's own CRDs for the engine tier, from pinned, checksum-verified Go modules.

The Go module proxy serves istio.io/istio only at pseudo-versions (commits), not at release tags, so the charts come
from the snapshot closest to the release the stack pins (see ISTIO_SNAPSHOTS and tests/engine/README.md). Each
module zip is checked twice: Go checks it against the checksum database when it downloads it, and this file hashes
the zip itself (Go's "h1:" dirhash) and compares the result with the pin below before extracting anything.

What is extracted, into $AMBIENT_MESH_ENGINE_CACHE/upstream (never into the repo):

    istio-<label>/{base,istiod,cni,ztunnel,gateway}/   the five charts the stack installs, one directory per chart
                                                          (istio.repository = that directory)
    istio-<label>/addons/                                samples/addons unchanged (observability.source)
    gateway-api-<version>/standard-install.yaml          config/crd/standard, in the order of config/crd's
                                                          kustomization (what the release's standard-install.yaml
                                                          is built from)

One change is made to the charts: Chart.yaml's placeholder `version: 1.0.0` / `appVersion: 1.0.0` (upstream's
comment: "istio/release-builder will replace it at build-time with the appropriate version") become the snapshot's
label, the Istio version the stack config names (istio.version). Nothing else is touched; PROVENANCE.json beside
the charts records the module, its hash and each rewrite.

Stdlib only: tools/testkit/bootstrap-engine.sh runs it with the system python3 (`upstream-charts` piece):

    python3 tests/engine/upstream.py fetch     # go mod download + verify + extract (idempotent)
    python3 tests/engine/upstream.py paths     # where everything is
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "AMBIENT_MESH_ENGINE_CACHE"


@dataclass(frozen=True)
class GoModule:
    path: str
    version: str
    sum: str  # go.sum's h1: hash of the module zip

    @property
    def ref(self) -> str:
        return f"{self.path}@{self.version}"


@dataclass(frozen=True)
class IstioSnapshot:
    label: str  # the Istio version the stack config names for these charts (istio.version)
    module: GoModule
    gateway_api: str  # sigs.k8s.io/gateway-api in the snapshot's go.mod
    what: str


# The release tags (1.31.1, ...) are not served by the module proxy; these commits are. Both have VERSION 1.31.
ISTIO_SNAPSHOTS: dict[str, IstioSnapshot] = {
    snapshot.label: snapshot for snapshot in (
        # The stack's pin. Commit of 2026-08-27, the newest 1.31 snapshot the proxy serves.
        IstioSnapshot("1.31.1", GoModule("istio.io/istio", "v0.0.0-20260827124520-eed52ebb66ad",
                                         "h1:ui9TJjRMAV/hb5ehQaZDq7IUGxuQP6dra9lapT/VjHI="), "v1.6.0",
                      "istio.io/istio commit eed52ebb66ad of 2026-08-27 (VERSION 1.31), standing in for 1.31.1"),
        # The upgrade test's "before": 1.31 development of April, an older chart set.
        IstioSnapshot("1.31.0", GoModule("istio.io/istio", "v0.0.0-20260423205519-b01690e6db7d",
                                         "h1:A+Us0Ium1V2WFsOJYZAfeNfWmPQULLUVdgwNm7KjLF8="), "v1.5.1",
                      "istio.io/istio commit b01690e6db7d of 2026-04-23 (VERSION 1.31, development), labelled "
                      "1.31.0 for the upgrade test: an older 1.31 chart set, not the 1.31.0 release"),
    )
}

# The Gateway API releases the stack files name (gatewayApi.version).
GATEWAY_API: dict[str, GoModule] = {
    module.version: module for module in (
        GoModule("sigs.k8s.io/gateway-api", "v1.6.3", "h1:lKpJa5bGlraC/QeACvCpsHLdmO6y0iKfzVl6gzaFEYc="),
    )
}

# Chart directory name the stack asks for (components/istio.py) -> where istio.io/istio keeps that chart.
CHARTS: dict[str, str] = {
    "base": "manifests/charts/base",
    "istiod": "manifests/charts/istio-control/istio-discovery",
    "cni": "manifests/charts/istio-cni",
    "ztunnel": "manifests/charts/ztunnel",
    "gateway": "manifests/charts/gateway",
}
PLACEHOLDER_VERSION = "1.0.0"
ADDONS = "samples/addons"


class UpstreamError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ambient-mesh-engine") / "upstream"


def charts_dir(label: str) -> Path:
    """istio.repository for the charts labelled `label` (one sub-directory per chart)."""
    return cache_root() / f"istio-{label}"


def addons_dir(label: str) -> Path:
    """observability.source for the charts labelled `label`: the snapshot's samples/addons (prometheus.yaml, ...)."""
    return charts_dir(label) / "addons"


def gateway_api_crds(version: str) -> Path:
    """gatewayApi.source for the Gateway API release `version`."""
    return cache_root() / f"gateway-api-{version}" / "standard-install.yaml"


def missing() -> list[str]:
    """What `fetch` has not extracted yet (empty when the engine tests can use the real charts and CRDs)."""
    out = [str(charts_dir(label) / chart) for label in ISTIO_SNAPSHOTS for chart in CHARTS
           if not (charts_dir(label) / chart / "Chart.yaml").is_file()]
    out += [str(gateway_api_crds(version)) for version in GATEWAY_API if not gateway_api_crds(version).is_file()]
    return out


# --- checksums ----------------------------------------------------------------------------------------------


def zip_hash(path: Path) -> str:
    """Go's h1: hash of a module zip: sha256 over the sorted lines "<sha256 of file>  <name>\\n"."""
    summary = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        names = sorted(info.filename for info in archive.infolist() if not info.is_dir())
        for name in names:
            if "\n" in name:
                raise UpstreamError(f"{path}: file name with a newline")
            summary.update(f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def download(module: GoModule) -> Path:
    """The module's zip in Go's module cache, downloaded if needed, after checking it against the pin."""
    result = subprocess.run(["go", "mod", "download", "-json", module.ref], capture_output=True, text=True,
                            cwd=tempfile.gettempdir(), env={**os.environ, "GOFLAGS": ""}, check=False)
    try:
        info = json.loads(result.stdout or "{}")
    except ValueError:
        info = {}
    if result.returncode != 0 or info.get("Error") or not info.get("Zip"):
        raise UpstreamError(f"go mod download {module.ref} failed: {info.get('Error') or result.stderr.strip()}")
    if info.get("Sum") != module.sum:
        raise UpstreamError(f"{module.ref}: Go reports hash {info.get('Sum')}, pinned {module.sum}")
    archive = Path(info["Zip"])
    found = zip_hash(archive)
    if found != module.sum:
        raise UpstreamError(f"{module.ref}: {archive} hashes to {found}, pinned {module.sum}")
    return archive


# --- extraction ---------------------------------------------------------------------------------------------


def _extract(archive: Path, module: GoModule, inside: str, target: Path) -> int:
    prefix = f"{module.ref}/{inside.rstrip('/')}/"
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            relative = Path(info.filename[len(prefix):])
            if relative.is_absolute() or ".." in relative.parts:
                raise UpstreamError(f"{archive}: unsafe path {info.filename}")
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zf.read(info))
            count += 1
    if count == 0:
        raise UpstreamError(f"{module.ref} has no {inside}/")
    return count


def _set_chart_version(chart_yaml: Path, label: str) -> list[str]:
    text = chart_yaml.read_text(encoding="utf-8")
    rewrites = []
    for key in ("version", "appVersion"):
        pattern = re.compile(rf"^{key}: *{re.escape(PLACEHOLDER_VERSION)} *$", re.MULTILINE)
        if len(pattern.findall(text)) != 1:
            raise UpstreamError(f"{chart_yaml}: expected one line `{key}: {PLACEHOLDER_VERSION}` (the snapshot's "
                                "placeholder); the chart layout changed")
        text = pattern.sub(f"{key}: {label}", text)
        rewrites.append(f"{key}: {PLACEHOLDER_VERSION} -> {label}")
    chart_yaml.write_text(text, encoding="utf-8")
    return rewrites


def _replace_dir(staging: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    staging.replace(target)


def _stamp(module: GoModule) -> str:
    return f"{module.ref} {module.sum}"


def _up_to_date(target: Path, module: GoModule) -> bool:
    provenance = target / "PROVENANCE.json"
    try:
        return json.loads(provenance.read_text(encoding="utf-8")).get("stamp") == _stamp(module)
    except (OSError, ValueError):
        return False


def extract_istio(snapshot: IstioSnapshot) -> Path:
    target = charts_dir(snapshot.label)
    if _up_to_date(target, snapshot.module) and not any(not (target / c / "Chart.yaml").is_file() for c in CHARTS) \
            and (addons_dir(snapshot.label) / "prometheus.yaml").is_file():
        return target
    archive = download(snapshot.module)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".istio-{snapshot.label}-", dir=target.parent))
    provenance: dict[str, object] = {"stamp": _stamp(snapshot.module), "module": snapshot.module.ref,
                                     "sum": snapshot.module.sum, "what": snapshot.what, "charts": {}}
    for chart, inside in CHARTS.items():
        files = _extract(archive, snapshot.module, inside, staging / chart)
        rewrites = _set_chart_version(staging / chart / "Chart.yaml", snapshot.label)
        provenance["charts"][chart] = {"from": inside, "files": files, "rewritten": rewrites}  # type: ignore[index]
    # Istio's add-ons (Prometheus, Kiali, Grafana...) as its docs apply them, unchanged.
    provenance["addons"] = {"from": ADDONS, "files": _extract(archive, snapshot.module, ADDONS, staging / "addons")}
    (staging / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    _replace_dir(staging, target)
    return target


def _kustomization_order(archive: Path, module: GoModule) -> list[str]:
    with zipfile.ZipFile(archive) as zf:
        text = zf.read(f"{module.ref}/config/crd/kustomization.yaml").decode()
    files = re.findall(r"^\s*-\s*(standard/\S+\.yaml)\s*$", text, re.MULTILINE)
    if not files:
        raise UpstreamError(f"{module.ref}: config/crd/kustomization.yaml lists no standard/*.yaml")
    return files


def extract_gateway_api(module: GoModule) -> Path:
    target = gateway_api_crds(module.version).parent
    if _up_to_date(target, module) and gateway_api_crds(module.version).is_file():
        return gateway_api_crds(module.version)
    archive = download(module)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".gateway-api-{module.version}-", dir=target.parent))
    files = _kustomization_order(archive, module)
    with zipfile.ZipFile(archive) as zf:
        parts = [zf.read(f"{module.ref}/config/crd/{name}").decode().strip("\n") for name in files]
    # Each file starts with its own `---` or none: one separator between documents either way.
    body = "\n---\n".join(part.removeprefix("---\n") for part in parts) + "\n"
    (staging / "standard-install.yaml").write_text(body, encoding="utf-8")
    provenance = {"stamp": _stamp(module), "module": module.ref, "sum": module.sum,
                  "files": [f"config/crd/{name}" for name in files]}
    (staging / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    _replace_dir(staging, target)
    return gateway_api_crds(module.version)


def fetch() -> None:
    for snapshot in ISTIO_SNAPSHOTS.values():
        print(f"istio {snapshot.label}: {extract_istio(snapshot)}  ({snapshot.module.ref} {snapshot.module.sum})")
    for module in GATEWAY_API.values():
        print(f"gateway-api {module.version}: {extract_gateway_api(module)}  ({module.sum})")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "fetch"
    try:
        if command == "fetch":
            fetch()
        elif command == "outputs":
            # What tools/bootstrap-engine.sh checks exists before trusting the piece's stamp.
            for label in ISTIO_SNAPSHOTS:
                print(charts_dir(label) / "PROVENANCE.json")
            for version in GATEWAY_API:
                print(gateway_api_crds(version))
        elif command == "istio-module":
            # `python3 upstream.py istio-module 1.31.1` -> "istio.io/istio v0.0.0-...": what the bootstrap builds
            # pilot-discovery from.
            module = ISTIO_SNAPSHOTS[argv[2]].module
            print(f"{module.path} {module.version}")
        elif command == "paths":
            for label in ISTIO_SNAPSHOTS:
                print(f"istio {label}: {charts_dir(label)}")
            for version in GATEWAY_API:
                print(f"gateway-api {version}: {gateway_api_crds(version)}")
            gaps = missing()
            if gaps:
                print("missing (run fetch):\n  " + "\n  ".join(gaps))
                return 1
        else:
            print(f"usage: {argv[0]} [fetch|paths|outputs|istio-module LABEL]", file=sys.stderr)
            return 2
    except UpstreamError as error:
        print(f"upstream: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
