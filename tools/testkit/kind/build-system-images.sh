#!/usr/bin/env bash
# The kind tier's system images: everything kind v0.33.0 and kubeadm v1.36.3 put on a node besides the Kubernetes
# component images, built offline (Go modules from the module proxy, Debian packages, pause.c from the
# k8s.io/kubernetes module; no container registry) under the exact names the node expects:
#   etcd     registry.k8s.io/etcd:3.6.8-0              kubeadm's DefaultEtcdVersion (etcd, etcdctl, etcdutl)
#   coredns  registry.k8s.io/coredns/coredns:v1.14.2   kubeadm's CoreDNSVersion; coremain + the Corefile's plugins
#   pause    registry.k8s.io/pause:3.10.2 and :3.10    kubeadm's PauseVersion; kind's containerd sandbox_image
#   kindnetd docker.io/kindest/kindnetd:...            STAND-IN (system/kindnetd-standin): kindnetd is not served
#   local-path-provisioner / local-path-helper         docker.io/kindest/..., rancher v0.0.33 (kind pins v0.0.34)
# Each image is also saved, one image per archive, to $CACHE/images/<name>.tar with fully qualified RepoTags
# (docker.io/kindest/..., not the familiar kindest/... docker save writes): kind's node-image build matches the
# RepoTags of an archive's first manifest.json entry, as strings, against fully qualified names.
#
# Idempotent: an image whose ambient-mesh.pin label (version + hash of its build files and build function)
# matches is kept, and an archive whose .pin file matches is kept. Every image's binary is run (--version or the
# like) on each invocation.
# Usage: tools/testkit/kind/build-system-images.sh [name ...]   (names: see IMAGES below; default all)
#        tools/testkit/kind/build-system-images.sh --list       (the image references, one a line)
# Env:   KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind), KIND_BUILD_JOBS (go build -p, default 2)
set -euo pipefail

# --- pins ----------------------------------------------------------------------------------------------------------
KIND_VERSION=v0.33.0                          # sigs.k8s.io/kind: the node manifests' image names are checked in it
KUBERNETES_VERSION=v1.36.3                    # k8s.io/kubernetes: kubeadm's pins, and build/pause/linux/pause.c
ETCD_VERSION=v3.6.8                           # go.etcd.io/etcd/{server,etcdctl,etcdutl}/v3 (kubeadm: 3.6.8-0)
ETCD_IMAGE=registry.k8s.io/etcd:3.6.8-0
COREDNS_VERSION=v1.14.2                       # github.com/coredns/coredns
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:v1.14.2
PAUSE_TAGS=(3.10.2 3.10)                      # kubeadm's PauseVersion; kind's containerd config.toml sandbox_image
PAUSE_REPO=registry.k8s.io/pause
KINDNETD_IMAGE=docker.io/kindest/kindnetd:v20260820-69b56db7
LOCAL_PATH_VERSION=v0.0.33                    # github.com/rancher/local-path-provisioner (kind's image: v0.0.34)
LOCAL_PATH_KIND_VERSION=v0.0.34               # what kind's images/local-path-provisioner/Makefile builds
LOCAL_PATH_PROVISIONER_IMAGE=docker.io/kindest/local-path-provisioner:v20260820-69b56db7
LOCAL_PATH_HELPER_IMAGE=docker.io/kindest/local-path-helper:v20260131-7181c60a
DEBIAN_BASE_IMAGE=ambient-mesh.local/debian:trixie
# ---------------------------------------------------------------------------------------------------------------

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYS=$HERE/system
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
WORK=$CACHE/work/system
ARCHIVES=$CACHE/images
TIMES=$CACHE/times.log
JOBS=${KIND_BUILD_JOBS:-2}
IMAGES=(etcd coredns pause kindnetd local-path-provisioner local-path-helper)

export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=${GOTOOLCHAIN:-local} DOCKER_BUILDKIT=0
mkdir -p "$WORK" "$ARCHIVES"

