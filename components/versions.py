"""Every version the stack pins, in one place.

Changing a pin here changes the default of the matching config key; a stack can still override it in
Pulumi.<stack>.yaml.
"""

# Istio release used for every chart (base, istiod, cni, ztunnel, gateway).
ISTIO_VERSION = "1.31.1"

# blob.istio.io is the long-lived home of the charts; the storage.googleapis.com location stops serving in
# December 2026.
ISTIO_CHART_REPOSITORY = "https://blob.istio.io/istio-release/charts"

# The newest patch of the Gateway API minor Istio 1.31 is built against (its go.mod requires v1.6.0);
# older bundles make istiod skip some route kinds (analyzer IST0176).
GATEWAY_API_VERSION = "v1.6.3"
GATEWAY_API_RELEASE_URL = (
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/{version}/standard-install.yaml"
)

# Bookinfo sample images (docker.io/istio/examples-bookinfo-<service>-v<N>:<tag>).
BOOKINFO_IMAGE_REGISTRY = "docker.io/istio"
BOOKINFO_TAG = "1.20.3"

# The tutorial's in-mesh clients (sleep, notsleep) run curl and nothing else.
CURL_IMAGE = "docker.io/curlimages/curl:8.16.0"
