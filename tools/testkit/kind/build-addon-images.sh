#!/usr/bin/env bash
# The kind tier's images of Istio's add-ons (samples/addons of the pinned release: what `observability.addons` runs),
# built offline into the local Docker under the exact names those files give (see tools/testkit/kind/addons/):
#
#   docker.io/prom/prometheus:v3.10.0                              REAL: from github.com/prometheus/prometheus
#   ghcr.io/prometheus-operator/prometheus-config-reloader:v0.89.0 REAL: from github.com/prometheus-operator/...
#   quay.io/kiali/kiali:v2.27                                      READINESS-ONLY STAND-IN (standin)
#   docker.io/grafana/grafana:12.0.1                               READINESS-ONLY STAND-IN (standin)
#
# Prometheus is built inside its own module (its go.mod and replaces, GOWORK off), as its release is; the reloader
# from a module of ours requiring the operator's three modules at its version (its replaces point into its repo). The
# stand-ins answer their Deployment's probe and say what they are; they are labelled ambient-mesh.standin="<why>",
# and a real image already present under a stand-in's name (one without that label) is kept, never overwritten.
# Idempotent: every image carries ambient-mesh.pin (a hash of its inputs); an image whose pin matches is kept.
# The names must be those of the add-on files the stack reads: checked against them below.
#
# Usage: tools/testkit/kind/build-addon-images.sh
# Env:   KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind), AMBIENT_MESH_ENGINE_CACHE, ADDON_BUILD_JOBS (go -p, 2)
set -euo pipefail

# --- pins --------------------------------------------------------------------------------------------------------
ISTIO_LABEL=1.31.1                                    # whose samples/addons name the images (istio.version)
PROMETHEUS_MODULE=github.com/prometheus/prometheus@v0.310.0            # Prometheus 3.10.0
PROMETHEUS_IMAGE=docker.io/prom/prometheus:v3.10.0
RELOADER_MODULE=github.com/prometheus-operator/prometheus-operator@v0.89.0
RELOADER_IMAGE=ghcr.io/prometheus-operator/prometheus-config-reloader:v0.89.0
KIALI_IMAGE=quay.io/kiali/kiali:v2.27
GRAFANA_IMAGE=docker.io/grafana/grafana:12.0.1
KIALI_WHY="Kiali (github.com/kiali/kiali) is not served by the Go module proxy here (403 for every version and for its version list), so the real image cannot be built offline"
GRAFANA_WHY="Grafana (github.com/grafana/grafana) is not served by the Go module proxy here (403 for every version and for its version list), so the real image cannot be built offline"
# -----------------------------------------------------------------------------------------------------------------

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILES=$KIND_DIR/addons
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
ENGINE_CACHE=${AMBIENT_MESH_ENGINE_CACHE:-$HOME/.cache/ambient-mesh-engine}
ADDONS_DIR=$ENGINE_CACHE/upstream/istio-$ISTIO_LABEL/addons   # tests/engine/upstream.py extracts them there
WORK=$CACHE/work/addons
BIN=$WORK/bin
OUT=$CACHE/images
TIMES=$OUT/times.log
JOBS=${ADDON_BUILD_JOBS:-2}
BASE_IMAGE=${DEBIAN_BASE_IMAGE:-ambient-mesh.local/debian:trixie}
export CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export DOCKER_BUILDKIT=0 PATH=$PATH:/usr/local/go/bin
GO=(nice -n 10 go)

