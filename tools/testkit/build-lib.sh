# shellcheck shell=bash
# Shared by the tiers' bootstrap scripts (source it): logging, stamped pieces, wrapper Go modules, and the
# k8s.io/kubernetes wrapper module. The caller sets TIER (log prefix), CACHE, STAMPS, WORK, TIMES and JOBS first.

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
GO=(nice -n 10 go)

log() { printf '[%s %s] %s\n' "$TIER" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A fresh wrapper module under $WORK: $1 = dir name, $2 = module path, $3 = go directive line(s).
new_module() {
  local dir=$WORK/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  printf 'module %s\n\n%s\n' "$2" "$3" >"$dir/go.mod"
  printf '%s\n' "$dir"
}

# `go mod download -json` field $2 ("Dir", "GoMod") of module@version $1.
module_field() { go mod download -json "$1" | sed -n "s/^\t\"$2\": \"\(.*\)\",\$/\1/p"; }

# Whether output $1 exists: a path, or `image:NAME` for an image in the local Docker.
output_exists() {
  case $1 in
    image:*) docker image inspect "${1#image:}" >/dev/null 2>&1 ;;
    *) [[ -e $1 ]] ;;
  esac
}

# Runs piece $1 unless its stamp holds pin $2 and every output named after the function $3 exists.
FAILED=()
piece() {
  local name=$1 pin=$2 fn=$3
  shift 3
  local stamp=$STAMPS/$name outputs=("$@") missing=0 out
  for out in "${outputs[@]}"; do output_exists "$out" || missing=1; done
  if [[ $missing == 0 && -f $stamp && "$(cat "$stamp")" == "$pin" ]]; then
    log "$name: up to date ($pin)"
    return 0
  fi
  log "$name: building ($pin)"
  rm -f "$stamp"
  local start=$SECONDS rc=0
  # Not `if (fn)`: errexit is ignored inside an `if` condition, and each build step must stop the piece.
  set +e
  (
    set -e
    "$fn"
  )
  rc=$?
  set -e
  local took=$((SECONDS - start))
  if [[ $rc == 0 ]]; then
    printf '%s\n' "$pin" >"$stamp"
    log "$name: done in ${took}s"
    printf '%s\t%s\t%ss\t%s\n' "$(date -u +%FT%TZ)" "$name" "$took" "$pin" >>"$TIMES"
  else
    log "$name: FAILED after ${took}s (see above)"
    printf '%s\t%s\tFAILED after %ss\t%s\n' "$(date -u +%FT%TZ)" "$name" "$took" "$pin" >>"$TIMES"
    FAILED+=("$name")
  fi
}

# In the current directory, a wrapper module requiring k8s.io/kubernetes@$KUBERNETES_VERSION with each staging
# module at $KUBERNETES_STAGING_VERSION; prints the -ldflags that stamp the version.
kube_module() {
  local gomod minor ldflags replaces=() m
  gomod=$(module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" GoMod)
  # Same go/godebug lines as k8s.io/kubernetes; each `k8s.io/X => ./staging/src/k8s.io/X` becomes X@staging.
  { printf 'module ambient-mesh.local/engine/kube\n\n'; grep -E '^(go|godebug) ' "$gomod"; } >go.mod
  # Only the staging modules that k8s.io/kubernetes requires (k8s.io/sample-cli-plugin, say, is replaced but not
  # required, and the proxy does not serve it).
  while read -r m; do
    if grep -qE "^[[:space:]]+$m v0\.0\.0" "$gomod"; then
      replaces+=("-replace=$m=$m@$KUBERNETES_STAGING_VERSION")
    fi
  done < <(sed -n 's#^\t\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$gomod")
  [[ ${#replaces[@]} -gt 10 ]] || die "found no staging replaces in $gomod"
  go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION" "${replaces[@]}"
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  # Mandatory: without them /version says v0.0.0 and the kubernetes provider refuses the cluster.
  ldflags="-s -w"
  for m in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $m.gitVersion=$KUBERNETES_VERSION -X $m.gitMajor=1 -X $m.gitMinor=$minor"
    ldflags+=" -X $m.gitTreeState=clean -X $m.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s\n' "$ldflags"
}

# A label value that changes when any of the files given changes.
files_hash() { cat "$@" | sha256sum | cut -c1-12; }

# The pin label of a local image, empty when the image is absent.
image_pin() { docker image inspect -f '{{index .Config.Labels "ambient-mesh.pin"}}' "$1" 2>/dev/null || true; }
