"""An existing cluster's own Gateway API CRDs: what stops the stack (decide), the kubectl reader, and the wiring."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.model import gateway_api, versions
from components.model.config import PROJECT, ClusterConfig, StackConfig
from components.model.gateway_api import ClusterUnreadable, InstalledBundle, decide
from components.stack import build_stack
from tests.conftest import GATEWAY_API_FIXTURE, base_config
from tools.testkit.mockgraph import Registration, record, run_main

MAJOR, MINOR, PATCH = (versions.release_key(versions.GATEWAY_API_VERSION) or (0, 0, 0))[:3]
PINNED = versions.GATEWAY_API_VERSION
NEWER_PATCH = f"v{MAJOR}.{MINOR}.{PATCH + 1}"
OLDER_SAME_MINOR = f"v{MAJOR}.{MINOR}.0-rc.1"
NEWER_MINOR = f"v{MAJOR}.{MINOR + 1}.0"
OLDER_MINOR = f"v{MAJOR}.{MINOR - 1}.0"
SKIP = f"{PROJECT}:gatewayApi.mode skip"
VERSION = f"{PROJECT}:gatewayApi.version"
REFUSES = "safe-upgrades policy refuses CRDs of an older minor"


def existing(**overrides: dict[str, Any]) -> StackConfig:
    return base_config(**{"cluster": {"provider": "existing", "context": "minikube"}, **overrides})


def paired_istio(gateway_api_minor: str) -> list[str]:
    return [m for m, c in versions.COMPATIBILITY.items() if c.gateway_api == gateway_api_minor]


# installed version, applied by Pulumi, the texts the message must hold (empty: the stack goes on).
DECISIONS: list[tuple[str | None, bool, list[str]]] = [
    (None, False, []),
    (PINNED, False, []),
    (PINNED, True, []),
    (OLDER_SAME_MINOR, False, []),
    (OLDER_MINOR, True, []),  # this stack's own earlier install: an upgrade
    (NEWER_PATCH, False, [f"{VERSION} {NEWER_PATCH}", SKIP]),
    (NEWER_PATCH, True, [f"{VERSION} {NEWER_PATCH}"]),
    (NEWER_MINOR, False, [REFUSES, SKIP, *(f"istio.version to a {m}.x" for m in paired_istio(f"{MAJOR}.{MINOR + 1}"))]),
    (NEWER_MINOR, True, [REFUSES, *([f"istio.version to a {m}.x" for m in paired_istio(f"{MAJOR}.{MINOR + 1}")]
                                    or ["remove them first"])]),
    (OLDER_MINOR, False, [f"not what {VERSION} {PINNED} installs", SKIP]),
    ("", False, [f"without a {gateway_api.BUNDLE_VERSION}", SKIP]),
    ("", True, [f"without a {gateway_api.BUNDLE_VERSION}", "remove them first"]),
]


@pytest.mark.parametrize(("installed", "by_pulumi", "expected"), DECISIONS,
                         ids=[f"{v}{' pulumi' if p else ''}" for v, p, _ in DECISIONS])
def test_decide_in_install_mode(installed: str | None, by_pulumi: bool, expected: list[str]) -> None:
    bundle = None if installed is None else InstalledBundle(installed, by_pulumi)
    problem = decide(bundle, existing())
    if not expected:
        assert problem is None
        return
    assert problem is not None and "\n" not in problem
    for text in expected:
        assert text in problem
    # Skipping CRDs that Pulumi applied would delete them: never offered then.
    assert (SKIP in problem) == (not by_pulumi)


def test_decide_offers_the_istio_minor_paired_with_a_newer_installed_bundle() -> None:
    """A stack moved to an older Istio minor while the cluster keeps the newer bundle it installed before."""
    def key(minor: str) -> tuple[int, ...]:
        return tuple(int(part) for part in minor.split("."))

    pairs = [(old, new) for old, o in versions.COMPATIBILITY.items() for new, n in versions.COMPATIBILITY.items()
             if key(n.gateway_api) > key(o.gateway_api)]
    assert pairs, "the table needs two Istio minors with different Gateway API minors"
    for old, new in pairs:
        gateway_old = versions.COMPATIBILITY[old].gateway_api
        config = existing(istio={"version": f"{old}.0"}, gatewayApi={"version": f"v{gateway_old}.0"})
        installed = InstalledBundle(f"v{versions.COMPATIBILITY[new].gateway_api}.0", by_pulumi=True)
        problem = decide(installed, config)
        assert problem is not None and f"{PROJECT}:istio.version to a {new}.x release" in problem


SKIP_MODE: list[tuple[dict[str, dict[str, Any]], str | None, str | None]] = [
    ({"app": {"ingress": "gateway-api"}}, None, f"{PROJECT}:gatewayApi.mode install"),
    ({"waypoint": {"mode": "namespace"}}, None, f"{PROJECT}:gatewayApi.mode install"),
    ({}, None, None),  # nothing of the stack uses the Gateway API
    ({"app": {"ingress": "gateway-api"}}, NEWER_MINOR, None),  # the user keeps the cluster's own, as asked
]


@pytest.mark.parametrize(("overrides", "installed", "expected"), SKIP_MODE,
                         ids=["gateway-api ingress, none", "waypoint, none", "nothing uses it", "newer minor"])
def test_decide_in_skip_mode(overrides: dict[str, dict[str, Any]], installed: str | None,
                             expected: str | None) -> None:
    config = existing(gatewayApi={"mode": "skip"}, **overrides)
    problem = decide(None if installed is None else InstalledBundle(installed), config)
    assert problem is None if expected is None else (problem is not None and expected in problem)


# --- the reader -------------------------------------------------------------------------------------------------

@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A kubectl on PATH that records its arguments and prints $FAKE_OUT (exit code $FAKE_RC)."""
    script = tmp_path / "kubectl"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_ARGS"\nprintf "$FAKE_OUT"\n'
                      'echo "$FAKE_ERR" >&2\nexit "${FAKE_RC:-0}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ARGS", str(tmp_path / "args"))
    yield tmp_path / "args"


