"""Images pulled once: the list derived from the pins and the charts' image settings, where each lands, the pull and
load commands run against fake `docker` and `kind` executables, and their place in the graph under mocks."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.model import images, versions
from components.model.charts import istio_releases
from components.model.config import ConfigError, IstioConfig
from components.model.validate import parse_config
from tests.conftest import REPO, base_config, stack_config
from tools.testkit.mockgraph import Graph, run_stack

ISTIO = versions.ISTIO_VERSION
DEV_IMAGES = [
    "docker.io/curlimages/curl:8.16.0",
    *(f"docker.io/istio/examples-bookinfo-{w}:1.20.3" for w in ("details-v1", "productpage-v1", "ratings-v1",
                                                                  "reviews-v1", "reviews-v2", "reviews-v3")),
    f"docker.io/istio/install-cni:{ISTIO}-distroless",
    f"docker.io/istio/pilot:{ISTIO}-distroless",
    f"docker.io/istio/proxyv2:{ISTIO}-distroless",
    f"docker.io/istio/ztunnel:{ISTIO}",
]


# --- the list ------------------------------------------------------------------------------------------------

def test_dev_images_are_the_pins_as_the_charts_render_them() -> None:
    """Hub docker.io/istio, tag the Istio release; istiod and istio-cni get the ambient profile, whose
    global.variant is distroless; ztunnel is installed without a profile (plain tag); the gateway's `image: auto`
    is istiod's proxyv2 with istiod's variant."""
    assert images.images(base_config()) == DEV_IMAGES


def test_images_follow_the_pins() -> None:
    config = base_config(istio={"version": "1.31.0"}, app={"bookinfoTag": "1.20.2"})
    found = images.images(config)
    assert "docker.io/istio/ztunnel:1.31.0" in found and "docker.io/istio/pilot:1.31.0-distroless" in found
    assert all(i.endswith(":1.20.2") for i in found if "bookinfo" in i)


def test_variant_hub_and_tag_come_from_the_release_values() -> None:
    release = istio_releases(IstioConfig(), None).istiod
    assert images.istio_image(release, "pilot") == f"docker.io/istio/pilot:{ISTIO}-distroless"
    custom = type(release)(release.key, release.name, release.chart, release.version, release.repository,
                           {"profile": "ambient", "global": {"hub": "mirror.test/istio", "variant": "debug"}})
    assert images.istio_image(custom, "pilot") == f"mirror.test/istio/pilot:{ISTIO}-debug"
    plain = type(release)(release.key, release.name, release.chart, "1.2.3", None, {})
    assert images.istio_image(plain, "ztunnel") == "docker.io/istio/ztunnel:1.2.3"


@pytest.mark.parametrize(("overrides", "proxies"), [
    ({"app": {"ingress": "none"}}, 0),
    ({"app": {"ingress": "gateway-api"}}, 1),
    ({"app": {"ingress": "none"}, "waypoint": {"mode": "namespace"}}, 1),
    ({"app": {"ingress": "none"}, "sidecar": {"enabled": True}}, 1),
    ({"waypoint": {"mode": "namespace"}, "sidecar": {"enabled": True}}, 3),
])
def test_every_envoy_the_mesh_starts_runs_proxyv2(overrides: dict[str, dict[str, object]], proxies: int) -> None:
    config = base_config(**overrides)
    running = [w for w in images.workloads(config) if any("/proxyv2:" in i for i in w.images)]
    assert len(running) == proxies
    assert (f"docker.io/istio/proxyv2:{ISTIO}-distroless" in images.images(config)) == (proxies > 0)


def test_node_pulls_count_daemonsets_on_every_node_and_deployments_once() -> None:
    # 3 nodes x (istio-cni + ztunnel) + istiod + gateway + 6 Bookinfo + sleep + notsleep
    assert images.node_pulls(base_config()) == 16
    assert images.node_pulls(base_config(cluster={"workers": 4})) == 16 + 2 * 2
    zero_trust = stack_config(REPO / "Pulumi.zero-trust.yaml")
    assert images.node_pulls(zero_trust) == 17  # + the waypoint
    assert len(images.images(zero_trust)) == len(DEV_IMAGES)


def test_daemonset_images_go_to_every_node_the_rest_to_the_workers() -> None:
    plan = images.preload(base_config())
    assert plan.every_node == ("ambient-control-plane", "ambient-worker", "ambient-worker2")
    assert plan.workers == ("ambient-worker", "ambient-worker2")
    assert set(plan.every_node_images) == {f"docker.io/istio/install-cni:{ISTIO}-distroless",
                                           f"docker.io/istio/ztunnel:{ISTIO}"}
    assert list(plan.images) == DEV_IMAGES
    alone = images.preload(base_config(cluster={"workers": 0}))
    assert alone.every_node == ("ambient-control-plane",) and alone.workers == ()
    assert list(alone.every_node_images) == sorted(alone.every_node_images) and set(alone.images) == set(DEV_IMAGES)


# --- the commands, against fake docker and kind ----------------------------------------------------------------

FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$1 $2" in
  "version --format") echo linux/amd64 ;;
  "image inspect") grep -qxF "$5" "$HAVE" 2>/dev/null || exit 1 ;;
  "pull --quiet")
    if [ -n "${LIMIT_AT:-}" ] && [ "$5" = "$LIMIT_AT" ]; then
      echo "Error response from daemon: toomanyrequests: You have reached your unauthenticated pull rate limit." >&2
      exit 1
    fi
    echo "$5" >> "$HAVE" ;;
  "exec "*) grep -qxF "$2 ${8#name==}" "$LOADED" 2>/dev/null && echo "${8#name==}" ; exit 0 ;;
  "image save") [ "$3" = "--platform" ] && [ -n "${OLD_DOCKER:-}" ] && { echo "unknown flag: --platform" >&2; exit 1; }
    exit 0 ;;
esac
"""
FAKE_KIND = """#!/bin/sh
echo "kind $*" >> "$CALLS"
"""