log() { printf '[system-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
GOBUILD=(nice -n 10 go build -p "$JOBS" -trimpath)

for tool in go docker python3 cc setcap tar; do
  command -v "$tool" >/dev/null || die "$tool is needed (cc: gcc with a static libc, for pause; setcap: libcap2-bin)"
done

# The module's directory in the module cache (downloads it).
mod_dir() {
  local out
  out=$(go mod download -json "$1") || die "go mod download $1: $(sed -n 's/^\t"Error": //p' <<<"$out")"
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$out"
}

# A fresh wrapper module: $1 = name under $WORK, $2 = module path, $3 = go version; prints its directory.
new_module() {
  local dir=$WORK/$1
  rm -rf "$dir"
  mkdir -p "$dir/ctx"
  printf 'module %s\n\ngo %s\n' "$2" "$3" >"$dir/go.mod"
  printf '%s\n' "$dir"
}

# --- the pins above, checked against the sources that set them ---------------------------------------------
check_pins() {
  local k8s kind consts nodeimage
  k8s=$(mod_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
  kind=$(mod_dir "sigs.k8s.io/kind@$KIND_VERSION")
  consts=$k8s/cmd/kubeadm/app/constants/constants.go
  nodeimage=$kind/pkg/build/nodeimage
  expect() { grep -qF -- "$2" "$1" || die "pin check: $(basename "$1") does not say '$2' (update the pins)"; }
  expect "$consts" "DefaultEtcdVersion = \"${ETCD_IMAGE##*:}\""
  expect "$consts" "CoreDNSVersion = \"${COREDNS_IMAGE##*:}\""
  expect "$consts" "PauseVersion = \"${PAUSE_TAGS[0]}\""
  expect "$kind/images/base/files/etc/containerd/config.toml" "sandbox_image = \"$PAUSE_REPO:${PAUSE_TAGS[1]}\""
  expect "$nodeimage/const_cni.go" "\"$KINDNETD_IMAGE\""
  expect "$nodeimage/const_storage.go" "\"$LOCAL_PATH_PROVISIONER_IMAGE\""
  expect "$nodeimage/const_storage.go" "\"$LOCAL_PATH_HELPER_IMAGE\""
  expect "$kind/images/local-path-provisioner/Makefile" "VERSION=$LOCAL_PATH_KIND_VERSION"
  [[ -f $k8s/build/pause/linux/pause.c ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$KUBERNETES_VERSION"
  log "pins match kubeadm $KUBERNETES_VERSION and kind $KIND_VERSION"
}

# --- images --------------------------------------------------------------------------------------------------
# Each build_<name> gets the wrapper/work dir in $dir and builds the image(s) with docker_build.

# docker_build CONTEXT DOCKERFILE PIN TAG [LABEL=VALUE ...]
docker_build() {
  local ctx=$1 dockerfile=$2 pin=$3 tag=$4 args=() l
  shift 4
  for l in "$@"; do args+=(--label "$l"); done
  # -q: only errors; the legacy builder's deprecation notice is dropped.
  if ! docker build -q -f "$dockerfile" --label "ambient-mesh.pin=$pin" "${args[@]}" -t "$tag" "$ctx" \
    >/dev/null 2>"$ctx.build.log"; then
    cat "$ctx.build.log" >&2
    return 1
  fi
}

build_etcd() {
  local m ldflags
  cd "$(new_module etcd ambient-mesh.local/kind/etcd 1.24.0)"
  # server/, etcdctl/ and etcdutl/ replace their sibling modules with ../<dir>; all are published at this version.
  for m in server/v3 etcdctl/v3 etcdutl/v3 api/v3 client/pkg/v3 client/v3 pkg/v3; do
    go mod edit -require="go.etcd.io/etcd/$m@$ETCD_VERSION"
  done
  ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  for m in server etcdctl etcdutl; do
    local out=etcd
    [[ $m == server ]] || out=$m
    log "etcd: $out"
    "${GOBUILD[@]}" -ldflags "$ldflags" -o "ctx/$out" "go.etcd.io/etcd/$m/v3"
  done
  docker_build ctx "$SYS/etcd/Dockerfile" "$PIN" "$ETCD_IMAGE" \
    "ambient-mesh.source=go.etcd.io/etcd/server/v3@$ETCD_VERSION (+etcdctl/v3, etcdutl/v3)"
}

build_coredns() {
  local src rootfs
  cd "$(new_module coredns ambient-mesh.local/kind/coredns 1.25.0)"
  cp "$SYS/coredns/main.go" .
  go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION"
  "${GOBUILD[@]}" -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o coredns .
  src=$(mod_dir "github.com/coredns/coredns@$COREDNS_VERSION")
  rootfs=$PWD/rootfs
  mkdir -p "$rootfs/etc"
  install -m 0755 coredns "$rootfs/coredns"
  setcap cap_net_bind_service=+ep "$rootfs/coredns"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  install -m 0644 "$src/LICENSE" "$rootfs/LICENSE"
  tar --xattrs --xattrs-include=security.capability --owner=0 --group=0 -C "$rootfs" -cf ctx/rootfs.tar .
  docker_build ctx "$SYS/coredns/Dockerfile" "$PIN" "$COREDNS_IMAGE" \
    "ambient-mesh.source=github.com/coredns/coredns@$COREDNS_VERSION" \
    "ambient-mesh.note=CoreDNS's own coremain built with only the plugins kubeadm's default Corefile uses (errors health ready kubernetes prometheus forward cache loop reload loadbalance) plus log, in place of the full plugin.cfg list: the customisation plugin.cfg exists for"
}

build_pause() {
  local src tag dir=$PWD
  cd "$(new_module pause ambient-mesh.local/kind/pause 1.26)"
  src=$(mod_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")/build/pause/linux/pause.c
  for tag in "${PAUSE_TAGS[@]}"; do
    mkdir -p "ctx-$tag"
    # build/pause/Makefile's flags; its VERSION is v$(TAG)-$(git describe): here the Kubernetes tag.
    cc -Os -Wall -Werror -static "-DVERSION=v$tag-$KUBERNETES_VERSION" -o "ctx-$tag/pause" "$src"
    docker_build "ctx-$tag" "$SYS/pause/Dockerfile" "$PIN" "$PAUSE_REPO:$tag" \
      "ambient-mesh.source=k8s.io/kubernetes@$KUBERNETES_VERSION build/pause/linux/pause.c (TAG $tag)"
  done
  cd "$dir"
}

build_kindnetd() {
  local tag=${KINDNETD_IMAGE##*:}
  cd "$(new_module kindnetd ambient-mesh.local/kind/kindnetd-standin 1.26)"
  cp "$SYS/kindnetd-standin/main.go" .
  "${GOBUILD[@]}" -ldflags "-s -w -X main.Version=$tag" -o ctx/kindnetd .
  docker_build ctx "$SYS/kindnetd-standin/Dockerfile" "$PIN" "$KINDNETD_IMAGE" \
    "ambient-mesh.source=tools/testkit/kind/system/kindnetd-standin" \
    "ambient-mesh.standin=kindnetd's source is not served by the Go module proxy: sigs.k8s.io/kind/images/kindnetd is a nested module left out of the sigs.k8s.io/kind@$KIND_VERSION zip, and the proxy answers 403 for it (pseudo-version of commit 69b56db7, the image tag's commit) and 404 for its version list. The stand-in writes kindnetd's ptp/host-local/portmap conflist, routes the other nodes' podCIDRs via their InternalIPs and masquerades traffic leaving the pod subnets; it enforces no NetworkPolicy."
}

build_local_path_provisioner() {
  local mod=github.com/rancher/local-path-provisioner
  cd "$(new_module local-path-provisioner ambient-mesh.local/kind/local-path-provisioner 1.25.5)"
  go mod edit -require="$mod@$LOCAL_PATH_VERSION"
  # scripts/build's flags: -X main.VERSION=<tag>, static, stripped.
  "${GOBUILD[@]}" -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" -o ctx/local-path-provisioner "$mod"
  docker_build ctx "$SYS/local-path-provisioner/Dockerfile" "$PIN" "$LOCAL_PATH_PROVISIONER_IMAGE" \
    "ambient-mesh.source=$mod@$LOCAL_PATH_VERSION" \
    "ambient-mesh.note=kind $KIND_VERSION builds this image from $LOCAL_PATH_KIND_VERSION, which the module proxy refuses (403, as are v0.0.31, v0.0.32 and pseudo-versions of the v0.0.34 commits); $LOCAL_PATH_VERSION is the nearest version it serves. $LOCAL_PATH_VERSION..$LOCAL_PATH_KIND_VERSION changes provisioner.go's pathPattern handling and StorageClass annotations only (same go.mod); kind's manifest uses neither."
}

build_local_path_helper() {
  cd "$(new_module local-path-helper ambient-mesh.local/kind/local-path-helper 1.26)"
  cp "$SYS/local-path-helper/stage.sh" ctx/
  docker_build ctx "$SYS/local-path-helper/Dockerfile" "$PIN" "$LOCAL_PATH_HELPER_IMAGE" \
    "ambient-mesh.source=Debian trixie bash, coreutils (mkdir, rm) and their libraries, as kind's images/local-path-helper stages them"
}

# name -> images it makes (the first is the one whose label is checked; all are saved and tested)
image_refs() {
  case $1 in
    etcd) echo "$ETCD_IMAGE" ;;
    coredns) echo "$COREDNS_IMAGE" ;;
    pause) local t; for t in "${PAUSE_TAGS[@]}"; do echo "$PAUSE_REPO:$t"; done ;;
    kindnetd) echo "$KINDNETD_IMAGE" ;;
    local-path-provisioner) echo "$LOCAL_PATH_PROVISIONER_IMAGE" ;;
    local-path-helper) echo "$LOCAL_PATH_HELPER_IMAGE" ;;
    *) die "unknown image '$1' (images: ${IMAGES[*]})" ;;
  esac
}
# name -> the version part of its pin, and its build-file dir
image_version() {
  case $1 in
    etcd) echo "go.etcd.io/etcd@$ETCD_VERSION" ;;
    coredns) echo "github.com/coredns/coredns@$COREDNS_VERSION" ;;
    pause) echo "k8s.io/kubernetes@$KUBERNETES_VERSION:${PAUSE_TAGS[*]}" ;;
    kindnetd) echo "standin-for-${KINDNETD_IMAGE##*:}" ;;
    local-path-provisioner) echo "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" ;;
    local-path-helper) echo "debian-trixie-for-${LOCAL_PATH_HELPER_IMAGE##*:}" ;;
  esac
}
image_dir() { case $1 in kindnetd) echo "$SYS/kindnetd-standin" ;; *) echo "$SYS/$1" ;; esac; }

