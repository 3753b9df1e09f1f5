"""The kind tier's decisions (tests/kind/tier.py) on fake machines: which images are stand-ins, when the data-plane
checks must skip, and the stack file the tier runs offline and online."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from components.model import images as image_model
from components.model.validate import parse_config
from tests.conftest import GATEWAY_API_FIXTURE, base_config, base_raw_config
from tests.engine import upstream
from tests.kind import tier


def fake_docker(labels: dict[str, dict[str, str] | None]) -> Any:
    """`docker image inspect` of a host whose images carry these labels (None: the image is absent)."""
    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        image = args[-1]
        found = labels.get(image, {})
        if found is None:
            return subprocess.CompletedProcess(args, 1, "", f"No such image: {image}")
        return subprocess.CompletedProcess(args, 0, json.dumps(found), "")
    return run


def test_a_labelled_image_is_a_stand_in_and_the_data_plane_checks_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_config()
    ztunnel = next(i for i in image_model.images(config) if "/ztunnel:" in i)
    monkeypatch.setattr(tier, "docker", fake_docker({ztunnel: {tier.STANDIN_LABEL: "Rust, on no registry here"}}))
    found = tier.standins(config)
    assert found == {ztunnel: "Rust, on no registry here"}
    assert tier.data_plane_gaps(config, found) == f"{ztunnel} is a stand-in (Rust, on no registry here)"


def test_real_ztunnel_and_proxyv2_images_leave_every_check_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real image (no stand-in label) in the host's Docker: nothing skips."""
    config = base_config()
    monkeypatch.setattr(tier, "docker", fake_docker({}))
    assert tier.standins(config) == {}
    assert tier.data_plane_gaps(config, {}) is None
    # A stand-in that carries no traffic of the mesh (kindnetd, say) does not switch the data-plane checks off.
    assert tier.data_plane_gaps(config, {"docker.io/kindest/kindnetd:v1": "not served"}) is None


def test_missing_images_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_config()
    curl = next(i for i in image_model.images(config) if "curl" in i)
    monkeypatch.setattr(tier, "docker", fake_docker({curl: None}))
    assert tier.missing_images(config) == [curl]


def test_offline_the_tier_uses_its_node_image_and_the_modules_charts_and_crds(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(upstream.CACHE_ENV, str(tmp_path))  # the engine tier's extracted charts and CRDs
    defaults = parse_config(base_raw_config())
    for chart in upstream.CHARTS:
        (upstream.charts_dir(defaults.istio.version) / chart).mkdir(parents=True)
        (upstream.charts_dir(defaults.istio.version) / chart / "Chart.yaml").write_text("", encoding="utf-8")
    upstream.addons_dir(defaults.istio.version).mkdir(parents=True)
    (upstream.addons_dir(defaults.istio.version) / "prometheus.yaml").write_text("", encoding="utf-8")
    crds = upstream.gateway_api_crds(defaults.gateway_api.version)
    crds.parent.mkdir(parents=True)
    crds.write_text(GATEWAY_API_FIXTURE.read_text(encoding="utf-8"), encoding="utf-8")
    raw = tier.tier_config(base_raw_config(), 18080, local=True, allow_cgroup_v1=True)
    config = parse_config(raw)
    assert (config.cluster.name, config.cluster.ingress_host_port) == (tier.CLUSTER_NAME, 18080)
    assert config.cluster.node_image == tier.NODE_IMAGE and config.cluster.allow_cgroup_v1
    assert config.istio.repository == str(upstream.charts_dir(config.istio.version))
    assert config.gateway_api.source == str(upstream.gateway_api_crds(config.gateway_api.version))
    assert config.observability.source == ""  # no add-ons, nothing to read
    with_addons = tier.tier_config(base_raw_config(observability={"addons": ["prometheus"]}), 18080, local=True,
                                   allow_cgroup_v1=False)
    assert parse_config(with_addons).observability.source == str(upstream.addons_dir(config.istio.version))


def test_online_the_tier_runs_the_dev_stack_as_shipped_but_for_name_and_port() -> None:
    base = base_raw_config()
    raw = tier.tier_config(base, 18080, local=False, allow_cgroup_v1=False)
    shipped, ran = parse_config(base), parse_config(raw)
    assert ran.istio == shipped.istio and ran.gateway_api == shipped.gateway_api and ran.app == shipped.app
    assert ran.cluster.node_image == shipped.cluster.node_image
    assert ran.cluster.name == tier.CLUSTER_NAME and not ran.cluster.allow_cgroup_v1
