"""Every stack file the repository ships: the dev stack is the tutorial, the zero-trust stack denies what it says.

Who may call whom is read from the AuthorizationPolicies the program registers (tests/authz.py), not from the
program's own policy functions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from components.model import catalog, policy
from components.model.config import SECTIONS, StackConfig, read_stack_file
from components.model.topology import in_cluster_ingress
from tests import authz
from tests.conftest import DEV_STACK_FILE, L4_ZERO_TRUST, REPO, STACK_FILES, base_config, stack_config, stack_name
from tools.testkit.mockgraph import Graph, run_stack

ZERO_TRUST_STACK_FILE = REPO / "Pulumi.zero-trust.yaml"
TUTORIAL_CLIENTS = ("sleep", "notsleep")


def graph_of(stack_file: Path) -> Graph:
    return run_stack(stack_config(stack_file), stack_name(stack_file))


@pytest.fixture(scope="module")
def zero_trust_graph() -> Graph:
    return graph_of(ZERO_TRUST_STACK_FILE)


def test_the_repository_ships_the_dev_and_zero_trust_stacks() -> None:
    assert DEV_STACK_FILE in STACK_FILES and ZERO_TRUST_STACK_FILE in STACK_FILES


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=stack_name)
def test_stack_file_sets_every_key_explicitly(stack_file: Path) -> None:
    raw = read_stack_file(stack_file)
    assert set(raw) == set(SECTIONS)
    for section, keys in SECTIONS.items():
        # kubeconfig/context only make sense for provider existing.
        expected = set(keys) - ({"kubeconfig", "context"} if raw["cluster"]["provider"] == "kind" else set())
        assert set(raw[section]) == expected, (stack_file.name, section)


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=stack_name)
def test_stack_file_builds_a_whole_graph(stack_file: Path) -> None:
    graph = graph_of(stack_file)
    assert graph.of_type(authz.DEPLOYMENT) and "tryIt" in graph.outputs


def test_stacks_can_run_side_by_side() -> None:
    """Each kind stack has its own cluster name and host port, so two can run on one laptop."""
    kind = [stack_config(f).cluster for f in STACK_FILES if stack_config(f).cluster.provider == "kind"]
    assert len({c.name for c in kind}) == len(kind)
    assert len({c.ingress_host_port for c in kind}) == len(kind)


# --- dev: the tutorial, as shipped and as a user may edit it -------------------------------------------------

# Edits within README's documented ranges: the dev stack stays the tutorial, and these tests stay green.
DEV_EDITS: dict[str, dict[str, dict[str, Any]]] = {
    "as shipped": {},
    # Several edits in one file (one graph each costs a fifth of a second).
    "workers, profile, ports, namespace, nodeImage, name": {
        "cluster": {"workers": 3, "ingressHostPort": 9090, "ingressNodePort": 31000,
                    "nodeImage": "kindest/node:v1.35.0", "name": "mesh"},
        "istio": {"resourceProfile": "chart-defaults"},
        "app": {"namespace": "bookinfo"},
    },
    "ingress=gateway-api": {"app": {"ingress": "gateway-api"}},
}


@pytest.fixture(scope="module", params=list(DEV_EDITS), ids=list(DEV_EDITS))
def dev(request: pytest.FixtureRequest) -> tuple[StackConfig, Graph]:
    config = stack_config(DEV_STACK_FILE, **DEV_EDITS[request.param])
    return config, run_stack(config, "dev")


@pytest.mark.parametrize("client", TUTORIAL_CLIENTS)
def test_dev_lets_both_tutorial_clients_reach_productpage(dev: tuple[StackConfig, Graph], client: str) -> None:
    config, graph = dev
    assert authz.request(graph, config.app.namespace, client, "productpage") == authz.Verdict(True)


def test_dev_has_no_authorization_policy_as_in_the_tutorial(dev: tuple[StackConfig, Graph]) -> None:
    assert dev[1].of_type(authz.AUTHZ) == []


def test_dev_verify_expects_no_denial(dev: tuple[StackConfig, Graph]) -> None:
    assert dev[1].outputs["verify"]["expectDenied"] == []


def test_the_reader_sees_a_denial_when_the_dev_stack_denies_notsleep_again() -> None:
    """The checks above bite: the same dev stack with the tests' own allow-list denies notsleep."""
    graph = run_stack(stack_config(DEV_STACK_FILE, security=L4_ZERO_TRUST))
    namespace = graph.outputs["appNamespace"]
    assert authz.request(graph, namespace, "notsleep", "productpage") == authz.Verdict(False, "ztunnel")
    assert authz.request(graph, namespace, "sleep", "productpage").allowed


