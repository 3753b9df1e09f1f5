"""Gateway API: the CRD bundle (read once, from a file or a cached download) and what an existing cluster already
has (read with kubectl, decided by a pure rule)."""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.model import versions
from components.model.catalog import PROJECT
from components.model.config import ClusterConfig, ConfigError, GatewayApiConfig, StackConfig

CACHE_ENV = "AMBIENT_MESH_CACHE_DIR"
PROBE_CRD = "gateways.gateway.networking.k8s.io"
BUNDLE_VERSION = "gateway.networking.k8s.io/bundle-version"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ambient-mesh")


def cached_path(url: str) -> Path:
    """Where a downloaded bundle is kept: the release files are immutable, so one download per URL is enough."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir() / "downloads" / f"{digest}-{url.rsplit('/', 1)[-1]}"


class DownloadFailed(RuntimeError):
    """The bundle's URL could not be fetched: this machine's problem (network, CA certificates), not the config's."""


def _download(source: str, key: str = "gatewayApi.source") -> str:
    try:
        with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - http(s) only, checked above
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError:
        raise  # the server answered: a URL that is not a bundle is the config's problem
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            raise DownloadFailed(
                f"could not download {source}: this Python does not trust the server's TLS certificate ({reason}). "
                "Fix: install CA certificates for this Python (python.org's macOS build: run 'Install "
                "Certificates.command' in its Applications folder; Linux: the ca-certificates package), or set "
                f"{key} to a downloaded copy") from None
        raise DownloadFailed(f"could not download {source} ({reason}). Fix: check this machine's network or proxy, "
                             f"or set {key} to a downloaded copy") from None


def read_source(source: str, key: str = "gatewayApi.source") -> str:
    """A local file, or a URL through the download cache; `key` is the config key a failed download names."""
    if not source.startswith(("http://", "https://")):
        return Path(source).read_text(encoding="utf-8")
    path = cached_path(source)
    if not path.is_file():
        text = _download(source, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8")


# libyaml's loader when PyYAML has it: the release bundle is large.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_bundle(source: str) -> list[dict[str, Any]]:
    """The objects of a Gateway API install bundle, in file order; ValueError when it is not one."""
    try:
        documents = [doc for doc in yaml.load_all(read_source(source), Loader=_YAML_LOADER) if doc]  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"not YAML ({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
    for doc in documents:
        metadata = doc.get("metadata") if isinstance(doc, dict) else None
        if not isinstance(metadata, dict) or "kind" not in doc or "name" not in metadata:
            raise ValueError(f"not Kubernetes objects: {str(doc)[:80]!r}")
    if not any(d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] == PROBE_CRD for d in documents):
        raise ValueError(f"no {PROBE_CRD} CustomResourceDefinition in it")
    return documents


_bundles: dict[tuple[str, float, int], list[dict[str, Any]]] = {}


def bundle(config: GatewayApiConfig) -> list[dict[str, Any]]:
    """The configured bundle's objects (read once per file version), or a ConfigError naming gatewayApi.source."""
    source = config.resolved_source
    try:
        local = None if source.startswith(("http://", "https://")) else Path(source).stat()
        key = (source, local.st_mtime if local else 0.0, local.st_size if local else 0)
        if key not in _bundles:
            _bundles[key] = load_bundle(source)
    except (OSError, ValueError) as error:
        raise ConfigError("gatewayApi.source", config.source or source,
                          f"a Gateway API install bundle (YAML of Kubernetes objects with the {PROBE_CRD} CRD), "
                          f"a URL or a local file: {error}") from None
    return _bundles[key]


# --- an existing cluster's own Gateway API CRDs --------------------------------------------------------------------



@dataclass(frozen=True)
class InstalledBundle:
    version: str  # the CRD's bundle-version annotation; "" without one
    # A pulumi-kubernetes field manager applied it: most likely this stack's own earlier install.
    by_pulumi: bool = False


class ClusterUnreadable(Exception):
    """kubectl could not tell (not installed, cluster unreachable, timeout)."""


Reader = Callable[[ClusterConfig], InstalledBundle | None]


def read_installed(cluster: ClusterConfig, timeout: int = 15) -> InstalledBundle | None:
    """The cluster's Gateway API bundle, from its Gateway CRD; None when there is none."""
    annotation = BUNDLE_VERSION.replace(".", "\\.")
    command = ["kubectl", "get", "crd", PROBE_CRD, "--ignore-not-found", f"--request-timeout={timeout}s", "-o",
               f'jsonpath={{.metadata.name}}{{"\\t"}}{{.metadata.annotations.{annotation}}}{{"\\t"}}'
               "{.metadata.managedFields[*].manager}"]
    if cluster.kubeconfig:
        command += ["--kubeconfig", cluster.kubeconfig]
    if cluster.context:
        command += ["--context", cluster.context]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 5, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ClusterUnreadable(str(error)) from error
    if done.returncode != 0:
        raise ClusterUnreadable((done.stderr.strip().splitlines() or ["kubectl failed"])[-1])
    name, version, managers = (done.stdout.split("\t") + ["", ""])[:3]
    if not name.strip():
        return None
    return InstalledBundle(version.strip(), any(m.startswith("pulumi-kubernetes") for m in managers.split()))


def decide(installed: InstalledBundle | None, config: StackConfig) -> str | None:
    """Why the stack must not touch an existing cluster's Gateway API CRDs (one line), or None."""
    gateway_api = config.gateway_api
    if not gateway_api.install:
        if installed is None and (config.app.ingress == "gateway-api" or config.waypoint.mode != "none"):
            return (f"the cluster has no Gateway API CRDs ({PROBE_CRD}) but {PROJECT}:gatewayApi.mode is skip and "
                    f"this stack creates Gateway API objects: set {PROJECT}:gatewayApi.mode install")
        return None
    if installed is None:
        return None
    have, pinned = versions.release_key(installed.version), versions.release_key(gateway_api.version)
    found = (f"the cluster already has Gateway API CRDs {installed.version or 'without a ' + BUNDLE_VERSION} "
             f"({'applied by Pulumi' if installed.by_pulumi else 'not applied by Pulumi'})")
    # Skipping CRDs this stack applied would delete them, and every Gateway API object with them.
    skip = [] if installed.by_pulumi else [f"set {PROJECT}:gatewayApi.mode skip to use them as they are"]
    if have is None or pinned is None:
        why, options = "", skip
    elif have > pinned and have[:2] == pinned[:2]:
        why, options = "", [f"set {PROJECT}:gatewayApi.version {installed.version}", *skip]
    elif have > pinned:
        istio = [m for m, c in versions.COMPATIBILITY.items() if c.gateway_api == f"{have[0]}.{have[1]}"]
        why = ": their safe-upgrades policy refuses CRDs of an older minor"
        options = [*skip, *(f"set {PROJECT}:istio.version to a {m}.x release" for m in istio)]
    elif have[:2] != pinned[:2] and not installed.by_pulumi:
        # An older minor of someone else's CRDs: upgrading them is theirs to decide.
        why, options = "", skip
    else:
        return None
    return (f"{found}, not what {PROJECT}:gatewayApi.version {gateway_api.version} installs{why}; "
            + "; or ".join(options or ["remove them first"]))
