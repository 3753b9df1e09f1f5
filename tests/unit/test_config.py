"""Config: defaults, the dev stack file, and every bad value stopping the program with one clear message."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest

from components.model import versions
from components.model.config import ConfigError
from components.model.validate import parse_config
from components.stack import load_config
from tests.conftest import GATEWAY_API_FIXTURE, base_config, base_raw_config, local_charts
from tools.testkit.mockgraph import run_main

BAD_VALUES: list[tuple[str, str, Any, str]] = [
    # section, key, value, a word the "accepted" part must contain
    ("cluster", "workers", -1, "integer from 0"),
    ("cluster", "workers", 2.5, "integer"),
    ("cluster", "workers", True, "integer"),
    ("cluster", "workers", "many", "integer"),
    ("cluster", "provider", "k3s", "K3s does not work"),
    ("cluster", "provider", "minikube", "kind, existing"),
    ("cluster", "name", "Ambient_Mesh", "DNS label"),
    ("cluster", "name", "x" * 41, "at most 40"),
    ("cluster", "ingressHostPort", 0, "from 1 to 65535"),
    ("cluster", "ingressHostPort", 70000, "from 1 to 65535"),
    ("cluster", "ingressNodePort", 8080, "from 30000 to 32767"),
    ("cluster", "nodeImage", "kindest/node:v1.35 bad", "kind node image"),
    ("cluster", "kubeconfig", "/tmp/kubeconfig", "nothing for provider kind"),
    ("cluster", "replicas", 3, "unknown key"),
    ("istio", "version", "1.31", "x.y.z"),
    ("istio", "version", "latest", "x.y.z"),
    ("istio", "version", "v1.31.1", "x.y.z"),
    ("istio", "repository", "/nonexistent/charts", "existing local directory"),
    ("istio", "resourceProfile", "tiny", "laptop, chart-defaults"),
    ("gatewayApi", "mode", "auto", "install, skip"),
    ("gatewayApi", "version", "1.5.1", "vX.Y.Z"),
    ("gatewayApi", "source", "/nonexistent/crds.yaml", "existing local YAML file"),
    ("app", "namespace", "Book_Info", "DNS label"),
    ("app", "namespace", "-bookinfo", "DNS label"),
    ("app", "namespace", "b" * 64, "at most 63"),
    ("app", "namespace", "istio-system", "not istio-system"),
    ("app", "namespace", "kube-system", "kube-"),
    ("app", "bookinfoTag", "latest", "x.y.z"),
    ("app", "ingress", "nginx", "istio, gateway-api, none"),
    ("security", "mtls", "STRICT", "strict, permissive"),
    ("security", "productpageClients", "sleep", "a list of identities"),
    ("security", "productpageClients", ["Sleep"], "identities"),
    ("security", "productpageClients", ["sleep", "sleep"], "each once"),
    ("security", "productpageClients", ["ghost"], "ServiceAccounts this stack creates"),
    ("security", "productpageClients", ["istio-system/ztunnel"], "ServiceAccounts this stack creates"),
    ("security", "defaultDeny", "yes", "true or false"),
    ("security", "l7Methods", ["FETCH"], "HTTP methods"),
    ("security", "l7Clients", ["sleep"], "unless a waypoint serves productpage"),
    ("waypoint", "mode", "on", "none, namespace, services"),
    ("waypoint", "services", ["reviews"], "nothing unless mode is services"),
    ("waypoint", "name", "Waypoint", "DNS label"),
    ("sidecar", "enabled", "true", "true or false"),
    ("sidecar", "namespace", "Side_car", "DNS label"),
]


@pytest.mark.parametrize(("section", "key", "value", "accepted"), BAD_VALUES,
                         ids=[f"{s}.{k}={v!r}"[:60] for s, k, v, _ in BAD_VALUES])
def test_bad_value_names_key_value_and_what_is_accepted(section: str, key: str, value: Any, accepted: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(base_raw_config(**{section: {key: value}}))
    message = str(raised.value)
    assert f"ambient-mesh:{section}.{key}" in message
    # A bad item of a list is named on its own.
    assert repr(value) in message or (isinstance(value, list) and any(f"got {v!r};" in message for v in value))
    assert accepted in message
    assert message.count("\n") == 0


def test_existing_cluster_needs_a_kubeconfig_or_a_context() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.kubeconfig.*kubeconfig path and/or a context"):
        parse_config(base_raw_config(cluster={"provider": "existing"}))


def test_existing_cluster_kubeconfig_must_exist() -> None:
    with pytest.raises(ConfigError, match="existing kubeconfig file"):
        parse_config(base_raw_config(cluster={"provider": "existing", "kubeconfig": "/nonexistent/kubeconfig"}))


def test_unknown_section_is_rejected() -> None:
    raw = base_raw_config()
    raw["mesh"] = {}
    with pytest.raises(ConfigError, match="ambient-mesh:mesh"):
        parse_config(raw)


def test_section_must_be_an_object() -> None:
    raw = base_raw_config()
    raw["istio"] = "1.31.1"
    with pytest.raises(ConfigError, match="ambient-mesh:istio: got '1.31.1'"):
        parse_config(raw)


def test_defaults_follow_the_pins() -> None:
    config = parse_config({})
    assert config.istio.version == versions.ISTIO_VERSION
    assert config.istio.repository == versions.ISTIO_CHART_REPOSITORY
    assert config.gateway_api.version == versions.GATEWAY_API_VERSION
    assert config.gateway_api.resolved_source.endswith(f"/{versions.GATEWAY_API_VERSION}/standard-install.yaml")
    assert config.app.bookinfo_tag == versions.BOOKINFO_TAG
    assert (config.cluster.provider, config.cluster.workers, config.app.namespace) == ("kind", 2, "default")


def test_local_chart_directory_and_file_sources_are_made_absolute(tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_config(istio={"repository": str(local_charts(tmp_path / "charts-1"))},
                         gatewayApi={"source": str(GATEWAY_API_FIXTURE)})
    assert config.istio.local_charts
    assert config.istio.repository == str(tmp_path / "charts-1")
    assert config.gateway_api.resolved_source == str(GATEWAY_API_FIXTURE)
    # Relative to where Pulumi runs, made absolute; a symlink stays the link (re-pointing it at other charts must
    # not change every Release's chart path in the state).
    (tmp_path / "current").symlink_to(tmp_path / "charts-1")
    monkeypatch.chdir(tmp_path)
    assert base_config(istio={"repository": "current"}).istio.repository == str(tmp_path / "current")
    assert base_config(istio={"repository": "./charts-1/../current"}).istio.repository == str(tmp_path / "current")


def test_integer_given_as_string_is_accepted() -> None:
    assert base_config(cluster={"workers": "3"}).cluster.workers == 3


CROSS_SECTION_ERRORS: list[tuple[dict[str, dict[str, Any]], str, str]] = [
    ({"sidecar": {"enabled": True, "namespace": "default"}}, "sidecar.namespace", "never carries both"),
    ({"waypoint": {"mode": "services", "services": []}}, "waypoint.services", "at least one service"),
    ({"waypoint": {"mode": "services", "services": ["ghost"]}}, "waypoint.services", "Bookinfo services"),
    ({"waypoint": {"mode": "services", "services": ["reviews"]}, "security": {"l7Clients": ["sleep"]}},
     "security.l7Clients", "L7 rules are enforced only by a waypoint"),
    ({"app": {"ingress": "none"}, "security": {"productpageClients": ["ingress"]}}, "security.productpageClients",
     "app.ingress is none"),
    ({"security": {"productpageClients": ["sidecar/sleep"]}}, "security.productpageClients",
     "ServiceAccounts this stack creates"),
    ({"security": {"productpageClients": ["waypoint"]}}, "security.productpageClients",
     "ServiceAccounts this stack creates"),
]


@pytest.mark.parametrize(("overrides", "key", "accepted"), CROSS_SECTION_ERRORS,
                         ids=[key for _, key, _ in CROSS_SECTION_ERRORS])
def test_rules_across_sections(overrides: dict[str, dict[str, Any]], key: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(base_raw_config(**overrides))
    assert f"ambient-mesh:{key}:" in str(raised.value)
    assert accepted in str(raised.value)


def test_identities_of_optional_workloads_exist_only_with_them() -> None:
    config = base_config(sidecar={"enabled": True}, waypoint={"mode": "namespace"},
                        security={"productpageClients": ["ingress", "sleep", "sidecar/sleep", "waypoint"],
                                  "l7Clients": ["sleep"]})
    assert config.security.productpage_clients == ("ingress", "sleep", "sidecar/sleep", "waypoint")


def test_existing_mode_with_context_only() -> None:
    config = base_config(cluster={"provider": "existing", "context": "minikube"})
    assert (config.cluster.provider, config.cluster.context, config.cluster.kubeconfig) == (
        "existing", "minikube", None)


def _unpaired_gateway_api() -> str:
    """A Gateway API release of the minor after the one the pinned Istio is paired with."""
    compat = versions.compatibility(versions.ISTIO_VERSION)
    assert compat is not None
    major, minor = compat.gateway_api.split(".")
    return f"v{major}.{int(minor) + 1}.0"


@pytest.mark.parametrize(("config", "error_pattern"), [
    ({"ambient-mesh:cluster": '{"provider": "kind", "workers": -3}',
      "ambient-mesh:gatewayApi": f'{{"source": "{GATEWAY_API_FIXTURE}"}}'},
     r"ambient-mesh:cluster\.workers: got -3"),
    ({"ambient-mesh:gatewayApi": f'{{"source": "{GATEWAY_API_FIXTURE}", "version": "{_unpaired_gateway_api()}"}}'},
     rf"ambient-mesh:gatewayApi\.version: got '{_unpaired_gateway_api()}'"),
], ids=["bad value", "versions that do not belong together"])
def test_bad_config_stops_the_program_before_any_resource_is_registered(config: dict[str, str],
                                                                         error_pattern: str) -> None:
    """Runs __main__ as `pulumi up` would, with a bad value in the stack config."""
    registrations, error = run_main(config)
    # One line from Pulumi (a RunError), no traceback, and nothing registered.
    assert isinstance(error, pulumi.RunError) and re.search(error_pattern, str(error)), error
    assert registrations == []


def test_load_config_reads_the_stack_config() -> None:
    pulumi.runtime.set_all_config({"ambient-mesh:app": '{"namespace": "bookinfo", "ingress": "none"}',
                                   "ambient-mesh:security": '{"productpageClients": ["sleep"]}'})
    try:
        config = load_config()
    finally:
        pulumi.runtime.set_all_config({})
    assert (config.app.namespace, config.app.ingress, config.app.create_namespace) == ("bookinfo", "none", True)