# The pin: version + a hash of the image's build files and of its build function (so a changed recipe rebuilds).
image_pin() {
  local fn=build_${1//-/_} hash
  hash=$( (cd "$(image_dir "$1")" && find . -type f -print0 | sort -z | xargs -0 sha256sum; declare -f "$fn" docker_build) \
    | sha256sum | cut -c1-12)
  printf '%s+%s' "$(image_version "$1")" "$hash"
}

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# The archive name for an image reference.
archive_name() {
  case $1 in
    "$PAUSE_REPO":*) echo "pause-${1##*:}" ;;
    *) local n=${1%:*}; echo "${n##*/}" ;;
  esac
}

# docker save, then manifest.json's RepoTags and repositories rewritten to the fully qualified name
# (docker save writes docker.io images by their familiar name, kindest/kindnetd:TAG).
save_archive() {
  local ref=$1 pin=$2 name id out
  name=$(archive_name "$ref")
  out=$ARCHIVES/$name.tar
  id=$(docker image inspect -f '{{.Id}}' "$ref")
  if [[ -f $out && -f $out.pin && "$(cat "$out.pin")" == "$pin $id" ]]; then
    return 0
  fi
  rm -f "$out" "$out.pin"
  docker save "$ref" -o "$out.tmp"
  python3 - "$out.tmp" "$out" "$ref" <<'PY'
import io, json, sys, tarfile
src, dst, ref = sys.argv[1:]
repo, tag = ref.rsplit(":", 1)
with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
    for m in tin.getmembers():
        data = tin.extractfile(m).read() if m.isfile() else None
        if m.name == "manifest.json":
            manifest = json.loads(data)
            assert len(manifest) == 1, f"{src}: {len(manifest)} images, want 1"
            manifest[0]["RepoTags"] = [ref]
            data = json.dumps(manifest, separators=(",", ":")).encode()
        elif m.name == "repositories":
            (ids,) = json.loads(data).values()
            data = json.dumps({repo: {tag: ids[next(iter(ids))]}}, separators=(",", ":")).encode()
        if data is not None:
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
        else:
            tout.addfile(m)
PY
  rm -f "$out.tmp"
  printf '%s %s\n' "$pin" "$id" >"$out.pin"
  log "saved $ref -> $out ($(du -h "$out" | cut -f1))"
}