@pytest.mark.parametrize(("out", "expected"), [
    ("", None),
    (f"{gateway_api.PROBE_CRD}\\tv1.6.3\\tpulumi-kubernetes-0b1c2d kube-apiserver", InstalledBundle("v1.6.3", True)),
    (f"{gateway_api.PROBE_CRD}\\tv1.7.0\\tkubectl", InstalledBundle("v1.7.0", False)),
    (f"{gateway_api.PROBE_CRD}\\t\\t", InstalledBundle("", False)),
])
def test_reader_parses_kubectl(fake_kubectl: Path, monkeypatch: pytest.MonkeyPatch, out: str,
                               expected: InstalledBundle | None) -> None:
    monkeypatch.setenv("FAKE_OUT", out)
    cluster = ClusterConfig(provider="existing", kubeconfig="/tmp/kc", context="minikube")
    assert gateway_api.read_installed(cluster) == expected
    args = fake_kubectl.read_text().splitlines()
    assert args[:4] == ["get", "crd", gateway_api.PROBE_CRD, "--ignore-not-found"]
    assert {"--kubeconfig", "/tmp/kc", "--context", "minikube"} <= set(args)


def test_reader_reports_an_unreachable_cluster_or_no_kubectl(fake_kubectl: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RC", "1")
    monkeypatch.setenv("FAKE_ERR", "The connection to the server localhost:8080 was refused")
    with pytest.raises(ClusterUnreadable, match="connection to the server"):
        gateway_api.read_installed(ClusterConfig(provider="existing", context="minikube"))
    monkeypatch.setenv("PATH", str(fake_kubectl.parent / "nowhere"))
    with pytest.raises(ClusterUnreadable):
        gateway_api.read_installed(ClusterConfig(provider="existing", context="minikube"))


# --- the wiring ------------------------------------------------------------------------------------------------

def test_a_conflicting_cluster_stops_the_stack_before_any_resource() -> None:
    seen: list[ClusterConfig] = []

    def reader(cluster: ClusterConfig) -> InstalledBundle:
        seen.append(cluster)
        return InstalledBundle(NEWER_MINOR)

    config = existing()
    registered: list[Registration] = []
    with pytest.raises(pulumi.RunError, match=f"Gateway API CRDs {NEWER_MINOR}.*{SKIP}"):
        registered += record(lambda: build_stack(config, gateway_api_reader=reader))[0]
    assert seen == [config.cluster] and registered == []


def test_the_reader_is_asked_only_about_existing_clusters() -> None:
    asked: list[ClusterConfig] = []

    def reader(cluster: ClusterConfig) -> None:
        asked.append(cluster)

    registrations, _ = record(lambda: build_stack(base_config(), gateway_api_reader=reader))
    assert asked == [] and registrations


def test_an_unreadable_cluster_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))

    def reader(cluster: ClusterConfig) -> InstalledBundle:
        raise ClusterUnreadable("kubectl: not found")

    registrations, _ = record(lambda: build_stack(existing(), gateway_api_reader=reader))
    assert registrations and len(warnings) == 1 and "kubectl: not found" in warnings[0]


def test_main_checks_the_cluster_with_the_kubectl_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """__main__ (what `pulumi up` runs) passes read_installed: a conflicting cluster stops it before any resource."""
    monkeypatch.setattr(gateway_api, "read_installed", lambda cluster: InstalledBundle(NEWER_MINOR))
    registrations, error = run_main({f"{PROJECT}:cluster": '{"provider": "existing", "context": "minikube"}',
                                     f"{PROJECT}:gatewayApi": f'{{"source": "{GATEWAY_API_FIXTURE}"}}'})
    assert isinstance(error, pulumi.RunError) and NEWER_MINOR in str(error), error
    assert registrations == []
