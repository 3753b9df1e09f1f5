"""Gateway API CRDs: the pinned release bundle, applied as typed resources so a preview shows each one."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.config import GatewayApiConfig

CACHE_ENV = "AMBIENT_MESH_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ambient-mesh")


def cached_path(url: str) -> Path:
    """Where a downloaded bundle is kept: the release files are immutable, so one download per URL is enough."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir() / "downloads" / f"{digest}-{url.rsplit('/', 1)[-1]}"


def read_source(source: str) -> str:
    if not source.startswith(("http://", "https://")):
        return Path(source).read_text(encoding="utf-8")
    path = cached_path(source)
    if not path.is_file():
        with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - http(s) only, checked above
            text = response.read().decode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8")


# libyaml's loader when PyYAML has it: the release bundle is large.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_bundle(source: str) -> list[dict[str, Any]]:
    """The objects of a Gateway API install bundle, in file order."""
    documents = [doc for doc in yaml.load_all(read_source(source), Loader=_YAML_LOADER) if doc]  # noqa: S506
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "name" not in doc.get("metadata", {}):
            raise ValueError(f"{source}: not a Kubernetes object: {str(doc)[:80]}")
    return documents


# Other kinds a bundle carries (from v1.5 the safe-upgrades policy and its binding), as typed resources. Their type
# tokens equal those of a CustomResource of the same apiVersion/kind: stacks that made them generically keep them.
_TYPED: dict[tuple[str, str], Any] = {
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"):
        k8s.admissionregistration.v1.ValidatingAdmissionPolicy,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"):
        k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding,
}


@dataclass
class GatewayApiArgs:
    config: GatewayApiConfig
    provider: k8s.Provider


class GatewayApiCrds(pulumi.ComponentResource):
    """Installs the bundle's CRDs (and any other object it carries), or nothing when the cluster already has them."""

    resources: list[pulumi.CustomResource]

    def __init__(self, name: str, args: GatewayApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ambient-mesh:gatewayapi:GatewayApiCrds", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.resources = []
        if args.config.install:
            for doc in load_bundle(args.config.resolved_source):
                resource_name = f"{name}-{doc['metadata']['name']}"
                if doc["kind"] == "CustomResourceDefinition":
                    self.resources.append(k8s.apiextensions.v1.CustomResourceDefinition(
                        resource_name, metadata=doc["metadata"], spec=doc["spec"], opts=child))
                    continue
                # The policy and its binding share one name: the kind tells them apart.
                resource_name = f"{resource_name}-{doc['kind'].lower()}"
                typed = _TYPED.get((doc["apiVersion"], doc["kind"]))
                if typed is not None:
                    self.resources.append(typed(resource_name, metadata=doc["metadata"], spec=doc["spec"], opts=child))
                else:
                    extra = {key: value for key, value in doc.items() if key not in ("apiVersion", "kind", "metadata")}
                    self.resources.append(k8s.apiextensions.CustomResource(
                        resource_name, api_version=doc["apiVersion"], kind=doc["kind"], metadata=doc["metadata"],
                        opts=child, **extra))
        self.register_outputs({"installed": [r.urn for r in self.resources]})
