#!/usr/bin/env bash
# The kind tier's Istio images, built offline into the local Docker under the exact names the stack renders and
# preloads (no container registry is reached; see tools/testkit/kind/istio/ for the Dockerfiles and the stand-in):
#
#   docker.io/istio/pilot:1.31.1-distroless        REAL: pilot-discovery from istio.io/istio (Dockerfile.pilot)
#   docker.io/istio/install-cni:1.31.1-distroless  REAL: install-cni + the istio-cni plugin (Dockerfile.install-cni)
#   docker.io/istio/ztunnel:1.31.1                 READINESS-ONLY STAND-IN (Dockerfile.ztunnel, ../standin)
#   docker.io/istio/proxyv2:1.31.1-distroless      READINESS-ONLY STAND-IN (Dockerfile.proxyv2, ../standin)
#
# The Istio binaries come from the same Go module snapshot, wrapper module and ldflags as the engine tier's
# pilot-discovery (tools/testkit/bootstrap-engine.sh, build_pilot_discovery), so the Go build cache is shared and
# that binary is reused when its stamp matches. The stand-ins answer the readiness probe only and carry no traffic;
# they are labelled ambient-mesh.standin="<why>", and a real image already present under a stand-in's name (one
# without that label) is kept, never overwritten.
#
# Idempotent: every image carries ambient-mesh.pin (module version + hash of the build inputs); an image whose pin
# matches is skipped. Writes $CACHE/images/istio-images.json: {"<image>": {"standin": bool, "why": "...", ...}}.
#
# Usage: tools/testkit/kind/build-istio-images.sh
# Env:   KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind), AMBIENT_MESH_ENGINE_CACHE (engine tier, for reuse),
#        ISTIO_BUILD_JOBS (go build -p, default 2)
set -euo pipefail

# --- pins: the one place versions live (the module must agree with tests/engine/upstream.py, checked below) -------
ISTIO_LABEL=1.31.1                                       # the Istio version the stack names (istio.version)
ISTIO_MODULE=istio.io/istio
ISTIO_MODULE_VERSION=v0.0.0-20260827124520-eed52ebb66ad  # stand-in commit for 1.31.1 (proxy serves no tags)
ISTIO_MODULE_SUM=h1:ui9TJjRMAV/hb5ehQaZDq7IUGxuQP6dra9lapT/VjHI=
DEBIAN_BASE_IMAGE=${DEBIAN_BASE_IMAGE:-ambient-mesh.local/debian:trixie}
PILOT_IMAGE=docker.io/istio/pilot:$ISTIO_LABEL-distroless
CNI_IMAGE=docker.io/istio/install-cni:$ISTIO_LABEL-distroless
ZTUNNEL_IMAGE=docker.io/istio/ztunnel:$ISTIO_LABEL
PROXY_IMAGE=docker.io/istio/proxyv2:$ISTIO_LABEL-distroless
ZTUNNEL_WHY="ztunnel is Rust (istio/ztunnel), published neither on crates.io nor on any registry reachable here, so the real image cannot be built offline"
PROXY_WHY="proxyv2 is Envoy (istio/proxy, C++ built with Bazel from GitHub sources) driven by pilot-agent; Envoy cannot be built offline here"
# ----------------------------------------------------------------------------------------------------------------

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$KIND_DIR/../../.." && pwd)
FILES=$KIND_DIR/istio
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
WORK=$CACHE/work/istio
OUT=$CACHE/images
SUMMARY=$OUT/istio-images.json
TIMES=$OUT/times.log
JOBS=${ISTIO_BUILD_JOBS:-2}
ENGINE_CACHE=${AMBIENT_MESH_ENGINE_CACHE:-$HOME/.cache/ambient-mesh-engine}
WRAPPER_MODULE=ambient-mesh.local/engine/pilot  # the engine tier's: the same main module gives the same binary

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export DOCKER_BUILDKIT=0
GO=(nice -n 10 go)

