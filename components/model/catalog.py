"""The names every part of the stack refers to, in one place: namespaces, releases, services, labels, annotations."""

from __future__ import annotations

from dataclasses import dataclass, field

PROJECT = "ambient-mesh"

# --- Istio -----------------------------------------------------------------------------------------------------
ISTIO_NAMESPACE = "istio-system"
# Istio's own configuration profile for ambient (not our resource profiles: see charts.py).
ISTIO_PROFILE = "ambient"
# The gateway chart labels pods istio=<release name minus "istio-">: this gives the tutorial's selector. Its Service
# and ServiceAccount are named after the release.
INGRESS_RELEASE = "istio-ingressgateway"
INGRESS_SELECTOR = {"istio": "ingressgateway"}
TRUST_DOMAIN = "cluster.local"
HBONE_PORT = 15008

# --- API groups and kinds --------------------------------------------------------------------------------------
ISTIO_NETWORKING_API = "networking.istio.io/v1"
ISTIO_SECURITY_API = "security.istio.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"

# --- labels ----------------------------------------------------------------------------------------------------
AMBIENT_LABEL = {"istio.io/dataplane-mode": "ambient"}
INJECTION_LABEL = {"istio-injection": "enabled"}
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"

# --- annotations Pulumi reads ----------------------------------------------------------------------------------
# A patch takes labels over from another field manager (e.g. a `kubectl label` done by hand following the tutorial).
PATCH_FORCE = {"pulumi.com/patchForce": "true"}
# Pulumi waits for this condition: istiod has deployed the Gateway's proxy and it serves.
WAIT_PROGRAMMED = {"pulumi.com/waitFor": "condition=Programmed"}
# kind has no load balancer: Istio's generated Service for a Gateway API Gateway stays off LoadBalancer.
GATEWAY_SERVICE_TYPE = {"networking.istio.io/service-type": "ClusterIP"}

# --- Bookinfo --------------------------------------------------------------------------------------------------
BOOKINFO_PORT = 9080


@dataclass(frozen=True)
class BookinfoService:
    name: str
    versions: tuple[str, ...] = ("v1",)
    env: dict[str, str] = field(default_factory=dict)
    # emptyDir mounts: the images write logs and caches there and the root filesystem may be read-only.
    scratch_paths: tuple[str, ...] = ()
    # The Bookinfo services that call this one (what a default-deny namespace must still allow).
    callers: tuple[str, ...] = ()


BOOKINFO: tuple[BookinfoService, ...] = (
    BookinfoService("details", callers=("productpage",)),
    BookinfoService("ratings", callers=("reviews",)),
    BookinfoService("reviews", ("v1", "v2", "v3"), env={"LOG_DIR": "/tmp/logs"},
                    scratch_paths=("/tmp", "/opt/ibm/wlp/output"), callers=("productpage",)),
    BookinfoService("productpage", scratch_paths=("/tmp",)),
)
BOOKINFO_SERVICES = tuple(svc.name for svc in BOOKINFO)
PRODUCTPAGE = "productpage"
# The page whose <title> the tutorial's curls grep. The tutorial asked `/`: its Bookinfo (1.17.0) rendered the title
# there, and every Bookinfo since 1.20 (istio/istio#51239) renders none at `/` but keeps it at /productpage. The one
# deliberate difference from the tutorial's commands (README: The tutorial, step by step).
TITLE_PAGE = "/productpage"


def bookinfo_account(service: str) -> str:
    """Bookinfo runs each service under the ServiceAccount bookinfo-<service>."""
    return f"bookinfo-{service}"


# --- the guides and their curl clients --------------------------------------------------------------------------
# The seed tutorial (90DaysOfDevOps 2023, day 83) runs sleep and notsleep; Istio's own ambient Getting Started runs
# curl (its sleep and notsleep samples were removed in 1.24). A stack's app.guide picks its tryIt and its clients.
GUIDE_CLIENTS: dict[str, tuple[str, ...]] = {
    "90daysofdevops": ("sleep", "notsleep"),
    "istio-getting-started": ("curl",),
}
CLIENT_NAMES = GUIDE_CLIENTS["90daysofdevops"]
# Every client any guide runs: names no waypoint may take.
ALL_CLIENT_NAMES = tuple(sorted({c for clients in GUIDE_CLIENTS.values() for c in clients}))
# notsleep keeps away from productpage's node, so its traffic crosses nodes ztunnel to ztunnel.
CLIENT_AVOIDING_PRODUCTPAGE = "notsleep"
# The sidecar namespace's own client.
SIDECAR_CLIENT = "sleep"

# --- ingress ---------------------------------------------------------------------------------------------------
BOOKINFO_GATEWAY = "bookinfo-gateway"
BOOKINFO_VIRTUAL_SERVICE = "bookinfo"
BOOKINFO_ROUTE = "bookinfo"
# Istio deploys a Gateway API gateway as <gateway name>-<class name>: Deployment, Service and ServiceAccount.
GATEWAY_API_INGRESS_CLASS = "istio"
GATEWAY_API_INGRESS_DEPLOYMENT = f"{BOOKINFO_GATEWAY}-{GATEWAY_API_INGRESS_CLASS}"
WAYPOINT_CLASS = "istio-waypoint"
