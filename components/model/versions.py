"""Every version the stack pins, and which versions belong together, in one place.

Changing a pin here changes the default of the matching config key; a stack can still override it in
Pulumi.<stack>.yaml, within COMPATIBILITY (checked before any resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Istio release used for every chart (base, istiod, cni, ztunnel, gateway).
ISTIO_VERSION = "1.31.1"
# Where the published charts' images come from: the release build writes this hub (and the release as the tag) into
# each chart's values (the source tree's charts say registry.istio.io/testing and latest). The stack sets neither.
ISTIO_IMAGE_HUB = "docker.io/istio"

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


# --- what the machine running `make up` needs --------------------------------------------------------------------
# README's prerequisites table states these (a unit test keeps the two equal); `make doctor` checks them.


@dataclass(frozen=True)
class Prerequisite:
    tool: str
    minimum: str  # oldest version accepted, `major.minor`
    why: str


PREREQUISITES: dict[str, Prerequisite] = {p.tool: p for p in (
    Prerequisite("docker", "20.10", "the engine kind runs its nodes in"),
    Prerequisite("kind", "0.27", "creates the cluster; loads the host's images into its nodes"),
    Prerequisite("kubectl", "1.32", "verify, diagnose and the smoke check; the oldest Kubernetes minor Istio supports"),
    Prerequisite("pulumi", "3.200", "runs the program"),
    Prerequisite("python", "3.11", "the program, and every tool of this repository"),
)}


@dataclass(frozen=True)
class KindRelease:
    default_node_image: str  # what `kind create cluster` runs without an image (from the release's notes)
    # Images the release's notes list for Kubernetes minors older than its default, newest first: the fix offered
    # when the default is newer than Istio supports. A tag alone may point at a build for another kind release;
    # the notes' digest pins the one built for this release.
    older_node_images: tuple[str, ...] = ()


# kind release (minor) -> its default node image, from each release's notes. Empty `cluster.nodeImage` means this
# image, so the Kubernetes minor the stack gets is this table's: kind 0.33 and later default to 1.37.
KIND_RELEASES: dict[str, KindRelease] = {
    "0.27": KindRelease("kindest/node:v1.32.2"),
    "0.28": KindRelease("kindest/node:v1.33.1"),
    "0.29": KindRelease("kindest/node:v1.33.1"),
    "0.30": KindRelease("kindest/node:v1.34.0"),
    "0.31": KindRelease("kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"),
    "0.32": KindRelease("kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"),
    "0.33": KindRelease(
        "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
        older_node_images=(
            "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
            "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
            "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d",
        )),
}


def version_key(version: str) -> tuple[int, ...] | None:
    """`v0.27.1`, `24.0.7`, `3.11` -> (0, 27, 1), (24, 0, 7), (3, 11); None when it does not start with a number."""
    match = re.match(r"^v?(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(part) for part in match[1].split(".")) if match else None


def at_least(version: str, minimum: str) -> bool:
    """`3.274.1` >= `3.200`: compared on the minimum's own parts."""
    have, need = version_key(version), version_key(minimum)
    if have is None or need is None:
        return False
    return have[:len(need)] >= need


def _minor_key(minor_: str) -> tuple[int, ...]:
    return tuple(int(part) for part in minor_.split("."))


def kind_release(kind_version: str) -> tuple[str, KindRelease] | None:
    """The table's entry for a kind version: its own minor, or for a kind newer than the table the newest entry (its
    default is at least as new); None for a kind older than the table."""
    key = version_key(kind_version)
    if key is None or len(key) < 2:
        return None
    found = f"{key[0]}.{key[1]}"
    if found in KIND_RELEASES:
        return found, KIND_RELEASES[found]
    newest = max(KIND_RELEASES, key=_minor_key)
    return (newest, KIND_RELEASES[newest]) if _minor_key(found) > _minor_key(newest) else None


def kind_releases_in_range(compat: Compatibility) -> list[str]:
    """The kind releases of the table whose default node image runs a Kubernetes the Istio minor supports."""
    return sorted((k for k, release in KIND_RELEASES.items()
                   if supports_kubernetes(compat, node_image_kubernetes(release.default_node_image) or "0.0")),
                  key=_minor_key)


def supported_node_image(release: KindRelease, compat: Compatibility) -> str | None:
    """The newest node image a kind release lists that runs a Kubernetes minor the Istio minor supports."""
    for image in (release.default_node_image, *release.older_node_images):
        kubernetes = node_image_kubernetes(image)
        if kubernetes is not None and supports_kubernetes(compat, kubernetes):
            return image
    return None
