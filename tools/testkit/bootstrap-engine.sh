#!/usr/bin/env bash
# Builds the real Pulumi engine tier from Go modules, into a cache outside the repo, for `make test-engine`:
#   the Pulumi CLI, a Python language host (the project's own, tools/testkit/engine/pulumi-language-python: upstream's
#   module is not served by the proxy), the kubernetes provider, the command provider (or, as the proxy does not
#   serve it, the project's stand-in for command:local:Command), and a container-free Kubernetes control plane
#   (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) driven by kwok/kwokctl; then installs the
#   providers as plugins into $CACHE/pulumi-home, offline; and extracts Istio's own charts and Gateway API's own
#   CRDs from pinned, checksum-verified Go modules (tests/engine/upstream.py). bench/engine-bootstrap.md has the
#   times and the gaps.
#
# Idempotent: each piece has a stamp file holding its pin; a piece whose stamp matches and whose outputs exist is
# reused, a piece whose pin changed is rebuilt. Nothing is downloaded but Go modules from the module proxy.
#
# Usage: tools/testkit/bootstrap-engine.sh [piece ...]      (default: every piece; pieces: see PIECES below)
# Env:   AMBIENT_MESH_ENGINE_CACHE  cache dir (default ~/.cache/ambient-mesh-engine)
#        ENGINE_BUILD_JOBS          go build -p (default 2)
# Then:  source tools/testkit/engine-env.sh
set -euo pipefail

# --- pins: the one place versions live ------------------------------------------------------------------------
PULUMI_VERSION=v3.274.1                                      # github.com/pulumi/pulumi/{pkg,sdk}/v3
K8S_PROVIDER_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199 # github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_PROVIDER_VERSION=4.34.2                                  # what pulumi-kubernetes==4.34.2 asks for
COMMAND_PROVIDER_MODULE_VERSION=v1.2.1                       # github.com/pulumi/pulumi-command/provider
COMMAND_PROVIDER_VERSION=1.2.1                               # what pulumi-command==1.2.1 asks for
KUBERNETES_VERSION=v1.36.3                                   # k8s.io/kubernetes
KUBERNETES_STAGING_VERSION=v0.36.3                           # k8s.io/<staging module>
ETCD_VERSION=v3.6.16                                         # go.etcd.io/etcd/server/v3
KWOK_VERSION=v0.8.0                                          # sigs.k8s.io/kwok
# ----------------------------------------------------------------------------------------------------------------

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${AMBIENT_MESH_ENGINE_CACHE:-$HOME/.cache/ambient-mesh-engine}
BIN=$CACHE/bin
STAMPS=$CACHE/stamps
WORK=$CACHE/work
PLUGINS=$CACHE/plugins
TIMES=$CACHE/times.log
JOBS=${ENGINE_BUILD_JOBS:-2}
PIECES=(pulumi language-python kubernetes-provider command-provider kube-control-plane kubectl etcd kwok plugins
  upstream-charts pilot-discovery helm)
# Pieces whose failure does not fail the bootstrap (the command provider only serves kind mode; helm only the
# side-by-side figure in bench/).
OPTIONAL=(command-provider helm)

TIER=bootstrap-engine
# shellcheck source=tools/testkit/build-lib.sh
source "$REPO_DIR/tools/testkit/build-lib.sh"  # log, die, GO, new_module, piece, kube_module
mkdir -p "$BIN" "$STAMPS" "$WORK" "$PLUGINS"

command -v go >/dev/null || die "Go is not installed: the engine tier builds from Go modules with Go 1.26 or newer (https://go.dev/doc/install); the unit and schema tiers do not need it"