def fake_tools(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", FAKE_DOCKER), ("kind", FAKE_KIND)):
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"), "HAVE": str(tmp_path / "have"),
            "LOADED": str(tmp_path / "loaded"), "TMPDIR": str(tmp_path)}


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)


def calls(env: dict[str, str]) -> list[str]:
    path = Path(env["CALLS"])
    return path.read_text().splitlines() if path.exists() else []


def test_pull_pulls_only_what_the_host_lacks_for_its_platform(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    plan = images.preload(base_config())
    Path(env["HAVE"]).write_text(DEV_IMAGES[0] + "\n")
    done = run(images.PULL_SCRIPT, {**env, **images.pull_environment(plan)})
    assert done.returncode == 0, done.stderr
    pulls = [c for c in calls(env) if c.startswith("docker pull")]
    assert pulls == [f"docker pull --quiet --platform linux/amd64 {i}" for i in DEV_IMAGES[1:]]
    again = run(images.PULL_SCRIPT, {**env, **images.pull_environment(plan)})
    assert again.returncode == 0 and len([c for c in calls(env) if c.startswith("docker pull")]) == len(pulls)


def test_a_refused_pull_stops_with_what_to_do(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    done = run(images.PULL_SCRIPT, {**env, **images.pull_environment(images.preload(base_config())),
                                    "LIMIT_AT": DEV_IMAGES[3]})
    assert done.returncode == 1
    assert "toomanyrequests" in done.stderr and "docker login" in done.stderr and "10 an hour" in done.stderr
    assert Path(env["HAVE"]).read_text().splitlines() == DEV_IMAGES[:3]  # kept for the next run


@pytest.mark.parametrize("old_docker", [False, True])
def test_load_saves_one_platform_and_loads_only_what_nodes_lack(tmp_path: Path, old_docker: bool) -> None:
    env = fake_tools(tmp_path)
    config = base_config()
    plan = images.preload(config)
    ztunnel = f"docker.io/istio/ztunnel:{ISTIO}"
    # ztunnel is in every node already; curl is in one worker only.
    Path(env["LOADED"]).write_text("".join(f"{node} {ztunnel}\n" for node in plan.every_node)
                                   + f"ambient-worker {DEV_IMAGES[0]}\n")
    extra = {"OLD_DOCKER": "1"} if old_docker else {}
    done = run(images.LOAD_SCRIPT, {**env, **images.load_environment(config.cluster, plan), **extra})
    assert done.returncode == 0, done.stderr
    made = calls(env)
    saves = [c for c in made if c.startswith("docker image save")]
    loads = [c for c in made if c.startswith("kind load")]
    cni = f"docker.io/istio/install-cni:{ISTIO}-distroless"
    archive = saves[0].split(" -o ")[1].split()[0]
    assert archive.startswith(str(tmp_path)) and not Path(archive).exists()  # removed afterwards
    if old_docker:  # no --platform: tried, then the plain save
        assert saves[0].startswith("docker image save --platform linux/amd64 ") and "--platform" not in saves[1]
    else:
        assert all(s.startswith("docker image save --platform linux/amd64 ") for s in saves)
    assert saves[-1].endswith(" " + " ".join(DEV_IMAGES[:7] + DEV_IMAGES[8:10]))  # curl too: one worker lacks it
    assert saves[0].endswith(f" {cni}")
    load = f"kind load image-archive {archive} --name ambient --nodes"
    assert loads == [f"{load} ambient-control-plane,ambient-worker,ambient-worker2",
                     f"{load} ambient-worker,ambient-worker2"]


def test_load_does_nothing_when_every_node_has_everything(tmp_path: Path) -> None:
    env = fake_tools(tmp_path)
    config = base_config()
    plan = images.preload(config)
    Path(env["LOADED"]).write_text("".join(f"{node} {image}\n" for node in plan.every_node for image in plan.images))
    done = run(images.LOAD_SCRIPT, {**env, **images.load_environment(config.cluster, plan)})
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls(env) if c.startswith(("kind", "docker image save"))]


def test_load_pulls_again_what_the_host_lost_since_the_pull(tmp_path: Path) -> None:
    """Host images pruned after the pull (`docker system prune -a`): a new cluster's load pulls them again before
    saving instead of failing in `docker image save`, and pulls nothing the host still has."""
    env = fake_tools(tmp_path)
    config = base_config()
    plan = images.preload(config)
    kept, pruned = plan.images[:2], plan.images[2:]
    Path(env["HAVE"]).write_text("".join(f"{image}\n" for image in kept))
    done = run(images.LOAD_SCRIPT, {**env, **images.load_environment(config.cluster, plan)})
    assert done.returncode == 0, done.stderr
    made = calls(env)
    pulls = [c.rsplit(" ", 1)[1] for c in made if c.startswith("docker pull")]
    assert sorted(pulls) == sorted(pruned)
    first_save = next(i for i, c in enumerate(made) if c.startswith("docker image save"))
    pulled_first = {c.rsplit(" ", 1)[1] for c in made[:first_save] if c.startswith("docker pull")}
    assert pulled_first == set(made[first_save].split()) & set(pruned)  # what a save holds is on the host first


# --- in the graph --------------------------------------------------------------------------------------------

def release(graph: Graph, helm_name: str) -> str:
    [found] = [r.name for r in graph.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == helm_name]
    return found


def test_the_graph_loads_after_the_cluster_and_before_what_runs_the_images(graph: Graph) -> None:
    pull, mesh, app = graph.get("images-pull"), graph.get("images-load-mesh"), graph.get("images-load-app")
    assert pull.inputs["environment"] == {"IMAGES": " ".join(DEV_IMAGES)}
    assert mesh.inputs["environment"]["CLUSTER_NAME"] == app.inputs["environment"]["CLUSTER_NAME"] == "ambient"
    for load in ("images-load-mesh", "images-load-app"):
        assert graph.depends_on(load) >= {"images-pull", "cluster-kind"}
    # The two loads run side by side: Istio installs while the app's images still load.
    assert "images-load-app" not in graph.waits_for("images-load-mesh")
    assert "images-load-mesh" not in graph.waits_for("images-load-app")
    assert "cluster-kind" not in graph.waits_for("images-pull")  # pulls while kind creates the nodes
    for name in ("istiod", "istio-cni", "ztunnel", "istio-ingressgateway"):
        assert "images-load-mesh" in graph.explicit(release(graph, name)), name
        assert "images-load-app" not in graph.waits_for(release(graph, name)), name
    assert "images-load-mesh" not in graph.waits_for(release(graph, "istio-base"))  # CRDs only
    for deployment in graph.of_type("kubernetes:apps/v1:Deployment"):
        assert "images-load-app" in graph.explicit(deployment.name)
        assert "images-load-mesh" not in graph.waits_for(deployment.name)  # the app does not wait for Istio
    for crd in graph.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"):
        assert not {"images-load-mesh", "images-load-app"} & graph.waits_for(crd.name)


def test_each_image_goes_into_one_load_and_the_loads_cover_the_plan() -> None:
    """The mesh's load has what Istio runs (and every Envoy), the app's the rest; together, the whole plan."""
    config = base_config(sidecar={"enabled": True}, waypoint={"mode": "namespace"})
    whole = images.preload(config)
    mesh, app = images.preload(config, "mesh"), images.preload(config, "app")
    assert not set(mesh.images) & set(app.images)
    assert set(mesh.images) | set(app.images) == set(whole.images)
    assert set(mesh.every_node_images) | set(app.every_node_images) == set(whole.every_node_images)
    istio = {images.istio_image(r, images.CHART_IMAGES[k]) for k, r in
             (("istiod", istio_releases(config.istio, None).istiod), ("cni", istio_releases(config.istio, None).cni),
              ("ztunnel", istio_releases(config.istio, None).ztunnel))}
    assert istio < set(mesh.images) and any("/proxyv2:" in i for i in mesh.images)
    assert versions.CURL_IMAGE in app.images and all("examples-bookinfo" not in i for i in mesh.images)


def test_preload_off_leaves_the_nodes_to_pull() -> None:
    graph = run_stack(base_config(cluster={"preloadImages": False}))
    assert not [r for r in graph if r.name.startswith("images")]
    assert all(not {"images-load-mesh", "images-load-app"} & graph.waits_for(r.name)
               for r in graph.of_type("kubernetes:helm.sh/v3:Release"))


def test_existing_clusters_pull_their_own() -> None:
    config = base_config(cluster={"provider": "existing", "context": "minikube"})
    assert config.cluster.preload_images is False
    assert not [r for r in run_stack(config) if r.name.startswith("images")]


def test_preload_images_is_a_boolean_defaulting_to_true_on_kind() -> None:
    assert parse_config({}).cluster.preload_images is True
    assert base_config(cluster={"preloadImages": False}).cluster.preload_images is False
    with pytest.raises(ConfigError, match=r"ambient-mesh:cluster.preloadImages: got 'yes'; accepted: true or false"):
        base_config(cluster={"preloadImages": "yes"})


# The charts' own image defaults where they differ from a release: the charts in istio.io/istio's source (the
# module the engine and kind tiers install) say registry.istio.io/testing and latest, at these keys.
DEVELOPMENT_CHART_DEFAULTS: dict[str, dict[str, Any]] = {
    "istiod": {"global": {"hub": "registry.istio.io/testing", "tag": "latest"}},
    "cni": {"global": {"hub": "registry.istio.io/testing", "tag": "latest"}},
    "ztunnel": {"hub": "registry.istio.io/testing", "tag": "latest"},
}


def _helm_merge(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in values.items():
        below = merged.get(key)
        merged[key] = (_helm_merge(below, value) if isinstance(below, dict) and isinstance(value, dict)
                       else value)
    return merged


@pytest.mark.parametrize("key", sorted(DEVELOPMENT_CHART_DEFAULTS))
def test_releases_pin_the_hub_and_tag_the_stack_preloads_whatever_the_chart_defaults(key: str) -> None:
    """A chart source whose defaults name other images (the module's development charts) still renders exactly
    the image the stack derives and preloads: the release values set hub and tag where the chart reads them."""
    config = base_config()
    release = getattr(istio_releases(config.istio, None), key)
    preloaded = images.istio_image(release, images.CHART_IMAGES[key])
    rendered = _helm_merge(DEVELOPMENT_CHART_DEFAULTS[key], release.values)
    shared = rendered.get("global") or {}
    assert isinstance(shared, dict)
    hub = rendered.get("hub") or shared.get("hub")
    tag = rendered.get("tag") or shared.get("tag")
    assert preloaded.startswith(f"{hub}/{images.CHART_IMAGES[key]}:{tag}")


def test_the_sidecar_client_waits_for_the_apps_images_and_istiod() -> None:
    graph = run_stack(base_config(sidecar={"enabled": True}))
    [client] = [d for d in graph.of_type("kubernetes:apps/v1:Deployment")
                if d.inputs["metadata"]["namespace"] == "sidecar"]
    assert "images-load-app" in graph.explicit(client.name)
    assert "istio-istiod" in graph.waits_for(client.name)
