#!/usr/bin/env bash
# Builds the kind tier, offline, for `make test-kind`: a Docker engine (tools/testkit/kind/docker.sh), the kind CLI,
# a kind node image of Kubernetes built from its Go modules, and every image the dev stack runs, all in the local
# Docker under the exact names the stack renders and preloads. Nothing is pulled from a container registry: Debian
# roots come from debootstrap, programs from the Go module proxy (and Bookinfo's from PyPI, npm and Maven Central).
# Two images cannot be had here at all — ztunnel (Rust, not on crates.io) and proxyv2 (Envoy) — and are named,
# readiness-only stand-ins unless the host's Docker already has the real ones (tools/testkit/kind/build-istio-images.sh).
# Istio's add-ons for the getting-started stack: Prometheus and its config reloader real, Kiali and Grafana (whose
# modules the Go proxy does not serve here) named readiness-only stand-ins (tools/testkit/kind/build-addon-images.sh).
# Last, a stand-in for Docker Hub (tools/testkit/kind/registry.sh, on 127.0.0.1:$KIND_TIER_REGISTRY_PORT, left
# running) gets every local docker.io image, so a test can remove one and `docker pull` it back as on a laptop.
#
# Idempotent like bootstrap-engine.sh: each piece has a stamp holding its pin; images carry their pin as a label.
# Usage: tools/testkit/bootstrap-kind.sh [piece ...]      (default: every piece; see PIECES)
# Env:   KIND_TIER_CACHE   cache dir (default ~/.cache/ambient-mesh-kind); ENGINE_BUILD_JOBS go build -p (default 2)
#        KIND_TIER_REGISTRY_PORT  the stand-in for Docker Hub's port (default 5501; docker.sh's mirror uses it too)
# Then:  make test-kind (tests/kind finds the tier in the cache and the engine tier beside it)
set -euo pipefail

# --- pins: the one place the tier's versions live -----------------------------------------------------------
KIND_VERSION=v0.33.0                  # sigs.k8s.io/kind: the CLI, and kind's node base files
KUBERNETES_VERSION=v1.36.3            # k8s.io/kubernetes, as the engine tier (one Go build cache for both)
KUBERNETES_STAGING_VERSION=v0.36.3
CONTAINERD_VERSION=v2.3.4             # github.com/containerd/containerd/v2, as kind v0.33.0's base image
CRICTL_VERSION=v1.37.0                # sigs.k8s.io/cri-tools (kind pins v1.36.0, which the module proxy does not serve)
CNI_PLUGINS_VERSION=v1.9.1            # github.com/containernetworking/plugins, as kind v0.33.0's base image
DISTRIBUTION_VERSION=v3.1.2           # github.com/distribution/distribution/v3: the stand-in for Docker Hub
NODE_IMAGE=ambient-mesh.local/kind-node:$KUBERNETES_VERSION
BASE_IMAGE=ambient-mesh.local/kind-base:$KIND_VERSION
# ----------------------------------------------------------------------------------------------------------------

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO_DIR/tools/testkit/kind
TIER=bootstrap-kind
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
export KIND_TIER_CACHE=$CACHE
BIN=$CACHE/bin
STAMPS=$CACHE/stamps
WORK=$CACHE/work
IMAGES=$CACHE/images
TIMES=$CACHE/times.log
JOBS=${ENGINE_BUILD_JOBS:-2}
DEBIAN_BASE_IMAGE=ambient-mesh.local/debian:trixie
PIECES=(host-packages host-limits docker kind kube-binaries containerd crictl cni-plugins registry debian-base node-base
  component-images system-images node-image istio-images apps addon-images hub-images)
# kind's node-image build reads four image archives only (server/bin/<component>.tar); kube-proxy.tar also carries
# every other image the node needs (tools/testkit/kind/node/image-archive.py), or kind would pull them.
# shellcheck source=tools/testkit/build-lib.sh
source "$REPO_DIR/tools/testkit/build-lib.sh"
mkdir -p "$BIN" "$STAMPS" "$WORK" "$IMAGES"
command -v go >/dev/null || die "Go is not installed: the kind tier builds from Go modules with Go 1.26 or newer"
export DOCKER_BUILDKIT=0  # Debian's docker.io has no buildx; the classic builder is enough for these Dockerfiles