sdk_dir() { go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# --- Pulumi CLI ---------------------------------------------------------------------------------------------
build_pulumi() {
  local dir
  dir=$(new_module pulumi-cli ambient-mesh.local/engine/pulumi-cli 'go 1.26.6')
  cd "$dir"
  # pkg/v3's go.mod: `replace …/sdk/v3 => ../sdk` (local, dropped: sdk/v3 is required at the same version) and
  # the clipboard fork below (repeated: replaces apply only in the main module).
  go mod edit -require="github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" \
    -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" \
    -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
  "${GO[@]}" build -p "$JOBS" -trimpath -tags osusergo,grpcnotrace \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$BIN/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  "$BIN/pulumi" version
}

# --- Python language host -----------------------------------------------------------------------------------
# The upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by
# the module proxy here (403 "This module version is not available" for its version list, for @v3.274.1 and for
# pseudo-versions), so this builds the project's own minimal host from tools/testkit/engine/pulumi-language-python
# against sdk/v3 at the CLI's version. It runs the program through the SDK's own pulumi-language-python-exec.
LANGHOST_SRC=$REPO_DIR/tools/testkit/engine/pulumi-language-python
langhost_pin() { printf '%s+%s' "$PULUMI_VERSION" "$(cat "$LANGHOST_SRC"/*.go | sha256sum | cut -c1-12)"; }
build_language_python() {
  local dir sdk
  dir=$(new_module language-python ambient-mesh.local/engine/pulumi-language-python 'go 1.26.6')
  cp "$LANGHOST_SRC"/*.go "$dir/"
  cd "$dir"
  go mod edit -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/pulumi-language-python" .
  sdk=$(sdk_dir)
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
}

# --- kubernetes provider ------------------------------------------------------------------------------------
build_kubernetes_provider() {
  local dir src mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  dir=$(new_module kubernetes-provider ambient-mesh.local/engine/pulumi-resource-kubernetes 'go 1.24.7')
  cd "$dir"
  # provider/go.mod replaces sdk/v4 with ../sdk (local, dropped): its own require line (sdk/v4 v4.24.0, served by
  # the proxy) is used instead. It has no non-local replace to repeat.
  go mod edit -require="$mod@$K8S_PROVIDER_MODULE_VERSION"
  src=$(go mod download -json "$mod@$K8S_PROVIDER_MODULE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  # The release build embeds schema-embed.json (the committed schema.json with its version set) and
  # terraform-mapping-embed.json (the committed mapping, compacted); both are made here the same way.
  python3 - "$src/cmd/pulumi-resource-kubernetes" "$dir" "$K8S_PROVIDER_VERSION" <<'PY'
import json, sys
src, dst, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json", encoding="utf-8"))
schema["version"] = version
json.dump(schema, open(f"{dst}/schema-embed.json", "w", encoding="utf-8"), separators=(",", ":"))
mapping = json.load(open(f"{src}/terraform-mapping.json", encoding="utf-8"))
json.dump(mapping, open(f"{dst}/terraform-mapping-embed.json", "w", encoding="utf-8"), separators=(",", ":"))
PY
  cat >main.go <<'GO'
// The kubernetes resource provider, serving the module's committed schema (see bootstrap-engine.sh).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var mapping []byte

func main() { provider.Serve("kubernetes", version.Version, schema, mapping) }
GO
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w -X $mod/pkg/version.Version=$K8S_PROVIDER_VERSION" \
    -o "$BIN/pulumi-resource-kubernetes" .
}

# --- command provider ---------------------------------------------------------------------------------------
# The real provider when the module proxy serves it; otherwise (the case here: 403 "This module version is not
# available" for github.com/pulumi/pulumi-command/provider, any version) the project's own stand-in for
# command:local:Command from tools/testkit/engine/pulumi-resource-command, marked by bin/pulumi-resource-command.STANDIN.
COMMAND_STANDIN_SRC=$REPO_DIR/tools/testkit/engine/pulumi-resource-command
command_pin() {
  printf '%s=%s+standin-%s' "$COMMAND_PROVIDER_MODULE_VERSION" "$COMMAND_PROVIDER_VERSION" \
    "$(cat "$COMMAND_STANDIN_SRC"/*.go | sha256sum | cut -c1-12)"
}
build_command_provider() {
  local dir mod=github.com/pulumi/pulumi-command/provider
  dir=$(new_module command-provider ambient-mesh.local/engine/pulumi-resource-command 'go 1.26.6')
  cd "$dir"
  rm -f "$BIN/pulumi-resource-command.STANDIN"
  if go mod download -json "$mod@$COMMAND_PROVIDER_MODULE_VERSION" >download.json 2>&1; then
    go mod edit -require="$mod@$COMMAND_PROVIDER_MODULE_VERSION"
    "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w -X $mod/pkg/version.Version=$COMMAND_PROVIDER_VERSION" \
      -o "$BIN/pulumi-resource-command" "$mod/cmd/pulumi-resource-command"
    return 0
  fi
  log "command-provider: the module proxy does not serve $mod@$COMMAND_PROVIDER_MODULE_VERSION:"
  sed 's/^/    /' download.json >&2
  log "command-provider: building the project's stand-in (command:local:Command only) instead"
  cp "$COMMAND_STANDIN_SRC"/*.go .
  go mod edit -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w -X main.Version=$COMMAND_PROVIDER_VERSION" \
    -o "$BIN/pulumi-resource-command" .
  {
    echo "stand-in built from tools/testkit/engine/pulumi-resource-command: the real provider could not be had:"
    echo "go mod download $mod@$COMMAND_PROVIDER_MODULE_VERSION ->"
    cat download.json
  } >"$BIN/pulumi-resource-command.STANDIN"
}


build_kube_control_plane() {
  local ldflags m
  cd "$(new_module kube ambient-mesh.local/engine/kube 'go 1.26.0')"
  ldflags=$(kube_module)
  for m in kube-apiserver kube-controller-manager kube-scheduler; do
    log "kube-control-plane: $m"
    "${GO[@]}" build -p "$JOBS" -trimpath -tags providerless -ldflags "$ldflags" -o "$BIN/$m" "k8s.io/kubernetes/cmd/$m"
  done
  "$BIN/kube-apiserver" --version
}

# kubectl for the engine tests' checks, so that the tier does not depend on one on PATH.
build_kubectl() {
  local ldflags
  cd "$(new_module kubectl ambient-mesh.local/engine/kube 'go 1.26.0')"
  ldflags=$(kube_module)
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl
  "$BIN/kubectl" version --client
}

# --- etcd ---------------------------------------------------------------------------------------------------
build_etcd() {
  local dir m
  dir=$(new_module etcd ambient-mesh.local/engine/etcd 'go 1.26.0')
  cd "$dir"
  # server/go.mod replaces its sibling modules with ../<dir>; they are published at the same version.
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    go mod edit -require="go.etcd.io/etcd/$m@$ETCD_VERSION"
  done
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  "$BIN/etcd" --version
}

# --- kwok ---------------------------------------------------------------------------------------------------
build_kwok() {
  local dir ldflags m
  dir=$(new_module kwok ambient-mesh.local/engine/kwok 'go 1.26.0')
  cd "$dir"
  go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION"
  ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
  ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}"
  for m in kwok kwokctl; do
    "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$BIN/$m" "sigs.k8s.io/kwok/cmd/$m"
  done
  "$BIN/kwokctl" --version
}

# --- offline plugin install into PULUMI_HOME ----------------------------------------------------------------
plugins_pin() {
  local p out=""
  for p in pulumi pulumi-resource-kubernetes pulumi-resource-command; do
    if [[ -f $BIN/$p ]]; then out+="$p=$(sha256sum "$BIN/$p" | cut -c1-12);"; fi
  done
  printf '%s' "$out"
}
install_plugins() {
  export PULUMI_HOME=$CACHE/pulumi-home PULUMI_SKIP_UPDATE_CHECK=true
  local p=$PLUGINS/$1-v$2
  mkdir -p "$p"
  # `--file` takes a tarball or a binary; a tarball keeps the plugin's own name.
  cp "$BIN/pulumi-resource-$1" "$p/pulumi-resource-$1"
  tar -C "$p" -czf "$PLUGINS/$1-v$2.tar.gz" "pulumi-resource-$1"
  "$BIN/pulumi" plugin install resource "$1" "v$2" --file "$PLUGINS/$1-v$2.tar.gz" --reinstall
  rm -rf "$p" "$PLUGINS/$1-v$2.tar.gz"
}
build_plugins() {
  [[ -x $BIN/pulumi ]] || die "no pulumi CLI"
  if [[ -x $BIN/pulumi-resource-kubernetes ]]; then install_plugins kubernetes "$K8S_PROVIDER_VERSION"; fi
  if [[ -x $BIN/pulumi-resource-command ]]; then install_plugins command "$COMMAND_PROVIDER_VERSION"; fi
  PULUMI_HOME=$CACHE/pulumi-home "$BIN/pulumi" plugin ls
}

# --- Istio's charts and Gateway API's CRDs -------------------------------------------------------------------
# istio.io/istio (snapshots standing in for the pinned release) and sigs.k8s.io/gateway-api, pinned by version and
# go.sum hash in tests/engine/upstream.py, which also re-hashes each zip and extracts into $CACHE/upstream.
UPSTREAM=$REPO_DIR/tests/engine/upstream.py
upstream_pin() { sha256sum "$UPSTREAM" | cut -c1-12; }
build_upstream_charts() {
  AMBIENT_MESH_ENGINE_CACHE=$CACHE python3 "$UPSTREAM" fetch
}

# --- istiod (pilot-discovery) -------------------------------------------------------------------------------
# Istio's control plane from the same istio.io/istio snapshot as the charts (the stack's pin, 1.31.1): the engine
# tests run it out of cluster against kwok as the real Gateway controller and the real injection and validation
# webhook server (tests/engine/istiod.py). istio.io/istio has no replace directives.
ISTIOD_LABEL=1.31.1
istiod_module() { AMBIENT_MESH_ENGINE_CACHE=$CACHE python3 "$UPSTREAM" istio-module "$ISTIOD_LABEL"; }
build_pilot_discovery() {
  local module version gomod ldflags
  read -r module version < <(istiod_module)
  cd "$(new_module pilot-discovery ambient-mesh.local/engine/pilot 'go 1.26.0')"
  gomod=$(go mod download -json "$module@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  { printf 'module ambient-mesh.local/engine/pilot\n\n'; grep -E '^(go|godebug) ' "$gomod"; } >go.mod
  go mod edit -require="$module@$version"
  # Istio's own build stamps pkg/version; here: the label the charts carry, and the snapshot it really is.
  ldflags="-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIOD_LABEL"
  ldflags+=" -X istio.io/istio/pkg/version.buildGitRevision=${version##*-}"
  ldflags+=" -X istio.io/istio/pkg/version.buildTag=$version -X istio.io/istio/pkg/version.buildStatus=Clean"
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$BIN/pilot-discovery" \
    istio.io/istio/pilot/cmd/pilot-discovery
  "$BIN/pilot-discovery" version --short
}

# --- helm CLI (bench/engine_side_by_side.py only) ------------------------------------------------------------
# The Helm the kubernetes provider embeds (its go.mod: helm.sh/helm/v3 v3.18.6), as a CLI: the plain
# `helm install --wait` the stack is compared with.
HELM_VERSION=v3.18.6
build_helm() {
  cd "$(new_module helm ambient-mesh.local/engine/helm 'go 1.24.0')"
  go mod edit -require="helm.sh/helm/v3@$HELM_VERSION"
  "${GO[@]}" build -p "$JOBS" -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    -o "$BIN/helm" helm.sh/helm/v3/cmd/helm
  "$BIN/helm" version --short
}

run_piece() {
  case $1 in
    pulumi) piece pulumi "$PULUMI_VERSION" build_pulumi "$BIN/pulumi" ;;
    language-python) piece language-python "$(langhost_pin)" build_language_python \
      "$BIN/pulumi-language-python" "$BIN/pulumi-language-python-exec" ;;
    kubernetes-provider) piece kubernetes-provider "$K8S_PROVIDER_MODULE_VERSION=$K8S_PROVIDER_VERSION" \
      build_kubernetes_provider "$BIN/pulumi-resource-kubernetes" ;;
    command-provider) piece command-provider "$(command_pin)" build_command_provider "$BIN/pulumi-resource-command" ;;
    kube-control-plane) piece kube-control-plane "$KUBERNETES_VERSION+$KUBERNETES_STAGING_VERSION" \
      build_kube_control_plane "$BIN/kube-apiserver" "$BIN/kube-controller-manager" "$BIN/kube-scheduler" ;;
    kubectl) piece kubectl "$KUBERNETES_VERSION+$KUBERNETES_STAGING_VERSION" build_kubectl "$BIN/kubectl" ;;
    etcd) piece etcd "$ETCD_VERSION" build_etcd "$BIN/etcd" ;;
    kwok) piece kwok "$KWOK_VERSION+$KUBERNETES_VERSION" build_kwok "$BIN/kwok" "$BIN/kwokctl" ;;
    plugins) piece plugins "$(plugins_pin)" build_plugins "$CACHE/pulumi-home/plugins" ;;
    upstream-charts)
      local outputs=()
      mapfile -t outputs < <(AMBIENT_MESH_ENGINE_CACHE=$CACHE python3 "$UPSTREAM" outputs)
      piece upstream-charts "$(upstream_pin)" build_upstream_charts "${outputs[@]}" ;;
    helm) piece helm "$HELM_VERSION" build_helm "$BIN/helm" ;;
    pilot-discovery) piece pilot-discovery "$(istiod_module | tr ' ' @)=$ISTIOD_LABEL" build_pilot_discovery \
      "$BIN/pilot-discovery" ;;
    *) die "unknown piece '$1' (pieces: ${PIECES[*]})" ;;
  esac
}

TOTAL_START=$SECONDS
for name in "${@:-${PIECES[@]}}"; do run_piece "$name"; done
log "total $((SECONDS - TOTAL_START))s; per-piece times in $TIMES"

cat <<EOF

# Engine tier in $CACHE. To use it in a shell:
#   export AMBIENT_MESH_ENGINE_CACHE=$CACHE; source tools/testkit/engine-env.sh
# which sets:
export PATH="$BIN:\$PATH"
export PULUMI_HOME="$CACHE/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true PULUMI_IGNORE_AMBIENT_PLUGINS=true
export PULUMI_CONFIG_PASSPHRASE=""
EOF
if [[ -f $BIN/pulumi-resource-command.STANDIN ]]; then
  log "note: bin/pulumi-resource-command is the project's stand-in (see bin/pulumi-resource-command.STANDIN)"
fi
if [[ ${#FAILED[@]} -gt 0 ]]; then
  log "pieces that could not be built: ${FAILED[*]}"
  for name in "${FAILED[@]}"; do
    [[ " ${OPTIONAL[*]} " == *" $name "* ]] || exit 1
  done
  log "(optional pieces only: the engine tier works without them, see the notes above)"
fi