log() { printf '[build-addon-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'rc=$?; log "FAILED (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR

command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"
command -v go >/dev/null || die "Go is not installed"
mkdir -p "$WORK" "$BIN" "$OUT"
exec 9>"$WORK/.lock"
if command -v flock >/dev/null; then flock 9; fi

# The names must be the add-on files' own (the stack preloads what they name).
[[ -d $ADDONS_DIR ]] || die "Istio $ISTIO_LABEL's add-on files are not extracted at $ADDONS_DIR (the engine tier does it)"
named=$(sed -n 's/^ *-\? *image: *"\?\([^"]*\)"\?$/\1/p' "$ADDONS_DIR"/{prometheus,kiali,grafana}.yaml | sort -u)
for image in "$PROMETHEUS_IMAGE" "$RELOADER_IMAGE" "$KIALI_IMAGE" "$GRAFANA_IMAGE"; do
  grep -qxF "$image" <<<"$named" || die "$image is not what Istio $ISTIO_LABEL's add-ons name: $(tr '\n' ' ' <<<"$named")"
done

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || DEBIAN_BASE_IMAGE=$BASE_IMAGE "$KIND_DIR/debian-base.sh"
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
self_sum=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
files_sum=$(cd "$KIND_DIR" && find addons standin -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
pin_of() { printf '%s\n' "$@" "$(go env GOVERSION)" "$self_sum" "$files_sum" | sha256sum | cut -c1-16; }
label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
present() { docker image inspect "$1" >/dev/null 2>&1; }

declare -A PIN=([$PROMETHEUS_IMAGE]=$(pin_of "$PROMETHEUS_MODULE" "$base_id") [$RELOADER_IMAGE]=$(pin_of "$RELOADER_MODULE" "$base_id")
  [$KIALI_IMAGE]=$(pin_of standin kiali) [$GRAFANA_IMAGE]=$(pin_of standin grafana))
declare -A WHY=([$KIALI_IMAGE]=$KIALI_WHY [$GRAFANA_IMAGE]=$GRAFANA_WHY)
IMAGES=("$PROMETHEUS_IMAGE" "$RELOADER_IMAGE" "$KIALI_IMAGE" "$GRAFANA_IMAGE")
declare -A BUILD=()
for image in "${IMAGES[@]}"; do
  if [[ -n ${WHY[$image]:-} ]] && present "$image" && [[ -z $(label "$image" ambient-mesh.standin) ]]; then
    log "$image: a real image (no ambient-mesh.standin label) is already present: kept, not replaced by the stand-in"
  elif [[ $(label "$image" ambient-mesh.pin) == "${PIN[$image]}" ]]; then
    log "$image: up to date (${PIN[$image]})"
  else
    BUILD[$image]=1
  fi
done

# go_build MODULE@VERSION PACKAGE OUTPUT [LDFLAGS]: inside the module's own directory, as its release builds it.
go_build() {
  local start=$SECONDS dir
  dir=$(go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || die "go mod download $1 gave no directory"
  log "go build $2 ($1, -p $JOBS)"
  (cd "$dir" && "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w ${4:-}" -o "$BIN/$3" "$2")
  log "go build $3 done in $((SECONDS - start))s"
}

# go_build_required OUTPUT PACKAGE LDFLAGS MODULE@VERSION...: from a module of ours requiring those, for a module
# whose replaces point at nested modules its zip does not hold (prometheus-operator's pkg/apis/monitoring and
# pkg/client, served as modules of their own at the same version).
go_build_required() {
  local start=$SECONDS out=$1 package=$2 ldflags=$3 dir=$WORK/gomod-$1
  shift 3
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'module ambient-mesh.local/kind/%s\n\ngo %s\n' "$out" "$(go env GOVERSION | sed 's/^go//')" >"$dir/go.mod"
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go get "$@" >/dev/null 2>&1) || die "go get $* failed"
  log "go build $package ($*, -p $JOBS)"
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w $ldflags" \
    -o "$BIN/$out" "$package")
  log "go build $out done in $((SECONDS - start))s"
}

# docker_build IMAGE DOCKERFILE SOURCE FILE...: FILEs from $BIN into a fresh context.
docker_build() {
  local image=$1 dockerfile=$2 source=$3 start=$SECONDS ctx file
  shift 3
  ctx=$WORK/context-${dockerfile#Dockerfile.}
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$FILES/$dockerfile" "$ctx/Dockerfile"
  for file in "$@"; do cp "$BIN/$file" "$ctx/$file"; done
  log "$image: building ($dockerfile)"
  if ! docker build --force-rm -t "$image" --label "ambient-mesh.pin=${PIN[$image]}" \
    --label "ambient-mesh.source=$source, tools/testkit/kind/addons/$dockerfile" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "${EXTRA[@]}" "$ctx" >"$ctx.log" 2>&1; then
    tail -30 "$ctx.log" >&2
    die "$image: docker build failed (log: $ctx.log)"
  fi
  rm -rf "$ctx" "$ctx.log"
  printf '%s\t%s\t%ss (docker build)\t%s\n' "$(date -u +%FT%TZ)" "$image" "$((SECONDS - start))" "${PIN[$image]}" >>"$TIMES"
  log "$image: built in $((SECONDS - start))s"
}
# Each image must start and name itself.
smoke() { local image=$1; shift; docker run --rm --network none "$image" "$@" >/dev/null 2>&1 || die "$image: smoke test failed: $*"; }

if [[ -n ${BUILD[$PROMETHEUS_IMAGE]:-} ]]; then
  version=${PROMETHEUS_IMAGE##*:v}
  go_build "$PROMETHEUS_MODULE" ./cmd/prometheus prometheus \
    "-X github.com/prometheus/common/version.Version=$version -X github.com/prometheus/common/version.Branch=release-${version%.*} -X github.com/prometheus/common/version.BuildUser=ambient-mesh-kind-tier"
  EXTRA=()
  docker_build "$PROMETHEUS_IMAGE" Dockerfile.prometheus "$PROMETHEUS_MODULE" prometheus
  smoke "$PROMETHEUS_IMAGE" --version
fi
if [[ -n ${BUILD[$RELOADER_IMAGE]:-} ]]; then
  version=${RELOADER_IMAGE##*:v}
  operator=${RELOADER_MODULE%@*}
  go_build_required prometheus-config-reloader "$operator/cmd/prometheus-config-reloader" \
    "-X github.com/prometheus/common/version.Version=$version" "$RELOADER_MODULE" \
    "$operator/pkg/apis/monitoring@${RELOADER_MODULE#*@}" "$operator/pkg/client@${RELOADER_MODULE#*@}"
  EXTRA=()
  docker_build "$RELOADER_IMAGE" Dockerfile.config-reloader "$RELOADER_MODULE" prometheus-config-reloader
  smoke "$RELOADER_IMAGE" --version
fi
if [[ -n ${BUILD[$KIALI_IMAGE]:-}${BUILD[$GRAFANA_IMAGE]:-} ]]; then
  (cd "$KIND_DIR/standin" && "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/standin" .)
fi
for image in "$KIALI_IMAGE" "$GRAFANA_IMAGE"; do
  [[ -n ${BUILD[$image]:-} ]] || continue
  EXTRA=(--build-arg "STANDIN_WHY=${WHY[$image]}" --label "ambient-mesh.standin=readiness-only stand-in: ${WHY[$image]}")
  if [[ $image == "$KIALI_IMAGE" ]]; then dockerfile=Dockerfile.kiali; else dockerfile=Dockerfile.grafana; fi
  docker_build "$image" "$dockerfile" "ambient-mesh stand-in" standin
  smoke "$image" version
done
for image in "$KIALI_IMAGE" "$GRAFANA_IMAGE"; do
  if [[ -n $(label "$image" ambient-mesh.standin) ]]; then log "note: $image is a READINESS-ONLY STAND-IN"; fi
done
log "done in ${SECONDS}s"