log() { printf '[build-istio-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'rc=$?; log "FAILED (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"
command -v go >/dev/null || die "Go is not installed (Go 1.26 or newer builds the Istio binaries)"
command -v python3 >/dev/null || die "python3 is needed (tests/engine/upstream.py, the summary file)"
mkdir -p "$WORK" "$OUT"
log "Istio $ISTIO_LABEL images from $ISTIO_MODULE@$ISTIO_MODULE_VERSION (cache $CACHE)"
exec 9>"$WORK/.lock"
if command -v flock >/dev/null; then flock 9; fi

# The module pin must be the one the engine tier's charts come from.
upstream=$(python3 "$REPO_DIR/tests/engine/upstream.py" istio-module "$ISTIO_LABEL")
[[ $upstream == "$ISTIO_MODULE $ISTIO_MODULE_VERSION" ]] \
  || die "pin mismatch: this script builds $ISTIO_MODULE $ISTIO_MODULE_VERSION, tests/engine/upstream.py says $upstream"

# --- pins of the four images ---------------------------------------------------------------------------------
[[ -n $(docker images -q "$DEBIAN_BASE_IMAGE") ]] || KIND_TIER_CACHE=$CACHE DEBIAN_BASE_IMAGE=$DEBIAN_BASE_IMAGE \
  "$KIND_DIR/debian-base.sh"
base_id=$(docker image inspect -f '{{.Id}}' "$DEBIAN_BASE_IMAGE")
go_version=$(go env GOVERSION)
# Everything an image is built from: this script, its Dockerfile and the stand-in's source, Go, the base image.
inputs_hash() {
  {
    printf 'module %s@%s %s\ngo %s\n' "$ISTIO_MODULE" "$ISTIO_MODULE_VERSION" "$ISTIO_MODULE_SUM" "$go_version"
    printf 'base %s\n' "$*"
    sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
    (cd "$KIND_DIR" && find istio standin -type f ! -name '*~' | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-12
}
debian_pin="$ISTIO_MODULE@$ISTIO_MODULE_VERSION+build.$(inputs_hash "$base_id")"
scratch_pin="$ISTIO_MODULE@$ISTIO_MODULE_VERSION+build.$(inputs_hash scratch)"

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
present() { docker image inspect "$1" >/dev/null 2>&1; }

# --- decide what to build -----------------------------------------------------------------------------------
declare -A PIN=([$PILOT_IMAGE]=$debian_pin [$CNI_IMAGE]=$debian_pin [$ZTUNNEL_IMAGE]=$scratch_pin
  [$PROXY_IMAGE]=$scratch_pin)
declare -A WHY=([$ZTUNNEL_IMAGE]=$ZTUNNEL_WHY [$PROXY_IMAGE]=$PROXY_WHY)
declare -A STATE=()  # image -> up-to-date | build | foreign
IMAGES=("$PILOT_IMAGE" "$CNI_IMAGE" "$ZTUNNEL_IMAGE" "$PROXY_IMAGE")
for image in "${IMAGES[@]}"; do
  if [[ -n ${WHY[$image]:-} ]] && present "$image" && [[ -z $(label "$image" ambient-mesh.standin) ]]; then
    STATE[$image]=foreign
    log "$image: a real image (no ambient-mesh.standin label) is already present: kept, not replaced by the stand-in"
  elif [[ $(label "$image" ambient-mesh.pin) == "${PIN[$image]}" ]]; then
    STATE[$image]=up-to-date
    log "$image: up to date (${PIN[$image]})"
  else
    STATE[$image]=build
  fi
done
need() { local image; for image in "$@"; do [[ ${STATE[$image]} == build ]] && return 0; done; return 1; }

# --- Go binaries ----------------------------------------------------------------------------------------------
BIN=$WORK/bin
mkdir -p "$BIN"
ISTIO_LDFLAGS="-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_LABEL"
ISTIO_LDFLAGS+=" -X istio.io/istio/pkg/version.buildGitRevision=${ISTIO_MODULE_VERSION##*-}"
ISTIO_LDFLAGS+=" -X istio.io/istio/pkg/version.buildTag=$ISTIO_MODULE_VERSION -X istio.io/istio/pkg/version.buildStatus=Clean"
GO_SECONDS=0

build_istio_binaries() {  # $@: main packages of istio.io/istio
  local start=$SECONDS info gomod sum dir=$WORK/gomod
  info=$(go mod download -json "$ISTIO_MODULE@$ISTIO_MODULE_VERSION")
  sum=$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$info")
  [[ $sum == "$ISTIO_MODULE_SUM" ]] || die "$ISTIO_MODULE@$ISTIO_MODULE_VERSION has sum $sum, pinned $ISTIO_MODULE_SUM"
  gomod=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' <<<"$info")
  # The engine tier's wrapper module: its main module path, the snapshot's go/godebug lines, one requirement.
  rm -rf "$dir" && mkdir -p "$dir"
  { printf 'module %s\n\n' "$WRAPPER_MODULE"; grep -E '^(go|godebug) ' "$gomod"; } >"$dir/go.mod"
  (cd "$dir" && go mod edit -require="$ISTIO_MODULE@$ISTIO_MODULE_VERSION")
  log "go build ${*##*/} ($ISTIO_MODULE@$ISTIO_MODULE_VERSION, -p $JOBS)"
  (cd "$dir" && "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "$ISTIO_LDFLAGS" -o "$BIN/" "$@")
  GO_SECONDS=$((GO_SECONDS + SECONDS - start))
  log "go build done in $((SECONDS - start))s"
}

ISTIO_PKGS=()
if need "$PILOT_IMAGE"; then
  engine_stamp=$ENGINE_CACHE/stamps/pilot-discovery engine_bin=$ENGINE_CACHE/bin/pilot-discovery
  if [[ -x $engine_bin && -f $engine_stamp \
    && "$(cat "$engine_stamp")" == "$ISTIO_MODULE@$ISTIO_MODULE_VERSION=$ISTIO_LABEL" ]]; then
    log "pilot-discovery: reusing the engine tier's $engine_bin (stamp matches)"
    cp "$engine_bin" "$BIN/pilot-discovery"
  else
    ISTIO_PKGS+=(istio.io/istio/pilot/cmd/pilot-discovery)
  fi
fi
if need "$CNI_IMAGE"; then ISTIO_PKGS+=(istio.io/istio/cni/cmd/install-cni istio.io/istio/cni/cmd/istio-cni); fi
if [[ ${#ISTIO_PKGS[@]} -gt 0 ]]; then build_istio_binaries "${ISTIO_PKGS[@]}"; fi

if need "$ZTUNNEL_IMAGE" "$PROXY_IMAGE"; then
  start=$SECONDS
  (cd "$KIND_DIR/standin" && "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/standin" .)
  GO_SECONDS=$((GO_SECONDS + SECONDS - start))
  log "stand-in built in $((SECONDS - start))s"
fi

# --- images ---------------------------------------------------------------------------------------------------
# $1 image, $2 Dockerfile (in $FILES), $3... binaries from $BIN; BUILD_ARGS/EXTRA_LABELS: extra docker build flags.
docker_build() {
  local image=$1 dockerfile=$2 start=$SECONDS ctx bin
  shift 2
  ctx=$WORK/context-${dockerfile#Dockerfile.}
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$FILES/$dockerfile" "$ctx/Dockerfile"
  for bin in "$@"; do cp "$BIN/$bin" "$ctx/$bin"; done
  log "$image: building ($dockerfile, pin ${PIN[$image]})"
  local previous=""  # an older build of ours under this name, removed once it is untagged
  if [[ $(label "$image" ambient-mesh.pin) == "$ISTIO_MODULE@"* ]]; then
    previous=$(docker image inspect -f '{{.Id}}' "$image")
  fi
  if ! docker build --force-rm -t "$image" --label "ambient-mesh.pin=${PIN[$image]}" \
    --label "ambient-mesh.source=$ISTIO_MODULE@$ISTIO_MODULE_VERSION (Istio $ISTIO_LABEL), tools/testkit/kind/istio/$dockerfile" \
    "${BUILD_ARGS[@]}" "$ctx" >"$ctx.log" 2>&1; then
    tail -30 "$ctx.log" >&2
    die "$image: docker build failed (log: $ctx.log)"
  fi
  rm -rf "$ctx" "$ctx.log"
  if [[ -n $previous && $previous != "$(docker image inspect -f '{{.Id}}' "$image")" \
    && -z $(docker image inspect -f '{{join .RepoTags ""}}' "$previous" 2>/dev/null) ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
  fi
  local took=$((SECONDS - start))
  log "$image: built in ${took}s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}'))"
  printf '%s\t%s\t%ss (docker build; go build total %ss)\t%s\n' "$(date -u +%FT%TZ)" "$image" "$took" "$GO_SECONDS" \
    "${PIN[$image]}" >>"$TIMES"
}
# Each built image must start and identify itself.
smoke() {
  local image=$1
  shift
  docker run --rm --network none "$@" >/dev/null 2>&1 || die "$image: smoke test failed: docker run --rm $* "
}

if need "$PILOT_IMAGE"; then
  BUILD_ARGS=(--build-arg "BASE_IMAGE=$DEBIAN_BASE_IMAGE")
  docker_build "$PILOT_IMAGE" Dockerfile.pilot pilot-discovery
  smoke "$PILOT_IMAGE" "$PILOT_IMAGE" version --short
fi
if need "$CNI_IMAGE"; then
  BUILD_ARGS=(--build-arg "BASE_IMAGE=$DEBIAN_BASE_IMAGE")
  docker_build "$CNI_IMAGE" Dockerfile.install-cni install-cni istio-cni
  smoke "$CNI_IMAGE" "$CNI_IMAGE" sh -c 'install-cni --help && test -x /opt/cni/bin/istio-cni \
    && iptables-legacy-save --version && ip6tables-nft-save --version'
fi
for image in "$ZTUNNEL_IMAGE" "$PROXY_IMAGE"; do
  need "$image" || continue
  BUILD_ARGS=(--build-arg "STANDIN_WHY=${WHY[$image]}" --label "ambient-mesh.standin=readiness-only stand-in: ${WHY[$image]}")
  if [[ $image == "$ZTUNNEL_IMAGE" ]]; then dockerfile=Dockerfile.ztunnel; else dockerfile=Dockerfile.proxyv2; fi
  docker_build "$image" "$dockerfile" standin
  smoke "$image" "$image" version
done

# --- summary --------------------------------------------------------------------------------------------------
summary_rows=()
for image in "${IMAGES[@]}"; do
  standin=$(label "$image" ambient-mesh.standin)
  summary_rows+=("$image" "$standin" "$(label "$image" ambient-mesh.pin)" "$(docker image inspect -f '{{.Id}}' "$image")"
    "${STATE[$image]}")
done
python3 - "$SUMMARY" "$ISTIO_MODULE@$ISTIO_MODULE_VERSION" "${summary_rows[@]}" <<'PY'
import json, os, sys
path, module, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
summary = {}
for i in range(0, len(rows), 5):
    image, standin, pin, image_id, state = rows[i:i + 5]
    entry = {"standin": bool(standin), "why": standin.removeprefix("readiness-only stand-in: ")}
    if standin:
        entry["what"] = "readiness-only stand-in: answers GET :15021/healthz/ready, carries no traffic"
    elif state == "foreign":
        entry["what"] = "real image found in the local Docker (not built by this script), kept"
    else:
        entry["what"] = f"built from {module}"
    entry.update({"pin": pin or None, "id": image_id})
    summary[image] = entry
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
    f.write("\n")
os.replace(tmp, path)
PY
log "summary: $SUMMARY"
for image in "$ZTUNNEL_IMAGE" "$PROXY_IMAGE"; do
  if [[ -n $(label "$image" ambient-mesh.standin) ]]; then
    log "note: $image is a READINESS-ONLY STAND-IN (carries no traffic)"
  fi
done
log "done in ${SECONDS}s"