# --- zero trust -------------------------------------------------------------------------------------------------

def test_zero_trust_denies_notsleep(zero_trust_graph: Graph) -> None:
    config = stack_config(ZERO_TRUST_STACK_FILE)
    namespace = config.app.namespace
    verdict = authz.request(zero_trust_graph, namespace, "notsleep", "productpage")
    assert not verdict.allowed
    assert zero_trust_graph.outputs["verify"]["expectDenied"] == ["notsleep"]
    assert authz.request(zero_trust_graph, namespace, "sleep", "productpage").allowed


def test_zero_trust_denies_at_l4_where_no_waypoint_serves(zero_trust_graph: Graph) -> None:
    """Default deny at ztunnel: notsleep may not call details (only productpage may): curl exit 56."""
    namespace = stack_config(ZERO_TRUST_STACK_FILE).app.namespace
    assert authz.waypoint_of(zero_trust_graph, "details", namespace) is None
    assert authz.request(zero_trust_graph, namespace, "notsleep", "details") == authz.Verdict(False, "ztunnel")
    assert authz.request(zero_trust_graph, namespace, "bookinfo-productpage", "details").allowed


def test_zero_trust_l7_rule_sits_on_the_waypoint(zero_trust_graph: Graph) -> None:
    config = stack_config(ZERO_TRUST_STACK_FILE)
    namespace = config.app.namespace
    assert authz.waypoint_of(zero_trust_graph, "productpage", namespace) == config.waypoint.name
    l7 = [p for p in authz.at_waypoint(zero_trust_graph, namespace, "productpage")
          if any("methods" in to.get("operation", {}) for r in p.get("rules", []) for to in r.get("to", []))]
    assert l7, "no L7 rule attached to productpage's waypoint"
    assert authz.request(zero_trust_graph, namespace, "sleep", "productpage", "GET").allowed
    assert authz.request(zero_trust_graph, namespace, "sleep", "productpage", "DELETE") == \
        authz.Verdict(False, "waypoint")
    assert authz.request(zero_trust_graph, namespace, "notsleep", "productpage") == authz.Verdict(False, "waypoint")


def test_zero_trust_is_strict_mtls(zero_trust_graph: Graph) -> None:
    [mtls] = [r for r in zero_trust_graph if r.type.endswith(":PeerAuthentication")]
    assert mtls.inputs["metadata"]["namespace"] == authz.ROOT_NAMESPACE
    assert mtls.inputs["spec"]["mtls"]["mode"] == "STRICT"


# --- tryIt: the tutorial's own commands -----------------------------------------------------------------------

TUTORIAL = Path(__file__).parent / "fixtures" / "tutorial-commands.sh"
# What the stack itself does (creates, installs, applies, labels); every other tutorial command is a check.
DONE_BY_THE_STACK = ("kind create", "istioctl install", "kubectl apply", "kubectl label")


