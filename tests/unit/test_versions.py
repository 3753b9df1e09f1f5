"""Versions that belong together: the compatibility table, and stacks pairing versions outside it refused."""

from __future__ import annotations

from typing import Any

import pytest

from components.model import versions
from components.model.config import GATEWAY_API_MODES, ConfigError
from components.model.validate import parse_config
from tests.conftest import base_raw_config
from tools.testkit import schemas


def step(minor: str, by: int) -> str:
    """`1.6`, 1 -> `1.7`: a neighbouring minor, computed so the cases follow the table."""
    major, number = minor.split(".")
    return f"{major}.{int(number) + by}"


def _minor_key(minor: str) -> tuple[int, int]:
    major, number = minor.split(".")
    return int(major), int(number)


KNOWN = sorted(versions.COMPATIBILITY, key=_minor_key)


def paired(istio_minor: str) -> dict[str, dict[str, Any]]:
    """Overrides for an Istio minor with the Gateway API release the table pairs it with."""
    return {"istio": {"version": f"{istio_minor}.0"},
            "gatewayApi": {"version": f"v{versions.COMPATIBILITY[istio_minor].gateway_api}.0"}}


def _bad_pairs() -> list[tuple[str, dict[str, dict[str, Any]], str, str]]:
    """(id, overrides, key named, text the accepted part must contain)."""
    cases = [(f"istio {m}", {"istio": {"version": f"{m}.0"}}, "istio.version", ", ".join(KNOWN))
             for m in (step(KNOWN[0], -1), step(KNOWN[-1], 1))]
    for istio_minor, compat in versions.COMPATIBILITY.items():
        good = paired(istio_minor)
        low, high = compat.kubernetes
        for gateway_api in (step(compat.gateway_api, -1), step(compat.gateway_api, 1)):
            for mode in GATEWAY_API_MODES:
                cases.append((f"istio {istio_minor} gateway-api {gateway_api} {mode}",
                              {**good, "gatewayApi": {"version": f"v{gateway_api}.0", "mode": mode}},
                              "gatewayApi.version", f"v{compat.gateway_api}.x"))
        for image in (f"kindest/node:v{step(low, -1)}.0", f"kindest/node:v{step(high, 1)}.0@sha256:0123",
                      "kindest/node", "kindest/node:latest"):
            cases.append((f"istio {istio_minor} {image}", {**good, "cluster": {"nodeImage": image}},
                          "cluster.nodeImage", f"Kubernetes {low} to {high}"))
    return cases


BAD_PAIRS = _bad_pairs()


@pytest.mark.parametrize(("overrides", "key", "accepted"), [c[1:] for c in BAD_PAIRS], ids=[c[0] for c in BAD_PAIRS])
def test_versions_outside_the_table_are_refused_naming_the_key(overrides: dict[str, dict[str, Any]], key: str,
                                                               accepted: str) -> None:
    section, field = key.split(".")
    with pytest.raises(ConfigError) as raised:
        parse_config(base_raw_config(**overrides))
    message = str(raised.value)
    assert message.startswith(f"invalid config ambient-mesh:{key}: got {overrides[section][field]!r}; accepted: ")
    assert accepted in message and "\n" not in message


def _good_pairs() -> list[tuple[str, dict[str, dict[str, Any]]]]:
    cases = []
    for istio_minor, compat in versions.COMPATIBILITY.items():
        good = paired(istio_minor)
        low, high = compat.kubernetes
        cases.append((f"istio {istio_minor} gateway-api {compat.gateway_api}.9 skip",
                      {**good, "gatewayApi": {"version": f"v{compat.gateway_api}.9", "mode": "skip"}}))
        for image in (f"kindest/node:v{low}.0", f"kindest/node:v{high}.9@sha256:0123",
                      f"localhost:5000/kindest/node:v{high}.1", "kindest/node@sha256:0123", ""):
            cases.append((f"istio {istio_minor} {image or 'default image'}", {**good, "cluster": {"nodeImage": image}}))
    return cases


GOOD_PAIRS = _good_pairs()


@pytest.mark.parametrize("overrides", [c[1] for c in GOOD_PAIRS], ids=[c[0] for c in GOOD_PAIRS])
def test_versions_inside_the_table_are_accepted(overrides: dict[str, dict[str, Any]]) -> None:
    config = parse_config(base_raw_config(**overrides))
    assert config.gateway_api.version == overrides["gatewayApi"]["version"]
    assert config.cluster.node_image == (overrides.get("cluster", {}).get("nodeImage") or None)


def test_the_pins_are_a_pair_of_the_table() -> None:
    compat = versions.compatibility(versions.ISTIO_VERSION)
    assert compat is not None and versions.minor(versions.GATEWAY_API_VERSION) == compat.gateway_api
    # The schemas' Kubernetes (kind's default node image) is one the pinned Istio supports.
    assert versions.supports_kubernetes(compat, schemas.KUBERNETES_VERSION)


@pytest.mark.parametrize(("version", "minor"), [("1.31.1", "1.31"), ("v1.6.3", "1.6"), ("v1.6.0-rc.1", "1.6"),
                                                 ("1.31", None), ("latest", None)])
def test_minor(version: str, minor: str | None) -> None:
    assert versions.minor(version) == minor


def test_release_order_puts_pre_releases_first() -> None:
    ordered = ["v1.5.1", "v1.6.0-rc.1", "v1.6.0", "v1.6.3", "v1.10.0"]
    assert sorted(ordered, key=lambda v: versions.release_key(v) or ()) == ordered


@pytest.mark.parametrize(("image", "tag", "digest", "kubernetes"), [
    ("kindest/node:v1.35.0", "v1.35.0", None, "1.35"),
    ("localhost:5000/kindest/node:v1.36.1@sha256:ab", "v1.36.1", "sha256:ab", "1.36"),
    ("kindest/node@sha256:ab", None, "sha256:ab", None),
    ("localhost:5000/kindest/node", None, None, None),
    ("kindest/node:latest", "latest", None, None),
])
def test_node_image_parts(image: str, tag: str | None, digest: str | None, kubernetes: str | None) -> None:
    assert versions.image_tag_and_digest(image) == (tag, digest)
    assert versions.node_image_kubernetes(image) == kubernetes