# The first line of a command's output, read whole first: `docker run | head -1` fails under pipefail when head
# exits before docker has written everything (docker: "write /dev/stdout: broken pipe").
first_line() { local said; said=$("$@") && printf '%s\n' "${said%%$'\n'*}"; }

# Runs each image's binary; prints its version line(s).
smoke_test() {
  local ref=$1 r=(docker run --rm --network none)
  case $ref in
    "$ETCD_IMAGE")
      # Chained: smoke_test runs as `smoke_test … || …`, where errexit does not apply.
      first_line "${r[@]}" "$ref" etcd --version \
        && first_line "${r[@]}" --entrypoint etcdctl "$ref" version \
        && first_line "${r[@]}" --entrypoint etcdutl "$ref" version ;;
    "$COREDNS_IMAGE")
      first_line "${r[@]}" "$ref" -version
      local plugins p id conf=$WORK/coredns/Corefile.test
      plugins=$("${r[@]}" "$ref" -plugins)
      for p in errors health ready kubernetes prometheus forward cache loop reload loadbalance log; do
        grep -qx "$p" <<<"$plugins" || die "$ref lacks plugin $p"
      done
      # As kubeadm's Deployment runs it (non-root, NET_BIND_SERVICE only, no-new-privileges): binds :53.
      mkdir -p "$(dirname "$conf")"
      printf '.:53 {\n  errors\n  health :8080\n  ready :8181\n  prometheus :9153\n  cache 30\n  reload\n  loadbalance\n  log\n}\n' >"$conf"
      id=$(docker run -d --network none --cap-drop ALL --cap-add NET_BIND_SERVICE --security-opt no-new-privileges \
        --read-only -v "$conf:/etc/coredns/Corefile:ro" "$ref" -conf /etc/coredns/Corefile)
      sleep 3
      p=$(docker inspect -f '{{.State.Status}}' "$id")
      # The log read whole first: `docker logs | grep -q` fails under pipefail when grep stops reading early.
      local said
      said=$(docker logs "$id" 2>&1)
      grep -qx '\.:53' <<<"$said" && [[ $p == running ]] \
        || { echo "$said" >&2; docker rm -f "$id" >/dev/null; die "$ref did not serve :53 as user 65532"; }
      docker rm -f "$id" >/dev/null
      echo "serves :53 as $(docker image inspect -f '{{.Config.User}}' "$ref") with only NET_BIND_SERVICE" ;;
    "$PAUSE_REPO":*) "${r[@]}" "$ref" -v ;;
    "$KINDNETD_IMAGE")
      "${r[@]}" "$ref" /bin/kindnetd -version
      "${r[@]}" "$ref" /bin/kindnetd -print-cni-config 10.244.1.0/24 | python3 -c 'import json,sys; json.load(sys.stdin)'
      "${r[@]}" "$ref" sh -c 'iptables-nft --version; iptables-legacy --version; ip -V' | tr '\n' ' '
      echo ;;
    "$LOCAL_PATH_PROVISIONER_IMAGE") "${r[@]}" "$ref" --version ;;
    "$LOCAL_PATH_HELPER_IMAGE")
      "${r[@]}" "$ref" /bin/sh -c 'set -eu; VOL_DIR=/tmp/v/pvc; mkdir -m 0777 -p "$VOL_DIR"; rm -rf "$VOL_DIR"; echo "sh: $BASH_VERSION, mkdir and rm ok"' ;;
  esac
}

