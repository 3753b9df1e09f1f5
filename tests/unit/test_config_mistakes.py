"""Config that cannot be silently wrong: one-mistake configs, by class, each stopped before any resource with one line
naming `ambient-mesh:<section>.<key>` (or the stray key itself)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.model import catalog, gateway_api
from components.model.config import ConfigError
from components.model.validate import parse_config
from components.stack import load_config
from tests.conftest import base_raw_config, local_charts
from tools.testkit.mockgraph import run_main

# --- keys that are not where the program reads them --------------------------------------------------------------

STRAY_KEYS: list[tuple[dict[str, Any], str, str]] = [
    ({"clustr": {"workers": 3}}, "clustr", "did you mean cluster?"),
    ({"gatewayAPI": {}}, "gatewayAPI", "did you mean gatewayApi?"),
    ({"cluster.workers": 3}, "cluster.workers", "pulumi config set --path 'cluster.workers' 3"),
    ({"app.namespace": "bookinfo"}, "app.namespace", "pulumi config set --path 'app.namespace' bookinfo"),
    ({"cluster": {"worker": 3}}, "cluster.worker", "did you mean workers?"),
    ({"security": {"defaultdeny": True}}, "security.defaultdeny", "did you mean defaultDeny?"),
]


@pytest.mark.parametrize(("raw", "key", "hint"), STRAY_KEYS, ids=[k for _, k, _ in STRAY_KEYS])
def test_stray_keys_are_named_with_a_fix(raw: dict[str, Any], key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**base_raw_config(), **raw})
    assert str(raised.value).startswith(f"invalid config {catalog.PROJECT}:{key}: got ")
    assert hint in str(raised.value) and "\n" not in str(raised.value)


def test_pulumi_config_is_read_whole_so_a_flat_key_is_not_ignored() -> None:
    """`pulumi config set cluster.workers 3` without --path writes the flat key `ambient-mesh:cluster.workers`."""
    pulumi.runtime.set_all_config({"ambient-mesh:cluster.workers": "3", "other-project:x": "1"})
    try:
        with pytest.raises(ConfigError, match=r"ambient-mesh:cluster\.workers: got 3; .*--path"):
            load_config()
    finally:
        pulumi.runtime.set_all_config({})


# --- values that parse but cannot work -------------------------------------------------------------------------

VALUES: list[tuple[dict[str, dict[str, Any]], str, str]] = [
    ({"sidecar": {"enabled": True, "namespace": "istio-system"}}, "sidecar.namespace", "not istio-system"),
    ({"sidecar": {"enabled": True, "namespace": "kube-public"}}, "sidecar.namespace", "kube-*"),
    ({"waypoint": {"mode": "namespace", "name": "productpage"}}, "waypoint.name", "no Service or ServiceAccount"),
    ({"waypoint": {"mode": "namespace", "name": "bookinfo-reviews"}}, "waypoint.name", "no Service or ServiceAccount"),
    ({"waypoint": {"mode": "namespace", "name": "notsleep"}}, "waypoint.name", "no Service or ServiceAccount"),
    ({"cluster": {"nodeImage": "kindest/node"}}, "cluster.nodeImage", "tagged vX.Y.Z"),
    ({"cluster": {"nodeImage": "kindest/node:v1.37.0"}}, "cluster.nodeImage", "Kubernetes 1.32 to 1.36"),
]


@pytest.mark.parametrize(("overrides", "key", "accepted"), VALUES, ids=[f"{k}:{str(o)[:30]}" for o, k, _ in VALUES])
def test_values_that_cannot_work_are_refused(overrides: dict[str, dict[str, Any]], key: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(base_raw_config(**overrides))
    assert f"{catalog.PROJECT}:{key}: got " in str(raised.value) and accepted in str(raised.value)


def test_a_waypoint_name_of_its_own_is_fine() -> None:
    assert parse_config(base_raw_config(waypoint={"mode": "namespace", "name": "mesh-l7"})).waypoint.name == "mesh-l7"


def test_a_local_chart_directory_must_hold_the_charts(tmp_path: Path) -> None:
    partial = local_charts(tmp_path / "partial", ("base", "istiod"))
    with pytest.raises(ConfigError, match=r"istio\.repository: .*missing: cni, ztunnel, gateway"):
        parse_config(base_raw_config(istio={"repository": str(partial)}))
    # Without the Istio ingress the gateway chart is not needed.
    no_gateway = local_charts(tmp_path / "four", ("base", "istiod", "cni", "ztunnel"))
    parse_config(base_raw_config(istio={"repository": str(no_gateway)}, app={"ingress": "none"}))


# --- the Gateway API bundle's content ----------------------------------------------------------------------------

BUNDLES: dict[str, Callable[[Path], object]] = {
    "bad YAML": lambda p: p.write_text("kind: [unclosed\n", encoding="utf-8"),
    "binary": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"),
    "HTML": lambda p: p.write_text("<html><body>404 Not Found</body></html>\n", encoding="utf-8"),
    "not Kubernetes objects": lambda p: p.write_text("a: 1\n---\n- x\n", encoding="utf-8"),
    "objects without the Gateway CRD": lambda p: p.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", encoding="utf-8"),
    "empty": lambda p: p.write_text("", encoding="utf-8"),
}


@pytest.mark.parametrize("content", list(BUNDLES))
def test_a_bundle_that_is_not_gateway_apis_is_refused_naming_the_key(tmp_path: Path, content: str) -> None:
    source = tmp_path / "crds.yaml"
    BUNDLES[content](source)
    with pytest.raises(ConfigError) as raised:
        parse_config(base_raw_config(gatewayApi={"source": str(source)}))
    message = str(raised.value)
    assert message.startswith(f"invalid config {catalog.PROJECT}:gatewayApi.source: got '{source}'")
    assert "\n" not in message


def test_a_bad_bundle_stops_the_program_before_any_resource(tmp_path: Path) -> None:
    source = tmp_path / "crds.yaml"
    BUNDLES["HTML"](source)
    registrations, error = run_main({f"{catalog.PROJECT}:gatewayApi": f'{{"source": "{source}"}}'})
    assert isinstance(error, pulumi.RunError) and "ambient-mesh:gatewayApi.source" in str(error), error
    assert registrations == []


@pytest.mark.parametrize(("reason", "said"), [
    (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
                                     "local issuer certificate"), "does not trust the server's TLS certificate"),
    (OSError("[Errno -3] Temporary failure in name resolution"), "check this machine's network or proxy"),
])
def test_a_download_that_fails_is_this_machines_problem_not_the_configs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reason: Exception, said: str) -> None:
    """Python without CA certificates (python.org's macOS build before 'Install Certificates') or no network: the
    program stops before any resource with what to do, not with an invalid gatewayApi.source."""
    monkeypatch.setenv(gateway_api.CACHE_ENV, str(tmp_path))  # nothing downloaded yet

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError(reason)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    gateway_api._bundles.clear()
    registrations, error = run_main({})
    assert isinstance(error, pulumi.RunError) and registrations == []
    message = str(error)
    assert said in message and "gatewayApi.source to a downloaded copy" in message
    assert "invalid config" not in message and "\n" not in message