# What the image builds run on the host, from Debian's packages where a command is missing (a new machine).
HOST_TOOLS=(debootstrap:debootstrap setcap:libcap2-bin cc:gcc curl:curl npm:npm)
install_host_packages() {
  local tool missing=()
  for tool in "${HOST_TOOLS[@]}"; do command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}"); done
  [[ ${#missing[@]} == 0 ]] && return 0
  [[ $(id -u) == 0 ]] || die "missing on this machine: ${missing[*]} (sudo apt-get install ${missing[*]})"
  log "installing Debian's ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# kind's recommended inotify limits for clusters of several nodes (README, Prerequisites), which make doctor checks.
raise_host_limits() {
  local key want have
  for key in max_user_watches=524288 max_user_instances=512; do
    want=${key#*=} key=fs.inotify.${key%=*}
    have=$(sysctl -n "$key")
    if ((have < want)); then
      if [[ $(id -u) == 0 ]]; then sysctl -qw "$key=$want"; log "set $key=$want (was $have)"
      else log "$key is $have (< $want): sudo sysctl $key=$want"; fi
    fi
  done
}

build_kind() {
  GOBIN=$BIN "${GO[@]}" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
  "$BIN/kind" version
}

KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
build_kube_binaries() {
  local ldflags pkgs=() m
  cd "$(new_module kube ambient-mesh.local/engine/kube 'go 1.26.0')"
  ldflags=$(kube_module)
  for m in "${KUBE_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$m"); done
  mkdir -p "$WORK/kube-bin"
  # One build of all seven: they share most of their packages (and, with the engine tier, the Go build cache).
  "${GO[@]}" build -p "$JOBS" -trimpath -tags providerless -ldflags "$ldflags" -o "$WORK/kube-bin/" "${pkgs[@]}"
  for m in "${KUBE_BINARIES[@]}"; do install -m 0755 "$WORK/kube-bin/$m" "$BIN/$m"; done
  "$BIN/kubeadm" version -o short
}

# A plain `go build` of packages $3... of module $1@$2 into $BIN (CGO off); $4.. are package paths.
build_module_binaries() {
  local module=$1 version=$2 tags=$3
  shift 3
  cd "$(new_module "${module##*/}" "ambient-mesh.local/kind/${module##*/}" 'go 1.26.6')"
  go mod edit -require="$module@$version"
  "${GO[@]}" build -p "$JOBS" -trimpath -tags "$tags" -ldflags "-s -w ${LDFLAGS:-}" -o "$WORK/out-${module##*/}/" "$@"
}
build_containerd() {
  local m=github.com/containerd/containerd/v2
  LDFLAGS="-X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m" \
    build_module_binaries "$m" "$CONTAINERD_VERSION" "no_aufs no_zfs no_btrfs no_devmapper" \
    "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
  install -m 0755 "$WORK"/out-v2/{containerd,containerd-shim-runc-v2,ctr} "$BIN/"
  "$BIN/containerd" --version
}
build_crictl() {
  LDFLAGS="-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    build_module_binaries sigs.k8s.io/cri-tools "$CRICTL_VERSION" "" sigs.k8s.io/cri-tools/cmd/crictl
  install -m 0755 "$WORK/out-cri-tools/crictl" "$BIN/crictl"
}
CNI_PLUGINS=(ipam/host-local main/loopback main/ptp meta/portmap)
build_cni_plugins() {
  local m=github.com/containernetworking/plugins p pkgs=()
  for p in "${CNI_PLUGINS[@]}"; do pkgs+=("$m/plugins/$p"); done
  LDFLAGS="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    build_module_binaries "$m" "$CNI_PLUGINS_VERSION" "" "${pkgs[@]}"
  mkdir -p "$BIN/cni"
  for p in "${CNI_PLUGINS[@]}"; do install -m 0755 "$WORK/out-plugins/${p#*/}" "$BIN/cni/"; done
}

build_debian_base() { DEBIAN_BASE_IMAGE=$DEBIAN_BASE_IMAGE "$HERE/debian-base.sh"; }

node_base_pin() { printf '%s+%s+%s' "$KIND_VERSION" "$(cat "$STAMPS"/{containerd,crictl,cni-plugins} 2>/dev/null | tr '\n' +)" \
  "$(files_hash "$HERE/node/base.Dockerfile")"; }
build_node_base() {
  local ctx=$WORK/node-base kind_src
  rm -rf "$ctx" && mkdir -p "$ctx/bin" "$ctx/cni"
  kind_src=$(module_field "sigs.k8s.io/kind@$KIND_VERSION" Dir)
  cp -r "$kind_src/images/base/files" "$ctx/files"
  chmod -R u+w "$ctx/files"
  cp "$BIN"/{containerd,containerd-shim-runc-v2,ctr,crictl} "$ctx/bin/"
  cp "$BIN"/cni/* "$ctx/cni/"
  nice docker build -q -f "$HERE/node/base.Dockerfile" --build-arg "DEBIAN_BASE_IMAGE=$DEBIAN_BASE_IMAGE" \
    --label "ambient-mesh.pin=$(node_base_pin)" -t "$BASE_IMAGE" "$ctx"
}

# kube-apiserver, -controller-manager, -scheduler and kube-proxy as images (saved by build_node_image).
COMPONENT_IMAGES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
build_component_images() {
  local ctx=$WORK/components c packages
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$HERE/node/iptables-mode" "$ctx/"
  for c in "${COMPONENT_IMAGES[@]}"; do
    cp "$BIN/$c" "$ctx/"
    packages=""
    [[ $c == kube-proxy ]] && packages="iptables ipset conntrack"
    nice docker build -q -f "$HERE/node/component.Dockerfile" --build-arg "DEBIAN_BASE_IMAGE=$DEBIAN_BASE_IMAGE" \
      --build-arg "COMPONENT=$c" --build-arg "PACKAGES=$packages" \
      -t "registry.k8s.io/$c:$KUBERNETES_VERSION" "$ctx" >/dev/null
  done
}

build_system_images() { "$HERE/build-system-images.sh"; }

# kind's --type file input: a kubernetes-server-linux-amd64.tar.gz laid out as Kubernetes' release tarball.
system_images() { "$HERE/build-system-images.sh" --list; }
node_image_pin() {
  { cat "$STAMPS"/{kube-binaries,node-base,component-images} 2>/dev/null
    system_images | xargs docker image inspect -f '{{.Id}}' 2>/dev/null; files_hash "$HERE/node/image-archive.py"
  } | sha256sum | cut -c1-12
}
build_node_image() {
  local ctx=$WORK/node-image srv c extra=()
  rm -rf "$ctx" && mkdir -p "$ctx"
  srv=$ctx/kubernetes/server/bin
  mkdir -p "$srv"
  printf '%s\n' "$KUBERNETES_VERSION" >"$ctx/kubernetes/version"
  cp "$BIN"/{kubeadm,kubelet,kubectl} "$srv/"
  mapfile -t extra < <(system_images)
  for c in "${COMPONENT_IMAGES[@]}"; do
    if [[ $c == kube-proxy ]]; then
      "$HERE/node/image-archive.py" "$srv/$c.tar" "registry.k8s.io/$c:$KUBERNETES_VERSION" "${extra[@]}"
    else
      docker save -o "$srv/$c.tar" "registry.k8s.io/$c:$KUBERNETES_VERSION"
    fi
  done
  tar -C "$ctx" -czf "$ctx/kubernetes-server-linux-amd64.tar.gz" kubernetes
  "$BIN/kind" build node-image --type file --base-image "$BASE_IMAGE" --image "$NODE_IMAGE" \
    "$ctx/kubernetes-server-linux-amd64.tar.gz"
  rm -rf "$ctx"
}

build_istio_images() { "$HERE/build-istio-images.sh"; }
build_apps() { "$HERE/build-apps.sh"; }
build_addon_images() { "$HERE/build-addon-images.sh"; }

# The stand-in for Docker Hub: distribution's registry with only its filesystem driver (tools/testkit/kind/registry).
REGISTRY_MAIN=$HERE/registry/main.go
build_registry() {
  cd "$(new_module registry ambient-mesh.local/kind/registry 'go 1.26.6')"
  cp "$REGISTRY_MAIN" .
  go mod edit -require="github.com/distribution/distribution/v3@$DISTRIBUTION_VERSION"
  "${GO[@]}" build -p "$JOBS" -trimpath \
    -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION" -o registry .
  # A running registry of the tier's own has the old binary: stopped here, piece hub-images starts the new one.
  "$HERE/registry.sh" stop
  install -m 0755 registry "$BIN/registry"
}

# Every local docker.io image (Istio's, Bookinfo's, curl, kindest/*) into the stand-in for Docker Hub, which stays
# running afterwards: the tier's daemon mirrors docker.io through it. Pinned on each image's name and ID.
hub_images_pin() {
  local images=()
  mapfile -t images < <("$HERE/registry.sh" hub-images)
  { cat "$STAMPS/registry" 2>/dev/null
    [[ ${#images[@]} == 0 ]] || paste <(printf '%s\n' "${images[@]}") <(docker image inspect -f '{{.Id}}' "${images[@]}")
  } | sha256sum | cut -c1-12
}
push_hub_images() { "$HERE/registry.sh" push --all; }

run_piece() {
  case $1 in
    host-packages) install_host_packages ;;
    host-limits) raise_host_limits ;;
    docker) "$HERE/docker.sh" start ;;  # every run: the engine must answer, stamp or not
    kind) piece kind "$KIND_VERSION" build_kind "$BIN/kind" ;;
    kube-binaries) piece kube-binaries "$KUBERNETES_VERSION+$KUBERNETES_STAGING_VERSION" build_kube_binaries \
      "${KUBE_BINARIES[@]/#/$BIN/}" ;;
    containerd) piece containerd "$CONTAINERD_VERSION" build_containerd "$BIN/containerd" ;;
    crictl) piece crictl "$CRICTL_VERSION" build_crictl "$BIN/crictl" ;;
    cni-plugins) piece cni-plugins "$CNI_PLUGINS_VERSION" build_cni_plugins "$BIN/cni/ptp" ;;
    debian-base) build_debian_base ;;  # keeps a present image itself
    node-base)
      piece node-base "$(node_base_pin)" build_node_base "image:$BASE_IMAGE" ;;
    component-images)
      local outputs=() c
      for c in "${COMPONENT_IMAGES[@]}"; do outputs+=("image:registry.k8s.io/$c:$KUBERNETES_VERSION"); done
      piece component-images "$KUBERNETES_VERSION+$(files_hash "$HERE"/node/component.Dockerfile \
        "$HERE"/node/iptables-mode)" build_component_images "${outputs[@]}" ;;
    system-images) build_system_images ;;
    node-image) piece node-image "$(node_image_pin)" build_node_image "image:$NODE_IMAGE" ;;
    istio-images) build_istio_images ;;
    apps) build_apps ;;
    addon-images) build_addon_images ;;
    registry) piece registry "$DISTRIBUTION_VERSION+$(files_hash "$REGISTRY_MAIN")" build_registry "$BIN/registry" ;;
    hub-images)
      # Every run, like docker: pulls of docker.io need the stand-in answering, stamp or not.
      log "hub-images: the stand-in for Docker Hub (tools/testkit/kind/registry.sh)"
      if "$HERE/registry.sh" start; then
        piece hub-images "$(hub_images_pin)" push_hub_images "$CACHE/registry/data/docker/registry/v2/repositories"
      else
        FAILED+=(hub-images)
      fi ;;
    *) die "unknown piece '$1' (pieces: ${PIECES[*]})" ;;
  esac
}

TOTAL_START=$SECONDS
for name in "${@:-${PIECES[@]}}"; do run_piece "$name"; done
log "total $((SECONDS - TOTAL_START))s; per-piece times in $TIMES"
if [[ ${#FAILED[@]} -gt 0 ]]; then die "pieces that could not be built: ${FAILED[*]}"; fi