FAILED=()
image() {
  local name=$1 pin refs=() ref current start rc old=() id
  pin=$(image_pin "$name")
  mapfile -t refs < <(image_refs "$name")
  current=ok
  for ref in "${refs[@]}"; do
    [[ "$(label "$ref" ambient-mesh.pin)" == "$pin" ]] || current=
    id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) && old+=("$id")
  done
  if [[ -n $current ]]; then
    log "$name: up to date ($pin)"
  else
    log "$name: building ($pin)"
    start=$SECONDS
    rc=0
    set +e
    (
      set -e
      PIN=$pin
      "build_${name//-/_}"
    )
    rc=$?
    set -e
    if [[ $rc != 0 ]]; then
      log "$name: FAILED after $((SECONDS - start))s"
      printf '%s\tsystem-image %s\tFAILED after %ss\t%s\n' "$(date -u +%FT%TZ)" "$name" "$((SECONDS - start))" "$pin" >>"$TIMES"
      FAILED+=("$name")
      return 0
    fi
    log "$name: built in $((SECONDS - start))s"
    printf '%s\tsystem-image %s\t%ss\t%s\n' "$(date -u +%FT%TZ)" "$name" "$((SECONDS - start))" "$pin" >>"$TIMES"
    # The images this build replaced, once nothing names them.
    for id in "${old[@]}"; do
      [[ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null)" == 0 ]] && docker rmi "$id" >/dev/null 2>&1 || true
    done
  fi
  for ref in "${refs[@]}"; do
    save_archive "$ref" "$pin"
    smoke_test "$ref" | sed "s#^#    $ref: #" >&2 || { log "$name: smoke test of $ref FAILED"; FAILED+=("$name"); }
  done
}

if [[ ${1:-} == --list ]]; then  # every image reference this script makes, one a line (bootstrap-kind.sh reads it)
  for name in "${IMAGES[@]}"; do image_refs "$name"; done
  exit 0
fi
for name in "$@"; do [[ " ${IMAGES[*]} " == *" $name "* ]] || die "unknown image '$name' (images: ${IMAGES[*]})"; done
TOTAL=$SECONDS
check_pins
if [[ -z "$(docker images -q "$DEBIAN_BASE_IMAGE")" ]]; then "$HERE/debian-base.sh"; fi
for name in "${@:-${IMAGES[@]}}"; do image "$name"; done
log "total $((SECONDS - TOTAL))s; archives in $ARCHIVES"
[[ ${#FAILED[@]} == 0 ]] || die "failed: ${FAILED[*]}"
