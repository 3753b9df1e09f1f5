#!/usr/bin/env bash
# The kind tier's application images, built offline into the local Docker under the names the stack preloads:
# Bookinfo's productpage, details, ratings and reviews v1/v2/v3 from the sources in the Go module istio.io/istio at
# $ISTIO_MODULE_VERSION, and the tests' curl client. Every image starts FROM $BASE_IMAGE (debian-base.sh); no
# container registry is reached. Language packages are fetched on the host (whose pip, npm and curl trust the
# machine's CA) into each build context, and installed offline inside the build: no CA enters an image layer.
# Idempotent: each image carries ambient-mesh.pin, a hash of its inputs (module version, tag, build args, this
# script, its Dockerfile directory, the base image); an image whose pin matches is kept.
# Usage: tools/testkit/kind/build-apps.sh            Env: KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind)
set -euo pipefail

# --- pins --------------------------------------------------------------------------------------------------------
ISTIO_MODULE=istio.io/istio
ISTIO_MODULE_VERSION=v0.0.0-20260827124520-eed52ebb66ad   # stand-in for the Istio 1.31.1 release's sources
BOOKINFO_TAG=1.20.3
BOOKINFO_HUB=docker.io/istio
CURL_IMAGE=docker.io/curlimages/curl
CURL_TAG=8.16.0
LIBERTY_VERSION=24.0.0.12                                  # as upstream's reviews Dockerfile (open-liberty:24.0.0.12)
LIBERTY_SHA1=c98874d1c28a5814c99573563f944cacbd6dd554
JAXRS_API_JAR=javax/ws/rs/javax.ws.rs-api/2.0/javax.ws.rs-api-2.0.jar
JAXRS_API_SHA1=61f0983eb190954ccdede31e786a9e0bd9767c4a
JSON_API_JAR=javax/json/javax.json-api/1.0/javax.json-api-1.0.jar
JSON_API_SHA1=0a74939ecbf7294b40accb4048929577f5ddcee2
MAVEN_CENTRAL=${MAVEN_CENTRAL:-https://repo1.maven.org/maven2}
PY_TARGET=(--python-version 3.13 --implementation cp --abi cp313 --abi abi3 --abi none
           --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform linux_x86_64 --platform any)          # Debian trixie's python3 (3.13) on amd64
# -----------------------------------------------------------------------------------------------------------------

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APPS=$HERE/apps
BASE_IMAGE=${DEBIAN_BASE_IMAGE:-ambient-mesh.local/debian:trixie}
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
WORK=$CACHE/work/apps
DL=$CACHE/downloads
export DOCKER_BUILDKIT=0
export PATH=$PATH:/usr/local/go/bin
log() { printf '[build-apps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: line $LINENO: $BASH_COMMAND failed"' ERR
mkdir -p "$WORK" "$DL"

[[ $(uname -m) == x86_64 ]] || die "only amd64 is set up (wheel platform tags, Debian packages)"
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || DEBIAN_BASE_IMAGE=$BASE_IMAGE "$HERE/debian-base.sh"
BASE_ID=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
SELF_SUM=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

# pin APP IMAGE ARGS...: hash of everything the image is made from.
pin() {
  local app=$1; shift
  { echo "$ISTIO_MODULE@$ISTIO_MODULE_VERSION"; echo "$*"; echo "$SELF_SUM"; echo "$BASE_ID"
    (cd "$APPS/$app" && find . -type f -print0 | sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-20
}
current_pin() { docker image inspect -f '{{index .Config.Labels "ambient-mesh.pin"}}' "$1" 2>/dev/null || true; }

SRC=
bookinfo_src() {  # the module's samples/bookinfo/src, downloaded into the Go module cache once
  [[ -n $SRC ]] && return 0
  local tmp dir
  tmp=$(mktemp -d)
  dir=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$ISTIO_MODULE@$ISTIO_MODULE_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$tmp"
  [[ -d $dir/samples/bookinfo/src ]] || die "no samples/bookinfo/src in $ISTIO_MODULE@$ISTIO_MODULE_VERSION ($dir)"
  SRC=$dir/samples/bookinfo/src
}

fetch_maven() {  # PATH SHA1 DEST: a Maven Central file, kept in the download cache and checked by its SHA-1
  local path=$1 sha1=$2 dest=$3 f=$DL/${1##*/}
  if [[ ! -f $f ]] || ! echo "$sha1  $f" | sha1sum -c --quiet - >/dev/null 2>&1; then
    log "download $path"
    nice curl -sSfL --retry 3 -o "$f.part" "$MAVEN_CENTRAL/$path"
    echo "$sha1  $f.part" | sha1sum -c --quiet - >/dev/null || die "SHA-1 mismatch for $path"
    mv "$f.part" "$f"
  fi
  ln -f "$f" "$dest" 2>/dev/null || cp "$f" "$dest"
}

# context APP: a fresh build context, the app's Dockerfile dir plus what prepare_APP puts beside it.
context() {
  local ctx=$WORK/$1
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp -r "$APPS/$1/." "$ctx/"
  echo "$ctx"
}

prepare_productpage() {
  local ctx=$1 s=$SRC/productpage
  cp -r "$s/productpage.py" "$s/requirements.txt" "$s/test-requirements.txt" "$s/templates" "$s/static" "$ctx/"
  mkdir -p "$ctx/tests/unit" && cp "$s"/tests/unit/* "$ctx/tests/unit/"
  # The two pin sets disagree on certifi/requests/idna, so each is fetched on its own, as upstream installs them.
  mkdir -p "$DL/wheels"
  local r
  for r in requirements test-requirements; do
    nice pip download -q --disable-pip-version-check --no-deps --require-hashes -r "$s/$r.txt" \
      -d "$DL/wheels" "${PY_TARGET[@]}" >&2
  done
  mkdir -p "$ctx/wheels" && cp "$DL"/wheels/* "$ctx/wheels/"
}
prepare_details() { cp "$SRC/details/details.rb" "$1/"; }
prepare_ratings() {
  local ctx=$1
  cp "$SRC/ratings/package.json" "$SRC/ratings/ratings.js" "$ctx/"
  (cd "$ctx" && nice npm install -q --omit=dev --no-audit --no-fund --ignore-scripts --no-package-lock >&2)
  [[ -d $ctx/node_modules/httpdispatcher ]] || die "npm install left no node_modules/httpdispatcher"
}
prepare_reviews() {
  local ctx=$1
  cp -r "$SRC/reviews/reviews-application" "$SRC/reviews/reviews-wlpcfg" "$ctx/"
  mkdir -p "$ctx/lib"
  fetch_maven "io/openliberty/openliberty-runtime/$LIBERTY_VERSION/openliberty-runtime-$LIBERTY_VERSION.zip" \
    "$LIBERTY_SHA1" "$ctx/lib/openliberty-runtime.zip"
  fetch_maven "$JAXRS_API_JAR" "$JAXRS_API_SHA1" "$ctx/lib/javax.ws.rs-api.jar"
  fetch_maven "$JSON_API_JAR" "$JSON_API_SHA1" "$ctx/lib/javax.json-api.jar"
}
prepare_curl() { :; }

declare -A SECONDS_OF=() RESULT_OF=()
FAILED=0
PREPARED=

# build APP IMAGE NOTE [--build-arg K=V ...]: build IMAGE from apps/APP unless its pin matches.
build() {
  local app=$1 image=$2 note=$3; shift 3
  local want have ctx start logf old source=
  [[ $app == curl ]] || source="$ISTIO_MODULE@$ISTIO_MODULE_VERSION samples/bookinfo/src/$app"
  want=$(pin "$app" "$image" "$@")
  have=$(current_pin "$image")
  if [[ $have == "$want" ]]; then
    log "$image up to date (pin $want)"; RESULT_OF[$image]=kept; SECONDS_OF[$image]=0; return 0
  fi
  start=$SECONDS
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  log "build $image (pin $want${have:+, was $have})"
  if [[ " $PREPARED " != *" $app "* ]]; then
    bookinfo_src
    ctx=$(context "$app")
    "prepare_$app" "$ctx"   # a failure here (download, copy) stops the script
    PREPARED+=" $app"
  fi
  ctx=$WORK/$app
  logf=$WORK/$app-${image##*/}.log
  logf=${logf//:/_}
  if ! nice docker build --cpu-shares 512 --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@" \
        --label "ambient-mesh.pin=$want" --label "ambient-mesh.note=$note" \
        ${source:+--label "ambient-mesh.source=$source"} \
        -t "$image" "$ctx" >"$logf" 2>&1; then
    tail -25 "$logf" >&2
    log "FAILED $image (log: $logf)"; RESULT_OF[$image]=failed; FAILED=1; return 0
  fi
  SECONDS_OF[$image]=$((SECONDS - start)); RESULT_OF[$image]=built
  # The image this one replaces, now untagged: removed unless something still uses it.
  [[ -z $old || $old == "$(docker image inspect -f '{{.Id}}' "$image")" ]] || docker rmi "$old" >/dev/null 2>&1 || true
  log "built $image in ${SECONDS_OF[$image]}s"
}

B=$BOOKINFO_HUB/examples-bookinfo
build productpage "$B-productpage-v1:$BOOKINFO_TAG" \
  "real productpage.py; Debian trixie python3 instead of python:3.13.3-slim; PyPI wheels pinned by upstream's hashes"
build details "$B-details-v1:$BOOKINFO_TAG" \
  "real details.rb; Debian trixie ruby and ruby-webrick instead of ruby:3.4.3-slim and the webrick gem" \
  --build-arg service_version=v1
build ratings "$B-ratings-v1:$BOOKINFO_TAG" \
  "real ratings.js; Debian trixie nodejs instead of node:23.11-slim; npm packages from package.json" \
  --build-arg service_version=v1
reviews_note="real reviews WAR compiled with Debian's javac (no Gradle); Open Liberty $LIBERTY_VERSION (Maven Central, minified) on Debian's OpenJDK instead of open-liberty:24.0.0.12-kernel-slim-java17-openj9"
build reviews "$B-reviews-v1:$BOOKINFO_TAG" "$reviews_note" --build-arg service_version=v1
build reviews "$B-reviews-v2:$BOOKINFO_TAG" "$reviews_note" \
  --build-arg service_version=v2 --build-arg enable_ratings=true
build reviews "$B-reviews-v3:$BOOKINFO_TAG" "$reviews_note" \
  --build-arg service_version=v3 --build-arg enable_ratings=true --build-arg star_color=red

# curl: the note names the curl that is really inside, read off the image once it is built.
curl_ref=$CURL_IMAGE:$CURL_TAG
build curl "$curl_ref" "Debian trixie's curl package, not curl $CURL_TAG"
if [[ ${RESULT_OF[$curl_ref]:-} == built ]]; then
  v=$(docker run --rm --entrypoint dpkg-query "$curl_ref" -W -f '${Version}' curl)
  echo "FROM $curl_ref" | docker build -q --label "ambient-mesh.note=curl $v from Debian trixie, not curl $CURL_TAG" \
    -t "$curl_ref" - >>"$WORK/curl-label.log" 2>&1 || { log "FAILED labelling $curl_ref"; RESULT_OF[$curl_ref]=failed; FAILED=1; }
fi

log "summary (image, result, build seconds, stand-in):"
for image in "$B-productpage-v1:$BOOKINFO_TAG" "$B-details-v1:$BOOKINFO_TAG" "$B-ratings-v1:$BOOKINFO_TAG" \
             "$B-reviews-v1:$BOOKINFO_TAG" "$B-reviews-v2:$BOOKINFO_TAG" "$B-reviews-v3:$BOOKINFO_TAG" "$curl_ref"; do
  standin=$(docker image inspect -f '{{index .Config.Labels "ambient-mesh.standin"}}' "$image" 2>/dev/null || true)
  log "  $image  ${RESULT_OF[$image]:-?}  ${SECONDS_OF[$image]:--}s  ${standin:+STAND-IN: $standin}"
done
(( FAILED == 0 )) || die "some images failed"
