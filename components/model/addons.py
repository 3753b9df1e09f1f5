"""Observability: Istio's own add-ons (samples/addons: Prometheus, Kiali, Grafana), the objects its docs apply, read
from the stack's Istio release; what each runs, and laptop-sized requests where the add-on sets none.

Istio regenerates the files per release (release-1.31: prometheus chart 28.13.0, kiali-server 2.27.0, grafana
9.2.2, with the "Istio Ztunnel Dashboard"), so the stack takes them from the release branch of `istio.version`
(or a local directory of the same files): the versions Istio pins are the ones that run.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml

from components.model import catalog, versions
from components.model.config import ADDON_NAMES, ConfigError, ObservabilityConfig, StackConfig
from components.model.gateway_api import DownloadFailed, read_source

ADDONS = ADDON_NAMES
ADDONS_URL = "https://raw.githubusercontent.com/istio/istio/release-{minor}/samples/addons/{addon}.yaml"
# Under the laptop profile, requests for containers the add-on leaves without any (Prometheus and Grafana set none;
# Kiali's own 10m/64Mi stay): estimates of an idle laptop mesh, so that the scheduler counts them and doctor sizes
# Docker with them. Memory in MiB, CPU in millicores.
LAPTOP_REQUESTS = {
    "prometheus-server": (50, 256),
    "prometheus-server-configmap-reload": (5, 16),
    "grafana": (20, 128),
}
_WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def addon_source(config: ObservabilityConfig, istio_version: str, addon: str) -> str:
    if config.source:
        return os.path.join(config.source, f"{addon}.yaml")
    return ADDONS_URL.format(minor=versions.minor(istio_version), addon=addon)


_read: dict[str, list[dict[str, Any]]] = {}


def addon_objects(config: StackConfig) -> dict[str, list[dict[str, Any]]]:
    """Each enabled add-on's objects in file order, or a ConfigError naming observability.source."""
    found = {}
    for addon in config.observability.addons:
        source = addon_source(config.observability, config.istio.version, addon)
        if source not in _read:
            try:
                documents = [doc for doc in yaml.safe_load_all(read_source(source, "observability.source")) if doc]
            except DownloadFailed:
                raise
            except (OSError, ValueError, yaml.YAMLError) as error:
                raise ConfigError("observability.source", config.observability.source or source,
                                  f"Istio's samples/addons for {config.istio.version} (a directory with "
                                  f"{addon}.yaml), or empty for the release's own: {error}") from None
            if not any(doc.get("kind") in _WORKLOAD_KINDS for doc in documents):
                raise ConfigError("observability.source", config.observability.source or source,
                                  f"Istio's {addon}.yaml: Kubernetes objects with the add-on's Deployment")
            _read[source] = documents
        found[addon] = with_requests(_read[source], config.istio.resource_profile)
    return found


def with_requests(objects: list[dict[str, Any]], profile: str) -> list[dict[str, Any]]:
    """The objects, in the laptop profile with LAPTOP_REQUESTS on the containers that request nothing."""
    if profile != "laptop":
        return objects
    out = copy.deepcopy(objects)
    for doc in out:
        for container in _containers(doc):
            wanted = LAPTOP_REQUESTS.get(container.get("name", ""))
            if wanted and not (container.get("resources") or {}).get("requests"):
                container.setdefault("resources", {})["requests"] = {"cpu": f"{wanted[0]}m",
                                                                     "memory": f"{wanted[1]}Mi"}
    return out


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") not in _WORKLOAD_KINDS:
        return []
    spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def workloads(objects: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, tuple[str, ...], int]]:
    """(namespace, name, images, replicas) of every add-on's workload."""
    found = []
    for documents in objects.values():
        for doc in documents:
            if doc.get("kind") in _WORKLOAD_KINDS:
                images = tuple(dict.fromkeys(c["image"] for c in _containers(doc) if c.get("image")))
                namespace = doc["metadata"].get("namespace") or catalog.ISTIO_NAMESPACE
                found.append((namespace, doc["metadata"]["name"], images, int(doc["spec"].get("replicas", 1))))
    return found


def requests(objects: dict[str, list[dict[str, Any]]]) -> tuple[int, int]:
    """The add-ons' CPU millicores and memory MiB requested (what doctor adds to Docker's need)."""
    cpu = memory = 0
    for documents in objects.values():
        for doc in documents:
            for container in _containers(doc):
                wanted = (container.get("resources") or {}).get("requests") or {}
                cpu += _millicores(str(wanted.get("cpu", "0")))
                memory += _mebibytes(str(wanted.get("memory", "0")))
    return cpu, memory


def _millicores(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _mebibytes(value: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[:-2]) * factor)
    return int(float(value) / 1024 ** 2)
