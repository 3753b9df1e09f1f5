"""A small reader of Istio AuthorizationPolicy semantics, for asking a recorded graph "may A call B?".

Written from Istio's documented rules, independently of components/security.py, so that a test can check what the
policies the program registers really allow:
- a DENY that matches denies; else, if any ALLOW policy applies to the target, one of its rules must match; else allow;
- an ALLOW policy with no rules (`allow-nothing`) applies and matches nothing;
- ztunnel (L4) enforces the policies of the target's namespace (and istio-system) that select the workload or select
  nothing and have no targetRefs; a rule with L7 attributes (methods, paths) never matches at L4;
- a waypoint enforces the policies whose targetRefs name the Service it serves, L7 attributes included;
- behind a waypoint, the destination's ztunnel sees the waypoint's identity as the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.testkit.mockgraph import Graph

AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
USE_WAYPOINT = "istio.io/use-waypoint"
ROOT_NAMESPACE = "istio-system"
L7_FIELDS = ("methods", "paths", "hosts", "notMethods", "notPaths", "notHosts")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # Where the request was stopped: "ztunnel" (L4: connection reset, curl exit 56) or "waypoint" (HTTP 403).
    by: str | None = None


def _policies(graph: Graph) -> list[dict[str, Any]]:
    return [{"namespace": r.inputs["metadata"]["namespace"], **r.inputs.get("spec", {})} for r in graph.of_type(AUTHZ)]


def _pod_labels(graph: Graph, app: str) -> dict[str, str]:
    for r in graph.of_type(DEPLOYMENT):
        labels = r.inputs["spec"]["template"]["metadata"]["labels"]
        if labels.get("app") == app:
            return dict(labels)
    raise KeyError(f"no Deployment runs app={app}")


def waypoint_of(graph: Graph, service: str, namespace: str) -> str | None:
    """The waypoint a Service's traffic goes through: its own use-waypoint label, else its namespace's."""
    for r in graph:
        if r.type.endswith(":ServicePatch") or r.type.endswith(":Service"):
            meta = r.inputs.get("metadata", {})
            if meta.get("name") == service and USE_WAYPOINT in (meta.get("labels") or {}):
                return str(meta["labels"][USE_WAYPOINT])
    for r in graph:
        if r.type.endswith(":NamespacePatch") or r.type.endswith(":Namespace"):
            meta = r.inputs.get("metadata", {})
            if meta.get("name") == namespace and USE_WAYPOINT in (meta.get("labels") or {}):
                return str(meta["labels"][USE_WAYPOINT])
    return None


def _rule_matches(rule: dict[str, Any], principal: str, method: str | None, layer: str) -> bool:
    for source in rule.get("from", []):
        principals = source.get("source", {}).get("principals")
        if principals is not None and principal not in principals:
            return False
    for to in rule.get("to", []):
        operation = to.get("operation", {})
        if layer == "L4" and any(f in operation for f in L7_FIELDS):
            return False
        if "methods" in operation and method not in operation["methods"]:
            return False
    return True


def _decide(policies: list[dict[str, Any]], principal: str, method: str | None, layer: str) -> bool:
    if any(p.get("action") == "DENY" and any(_rule_matches(r, principal, method, layer) for r in p.get("rules", []))
           for p in policies):
        return False
    allows = [p for p in policies if p.get("action", "ALLOW") == "ALLOW"]
    if not allows:
        return True
    return any(_rule_matches(r, principal, method, layer) for p in allows for r in p.get("rules", []))


def at_ztunnel(graph: Graph, namespace: str, app: str) -> list[dict[str, Any]]:
    labels = _pod_labels(graph, app)
    return [p for p in _policies(graph)
            if p["namespace"] in (namespace, ROOT_NAMESPACE) and "targetRefs" not in p and "targetRef" not in p
            and all(labels.get(k) == v for k, v in p.get("selector", {}).get("matchLabels", {}).items())]


def at_waypoint(graph: Graph, namespace: str, service: str) -> list[dict[str, Any]]:
    return [p for p in _policies(graph) if p["namespace"] == namespace
            and any(ref.get("kind") == "Service" and ref.get("name") == service for ref in p.get("targetRefs", []))]


def request(graph: Graph, namespace: str, client_account: str, service: str, method: str = "GET") -> Verdict:
    """May the workload running as ServiceAccount `client_account` (of `namespace`) call `service`?"""
    caller = f"cluster.local/ns/{namespace}/sa/{client_account}"
    waypoint = waypoint_of(graph, service, namespace)
    if waypoint is not None:
        if not _decide(at_waypoint(graph, namespace, service), caller, method, "L7"):
            return Verdict(False, "waypoint")
        caller = f"cluster.local/ns/{namespace}/sa/{waypoint}"
    if not _decide(at_ztunnel(graph, namespace, service), caller, None, "L4"):
        return Verdict(False, "ztunnel")
    return Verdict(True)


def request_to_pod(graph: Graph, namespace: str, client_account: str, app: str) -> Verdict:
    """May `client_account` call the pod of `app` at the pod's own address? A waypoint for Services
    (istio.io/waypoint-for: service, the default) is not in that path: ztunnel decides on the caller's own identity."""
    caller = f"cluster.local/ns/{namespace}/sa/{client_account}"
    if not _decide(at_ztunnel(graph, namespace, app), caller, None, "L4"):
        return Verdict(False, "ztunnel")
    return Verdict(True)