def tutorial_checks() -> list[str]:
    lines = [line for line in TUTORIAL.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [line for line in lines if not line.startswith(DONE_BY_THE_STACK)]


def tutorial_checks_for(config: StackConfig) -> list[str]:
    """The tutorial's checks, with the in-cluster ingress address of the stack's ingress (the tutorial's is the
    Istio ingress gateway's), and productpage's title asked where today's Bookinfo renders it."""
    ingress = in_cluster_ingress(config)
    page = f"http://{catalog.PRODUCTPAGE}:{catalog.BOOKINFO_PORT}"
    return [c.replace(f"http://{catalog.INGRESS_RELEASE}.{catalog.ISTIO_NAMESPACE}/", f"http://{ingress}/")
            .replace(f"{page}/ ", f"{page}{catalog.TITLE_PAGE} ") for c in tutorial_checks()]


def test_try_it_is_the_tutorials_checks_in_order(dev: tuple[StackConfig, Graph]) -> None:
    """Verbatim but for the kubectl context (and the namespace, where it is not `default`)."""
    config, graph = dev
    context = f"kubectl --context kind-{config.cluster.name} "
    namespace = f" -n {config.app.namespace} exec " if config.app.namespace != "default" else " exec "
    commands = graph.outputs["tryIt"]
    assert all(context in command for command in commands)
    assert [command.replace(context, "kubectl ").replace(namespace, " exec ")
            for command in commands] == tutorial_checks_for(config)


def test_try_it_names_a_non_default_namespace() -> None:
    commands = run_stack(base_config(app={"namespace": "bookinfo"})).outputs["tryIt"]
    exec_commands = [c for c in commands if " exec " in c]
    assert exec_commands and all(" -n bookinfo exec " in c for c in exec_commands)


def test_zero_trust_shows_each_denial(zero_trust_graph: Graph) -> None:
    checks = zero_trust_graph.outputs["moreChecks"]
    assert "exit 56" in checks["deniedAtL4"] and "deploy/notsleep" in checks["deniedAtL4"]
    assert "403" in checks["deniedAtL7"] and "-X DELETE" in checks["deniedAtL7"]
    assert "403" in checks["notsleepDenied"]
    assert not {"notsleepDenied", "deniedAtL4", "deniedAtL7"} & set(graph_of(DEV_STACK_FILE).outputs["moreChecks"])


# --- getting-started: Istio's own ambient guide ---------------------------------------------------------------

GETTING_STARTED_STACK_FILE = REPO / "Pulumi.getting-started.yaml"
GUIDE = Path(__file__).parent / "fixtures" / "getting-started-commands.sh"
# What the stack itself does in the guide (installs, applies, annotates, labels, makes the waypoint).
GUIDE_DONE_BY_THE_STACK = ("istioctl install", "kubectl get crd ", "kubectl apply", "kubectl annotate", "kubectl label",
                           "istioctl waypoint apply")


def guide_checks_for(config: StackConfig) -> list[str]:
    """The guide's checks, with the gateway reached on the stack's host port instead of the guide's port-forward."""
    lines = [line for line in GUIDE.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    url = f"http://localhost:{config.cluster.ingress_host_port}/productpage"
    checks = []
    for line in lines:
        if line.startswith(GUIDE_DONE_BY_THE_STACK):
            continue
        if line == "istioctl dashboard kiali":  # istioctl is no prerequisite: the project's own dashboard command
            line = f"make dashboard ADDON=kiali STACK={stack_name(GETTING_STARTED_STACK_FILE)}"
        if line.startswith("kubectl port-forward"):
            line = f'curl -s {url} | grep -o "<title>.*</title>"'
        checks.append(line.replace("http://localhost:8080/productpage", url))
    return checks


def test_getting_started_try_it_is_the_guides_checks_in_order() -> None:
    config = stack_config(GETTING_STARTED_STACK_FILE)
    commands = graph_of(GETTING_STARTED_STACK_FILE).outputs["tryIt"]
    context = f"kubectl --context kind-{config.cluster.name} "
    assert [c.replace(context, "kubectl ") for c in commands] == guide_checks_for(config)


def guide_rbac_denials() -> list[str]:
    """The guide's calls that end in `RBAC: access denied` (its DELETE, and its call from another workload than the
    client), as WORKLOAD:METHOD."""
    denied = []
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        call = re.fullmatch(r'kubectl exec deploy/(\S+) -- curl -s "?http://productpage:9080/productpage"?'
                            r"(?: -X (\w+))?", line)
        if call and (call.group(2) or call.group(1) != "curl"):
            denied.append(f"{call.group(1)}:{call.group(2) or 'GET'}")
    return denied


def test_getting_started_verify_expects_the_guides_rbac_denials() -> None:
    denied = guide_rbac_denials()
    assert len(denied) == 2
    assert graph_of(GETTING_STARTED_STACK_FILE).outputs["verify"]["l7Denied"] == denied


def test_getting_started_is_the_guides_mesh() -> None:
    config = stack_config(GETTING_STARTED_STACK_FILE)
    graph = graph_of(GETTING_STARTED_STACK_FILE)
    assert config.app.clients == ("curl",) and config.app.ingress == "gateway-api"
    assert config.waypoint.mode == "namespace" and config.security.l7_clients == ("curl",)
    assert [(r.service, dict(r.weights)) for r in config.traffic.routes] == [("reviews", {"v1": 90, "v2": 10})]
    assert graph.outputs["verify"]["clients"] == ["curl"]
    assert "exit 56" in graph.outputs["moreChecks"]["deniedAtL4"]
    deployments = {r.inputs["metadata"]["name"] for r in graph.of_type(authz.DEPLOYMENT)}
    assert "curl" in deployments and not {"sleep", "notsleep"} & deployments
    assert config.observability.addons == ("prometheus", "kiali", "grafana")
    assert {"prometheus", "kiali", "grafana"} <= deployments


def reset_at_pod_address(stack_file: Path) -> list[str]:
    """The stack's clients that a waypoint serves at productpage's Service address but ztunnel refuses at its pod's own
    address, read from the policies the program registers (tests/authz.py)."""
    config, graph = stack_config(stack_file), graph_of(stack_file)
    namespace = config.app.namespace
    waypoint = authz.waypoint_of(graph, catalog.PRODUCTPAGE, namespace)
    if waypoint is None:
        return []
    # The pod's own address skips the waypoint only because it serves Services.
    [gateway] = [r for r in graph.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
                 if r.inputs["metadata"]["name"] == waypoint]
    assert gateway.inputs["metadata"]["labels"]["istio.io/waypoint-for"] == "service"
    return [c for c in config.app.clients
            if authz.request_to_pod(graph, namespace, c, catalog.PRODUCTPAGE) == authz.Verdict(False, "ztunnel")]


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=stack_name)
def test_verify_expects_exit_56_where_productpages_pod_address_skips_its_waypoint(stack_file: Path) -> None:
    """The model's l4Denied (verify's l4-denied:<client>:pod-ip) is what the registered policies do to a client that
    calls productpage's pod directly; the getting-started stack asks for the guide's exit 56 from its client."""
    config = stack_config(stack_file)
    hinted = graph_of(stack_file).outputs["verify"]["l4Denied"]
    assert hinted == policy.l4_denials(config) == reset_at_pod_address(stack_file)
    if stack_file == GETTING_STARTED_STACK_FILE:
        assert hinted == list(config.app.clients)
        client = hinted[0]
        assert f"deploy/{client} " in graph_of(stack_file).outputs["moreChecks"]["deniedAtL4"]


GUIDE_CLEANUP = Path(__file__).parent / "fixtures" / "getting-started-cleanup.sh"


def _meta(r: Any) -> dict[str, Any]:
    return dict(r.inputs.get("metadata") or {})


def _kind(r: Any) -> str:
    return str(r.type.rsplit(":", 1)[1])


# What bookinfo.yaml holds: a Service and a ServiceAccount (bookinfo-<service>) per service, a Deployment per version.
BOOKINFO_OBJECTS = {n for s in catalog.BOOKINFO for n in (s.name, f"bookinfo-{s.name}", *(f"{s.name}-{v}"
                                                                                        for v in s.versions))}


def _version_service(r: Any) -> bool:
    """bookinfo-versions.yaml's Services: one per version (reviews-v1 …), selecting it by its `version` label."""
    return _kind(r) == "Service" and "version" in (_meta(r).get("labels") or {})


# Each of the guide's clean-up commands, and the objects of the stack it removes (read from what the program
# registers). The add-ons and the stack's own commands (cluster, images, smoke check) are not in the guide's page.
CLEANUP_TARGETS: dict[str, Any] = {
    "kubectl label namespace default istio.io/use-waypoint-":
        lambda r: _kind(r).endswith("Patch") and catalog.USE_WAYPOINT_LABEL in (_meta(r).get("labels") or {}),
    "istioctl waypoint delete --all":
        lambda r: _kind(r) == "Gateway" and r.inputs["spec"]["gatewayClassName"] == catalog.WAYPOINT_CLASS,
    "kubectl label namespace default istio.io/dataplane-mode-":
        lambda r: _kind(r) == "NamespacePatch" and (_meta(r).get("labels") or {}) == catalog.AMBIENT_LABEL,
    "kubectl delete httproute reviews":
        lambda r: _kind(r) == "HTTPRoute" and any(p.get("kind") == "Service" for p in r.inputs["spec"]["parentRefs"]),
    "kubectl delete authorizationpolicy productpage-viewer":
        lambda r: _kind(r) in ("AuthorizationPolicy", "PeerAuthentication"),
    "kubectl delete -f @samples/curl/curl.yaml@":
        lambda r: _meta(r).get("name") == "curl" and _kind(r) in ("Deployment", "Service", "ServiceAccount"),
    "kubectl delete -f @samples/bookinfo/platform/kube/bookinfo.yaml@":
        lambda r: _kind(r) in ("Deployment", "Service", "ServiceAccount") and not _version_service(r)
        and _meta(r).get("name") in BOOKINFO_OBJECTS,
    "kubectl delete -f @samples/bookinfo/platform/kube/bookinfo-versions.yaml@":
        _version_service,
    "kubectl delete -f @samples/bookinfo/gateway-api/bookinfo-gateway.yaml@":
        lambda r: _kind(r) == "Gateway" and r.inputs["spec"]["gatewayClassName"] != catalog.WAYPOINT_CLASS
        or _kind(r) == "HTTPRoute" and not any(p.get("kind") == "Service" for p in r.inputs["spec"]["parentRefs"]),
    "istioctl uninstall -y --purge": lambda r: _kind(r) == "Release",
    "kubectl delete namespace istio-system":
        lambda r: _kind(r) == "Namespace" and _meta(r).get("name") == catalog.ISTIO_NAMESPACE,
    "kubectl delete -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml":
        lambda r: _kind(r) == "CustomResourceDefinition" and r.inputs["spec"]["group"] == "gateway.networking.k8s.io",
}


def cleanup_steps(graph: Graph) -> dict[str, int]:
    """Each object of the guide's clean-up, by name: the index of the guide's command that removes it."""
    commands = [line for line in GUIDE_CLEANUP.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert commands == list(CLEANUP_TARGETS), "the guide's clean-up page and this test's map of it differ"
    steps = {}
    for resource in graph:
        if resource.custom:
            found = [i for i, command in enumerate(commands) if CLEANUP_TARGETS[command](resource)]
            assert len(found) <= 1, (resource.name, [commands[i] for i in found])
            if found:
                steps[resource.name] = found[0]
    for i, command in enumerate(commands):
        assert i in steps.values(), f"the stack makes nothing that `{command}` removes"
    return steps


def test_destroy_cleans_up_in_the_guides_order() -> None:
    """`make destroy` deletes an object only after everything that waits for it: it never removes a later step of
    the guide's clean-up before an earlier one, and where the real system needs the order, the graph forces it."""
    graph = graph_of(REPO / "Pulumi.getting-started.yaml")
    steps = cleanup_steps(graph)
    by_step: dict[int, set[str]] = {}
    for name, i in steps.items():
        by_step.setdefault(i, set()).add(name)
    for name, i in steps.items():
        reversed_ = {d for d in graph.waits_for(name) if steps.get(d, i) < i}
        assert not reversed_, f"{name} (clean-up step {i}) must go before {reversed_}, which the guide removes first"
    commands = list(CLEANUP_TARGETS)

    def removed_before(first: str, then: str) -> None:
        for name in by_step[commands.index(first)]:
            assert by_step[commands.index(then)] <= graph.waits_for(name), (name, then)

    # A Service labelled for a waypoint that is gone has its traffic sent to no proxy.
    removed_before("kubectl label namespace default istio.io/use-waypoint-", "istioctl waypoint delete --all")
    # "You must remove workloads from the ambient data plane before uninstalling Istio."
    for name in by_step[commands.index("kubectl label namespace default istio.io/dataplane-mode-")]:
        assert {r.name for r in graph if _kind(r) == "Release" and r.name.endswith(("ztunnel", "cni"))} <= \
            graph.waits_for(name)
    # An Istio or Gateway API object outliving its CRD cannot be deleted at all.
    istio_crds = {r.name for r in graph if _kind(r) == "Release" and r.inputs["chart"].endswith("base")}
    for name in steps:
        kind = _kind(graph.get(name))
        if kind in ("AuthorizationPolicy", "PeerAuthentication"):
            assert istio_crds and istio_crds <= graph.waits_for(name), name
        if kind in ("Gateway", "HTTPRoute"):
            assert by_step[len(commands) - 1] & graph.waits_for(name), name
