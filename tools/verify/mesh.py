"""What verify expects of the mesh: names, ports, workloads, the tutorial's clients and loop."""

from __future__ import annotations

import math
from typing import Literal

TITLE = "<title>Simple Bookstore App</title>"
ISTIO_NAMESPACE = "istio-system"
AMBIENT_LABEL = ("istio.io/dataplane-mode", "ambient")
DEFAULT_INGRESS_ADDRESS = "istio-ingressgateway.istio-system"
PRODUCTPAGE = "productpage"
PRODUCTPAGE_PORT = 9080
HBONE_PORT = 15008
# The seed tutorial's clients (the default); Istio's Getting Started runs `curl` (the stack's verify.clients output).
CLIENTS = ("sleep", "notsleep")
KNOWN_CLIENTS = ("sleep", "notsleep", "curl")
# The tutorial's loop: `for i in {1..10}; do kubectl exec deploy/notsleep -- curl -s http://productpage:9080/ ...`,
# on the page that has the title since Bookinfo 1.20 (components/model/catalog.py: TITLE_PAGE).
LOOP_CLIENT = "notsleep"
LOOP_URL = "http://productpage:9080/productpage"
LOOP_REQUESTS = 10
# Pod name prefixes (Deployment/DaemonSet names) that must exist, besides "every pod Ready".
ISTIO_WORKLOADS = ("istiod", "ztunnel", "istio-cni-node")
APP_WORKLOADS = ("productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3",
                 "sleep", "notsleep")
# Istio's getting-started traffic check: 100 requests, then which versions answered. Only reviews shows it on the page
# ("Reviews served by: reviews-v1-<pod>"); a version's count must fall within 6 standard deviations of its weight,
# and at least once when its weight is above zero: a spurious failure is rarer than one in ten thousand runs.
SPLIT_REQUESTS = 100
SPLIT_VISIBLE = "reviews"
# Prometheus's query API through the API server's service proxy: no port-forward, the stack's kubeconfig only.
PROMETHEUS_QUERY = f"/api/v1/namespaces/{ISTIO_NAMESPACE}/services/prometheus:9090/proxy/api/v1/query"
WAYPOINT_POD_LABEL = "gateway.networking.k8s.io/gateway-name"
STATUS_MARK = "verify-http-status="
# curl: (56) Failure with receiving network data: ztunnel resets a connection that an L4 policy rejects.
CURL_RESET = 56
KUBECONFIG_ENV = "AMBIENT_MESH_KUBECONFIG"

Status = Literal["pass", "fail", "skip"]




def split_bounds(weight: int, requests: int = SPLIT_REQUESTS) -> tuple[int, int]:
    """How many of `requests` a version of this weight (percent) may answer: never at 0, always at 100."""
    if weight <= 0:
        return 0, 0
    if weight >= 100:
        return requests, requests
    p = weight / 100
    spread = 6 * (requests * p * (1 - p)) ** 0.5
    return max(1, math.floor(requests * p - spread)), min(requests, math.ceil(requests * p + spread))
