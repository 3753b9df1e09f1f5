"""Every version the stack pins, and which versions belong together, in one place.

Changing a pin here changes the default of the matching config key; a stack can still override it in
Pulumi.<stack>.yaml, within COMPATIBILITY (checked before any resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Istio release used for every chart (base, istiod, cni, ztunnel, gateway).
ISTIO_VERSION = "1.31.1"

# blob.istio.io is the long-lived home of the charts; the storage.googleapis.com location stops serving in
# December 2026.
ISTIO_CHART_REPOSITORY = "https://blob.istio.io/istio-release/charts"

# The newest patch of the Gateway API minor Istio 1.31 is built against (its go.mod requires v1.6.0; see COMPATIBILITY);
# older bundles make istiod skip some route kinds (analyzer IST0176).
GATEWAY_API_VERSION = "v1.6.3"
GATEWAY_API_RELEASE_URL = (
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/{version}/standard-install.yaml"
)

# Bookinfo sample images (docker.io/istio/examples-bookinfo-<service>-v<N>:<tag>).
BOOKINFO_IMAGE_REGISTRY = "docker.io/istio"
BOOKINFO_TAG = "1.20.3"

# The tutorial's in-mesh clients (sleep, notsleep) run curl and nothing else.
CURL_IMAGE = "docker.io/curlimages/curl:8.16.0"


@dataclass(frozen=True)
class Compatibility:
    gateway_api: str  # the Gateway API minor in Istio's go.mod
    kubernetes: tuple[str, str]  # oldest and newest Kubernetes minor Istio supports


# Istio minor -> what it runs with (Istio's go.mod and its supported-releases table).
COMPATIBILITY: dict[str, Compatibility] = {
    "1.30": Compatibility(gateway_api="1.5", kubernetes=("1.32", "1.36")),
    "1.31": Compatibility(gateway_api="1.6", kubernetes=("1.32", "1.36")),
}

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")


def release_key(version: str) -> tuple[int, int, int, int] | None:
    """Sort key of `x.y.z` / `vx.y.z[-pre]` (a pre-release sorts before its release); None if not one."""
    match = _RELEASE.match(version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3]), 0 if match[4] else 1


def minor(version: str) -> str | None:
    """`1.31.1` / `v1.6.3` -> `1.31` / `1.6`."""
    key = release_key(version)
    return f"{key[0]}.{key[1]}" if key else None


def compatibility(istio_version: str) -> Compatibility | None:
    found = minor(istio_version)
    return COMPATIBILITY.get(found) if found else None


def supports_kubernetes(compat: Compatibility, kubernetes_minor: str) -> bool:
    def key(m: str) -> tuple[int, ...]:
        return tuple(int(part) for part in m.split("."))

    return key(compat.kubernetes[0]) <= key(kubernetes_minor) <= key(compat.kubernetes[1])


def image_tag_and_digest(image: str) -> tuple[str | None, str | None]:
    """`registry:5000/kindest/node:v1.35.0@sha256:ab` -> (`v1.35.0`, `sha256:ab`); a missing part is None."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    return (last.split(":", 1)[1] if ":" in last else None), (digest or None)


def node_image_kubernetes(image: str) -> str | None:
    """The Kubernetes minor of a kind node image tagged `vX.Y.Z[...]` (kind's convention); None without such a tag."""
    tag, _ = image_tag_and_digest(image)
    match = re.match(r"^v(\d+\.\d+)\.\d+", tag or "")
    return match[1] if match else None
