#!/usr/bin/env bash
# The kind tier's stand-in for Docker Hub: a registry (tools/testkit/kind/registry, distribution's registry built by
# bootstrap-kind.sh's piece `registry`) on http://127.0.0.1:$PORT, storing under $CACHE/registry/data so pushed
# images survive restarts. The daemon tools/testkit/kind/docker.sh starts lists it as its docker.io mirror, so once
# the tier's docker.io images are pushed here, `docker image rm X && docker pull X` gets X back as on a laptop
# (same image ID, same labels). There is no Docker Hub behind it: what was not pushed cannot be pulled.
#
# Usage: tools/testkit/kind/registry.sh start|stop|status|push IMAGE...|push --all|hub-images
#   start       start the registry as a host process (pidfile, log under $CACHE/registry); a running one is kept
#   stop        stop the registry `start` started (nothing else)
#   status      exit 0 when the registry answers; says whether Docker's docker.io pulls go through it
#   push        for each local image docker.io/PATH:TAG: tag it 127.0.0.1:$PORT/PATH:TAG, push, drop that tag;
#               an image whose manifest there already names the same image ID (config digest) is skipped.
#               --all: every local docker.io image (see hub-images)
#   hub-images  print every local docker.io image, as docker.io/PATH:TAG
# Env: KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind), KIND_TIER_REGISTRY_PORT (default 5501)
set -euo pipefail
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
PORT=${KIND_TIER_REGISTRY_PORT:-5501}  # docker.sh's daemon.json names the same port
ADDR=127.0.0.1:$PORT
URL=http://$ADDR
BINARY=$CACHE/bin/registry
STATE=$CACHE/registry
DATA=$STATE/data
PIDFILE=$STATE/registry.pid
LOG=$STATE/registry.log
log() { printf '[kind-tier registry %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

answers() { curl -fsS -m 2 -o /dev/null "$URL/v2/" 2>/dev/null; }

# The pid in the pidfile, when that process still runs our binary (not a reused pid). A binary replaced by a
# rebuild shows as "PATH (deleted)" and is still ours.
own_pid() {
  local pid exe
  [[ -s $PIDFILE ]] || return 1
  pid=$(cat "$PIDFILE")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ ${exe% (deleted)} == "$(readlink -f "$BINARY")" ]] || return 1
  printf '%s\n' "$pid"
}

start() {
  if own_pid >/dev/null && answers; then
    log "stand-in for Docker Hub already running at $URL (pid $(own_pid)): kept"
    return 0
  fi
  # Ours but silent here (another KIND_TIER_REGISTRY_PORT, or hung): replaced, as two must not share $DATA.
  if own_pid >/dev/null; then stop; fi
  if answers; then
    # Not ours (another tier cache, or started by hand): used as it is, and `stop` leaves it alone.
    log "a registry already answers at $URL (not started by this script): used as it is"
    return 0
  fi
  [[ -x $BINARY ]] || die "$BINARY is missing: tools/testkit/bootstrap-kind.sh registry builds it"
  mkdir -p "$DATA"
  rm -f "$PIDFILE"
  log "starting the stand-in for Docker Hub at $URL (data: $DATA, log: $LOG)"
  # setsid: it outlives this script and the caller's session, like docker.sh's dockerd.
  setsid "$BINARY" -addr "$ADDR" -root "$DATA" -pidfile "$PIDFILE" >"$LOG" 2>&1 </dev/null &
  local i
  for i in $(seq 100); do
    if answers && own_pid >/dev/null; then
      log "registry answers after $((i / 10)).$((i % 10))s (pid $(own_pid))"
      return 0
    fi
    sleep 0.1
  done
  tail -20 "$LOG" >&2
  die "the registry did not answer at $URL within 10 s"
}

stop() {
  local pid i
  if ! pid=$(own_pid); then
    log "no registry of the tier's own to stop"
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping the registry $pid"
  kill "$pid"
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$PIDFILE"
}


status() {
  local rc=0 who="not started by registry.sh" mirrors
  if answers; then
    own_pid >/dev/null && who="pid $(own_pid)"
    log "stand-in for Docker Hub answers at $URL ($who; data: $DATA)"
  else
    log "no registry answers at $URL"
    rc=1
  fi
  # Docker prints each mirror with a trailing slash. tools/testkit/kind/docker.sh mirror asks the same, as an exit code.
  mirrors=$(docker info --format '{{json .RegistryConfig.Mirrors}}' 2>/dev/null || echo "(no engine answers)")
  if grep -qF "\"$URL/\"" <<<"$mirrors"; then
    log "the Docker engine's docker.io mirror is $URL/: pulls of docker.io images try the stand-in first"
  else
    log "the Docker engine's docker.io mirrors, $mirrors, do not include $URL/: pulls of docker.io go to Docker Hub"
  fi
  return "$rc"
}

# Every local image of docker.io, as docker.io/PATH:TAG. `docker images` drops the docker.io/ (and library/)
# prefix; a first component with a dot or a colon, or localhost, is another registry.
hub_images() {
  docker images --format '{{.Repository}}:{{.Tag}}' | awk -F/ '
    /<none>/ { next }
    NF == 1 { print "docker.io/library/" $0; next }
    $1 ~ /[.:]/ || $1 == "localhost" { next }
    { print "docker.io/" $0 }' | LC_ALL=C sort -u
}

# docker.io/PATH:TAG for a reference given as docker.io/PATH:TAG, PATH:TAG or NAME:TAG (Docker's own rules).
hub_ref() {
  local ref=$1 first=${1%%/*}
  if [[ $ref != */* ]]; then ref=library/$ref
  elif [[ $first == docker.io || $first == index.docker.io ]]; then ref=${ref#*/}
  elif [[ $first == *[.:]* || $first == localhost ]]; then return 1
  fi
  [[ $ref == */* ]] || ref=library/$ref
  [[ ${ref##*/} == *:* ]] || ref=$ref:latest
  printf 'docker.io/%s\n' "$ref"
}

# The config digest (= the local image ID) of the manifest the registry holds for PATH:TAG $1, empty when none.
registry_config_digest() {
  curl -fsS -m 10 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$URL/v2/${1%:*}/manifests/${1##*:}" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin).get("config", {}).get("digest", ""))' 2>/dev/null || true
}

push() {
  local images=() image ref path id mirror pushed=0 skipped=0 start=$SECONDS
  if [[ ${1:-} == --all ]]; then mapfile -t images < <(hub_images); else images=("$@"); fi
  [[ ${#images[@]} -gt 0 ]] || die "push: no images given (push IMAGE... or push --all)"
  answers || die "no registry answers at $URL (tools/testkit/kind/registry.sh start)"
  for image in "${images[@]}"; do
    ref=$(hub_ref "$image") || die "$image is not a docker.io image"
    path=${ref#docker.io/}
    id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) || die "$ref is not in the local Docker"
    if [[ $(registry_config_digest "$path") == "$id" ]]; then
      log "$ref: already in the stand-in (${id:7:12})"
      skipped=$((skipped + 1))
      continue
    fi
    mirror=$ADDR/$path
    log "$ref: pushing to $mirror (${id:7:12})"
    docker tag "$ref" "$mirror"
    # The extra tag goes whether the push works or not: the local images keep their docker.io names only.
    if ! docker push -q "$mirror" >/dev/null; then
      docker image rm "$mirror" >/dev/null || true
      die "docker push $mirror failed"
    fi
    docker image rm "$mirror" >/dev/null
    pushed=$((pushed + 1))
  done
  log "pushed $pushed, already there $skipped, in $((SECONDS - start))s"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  push) shift; push "$@" ;;
  hub-images) hub_images ;;
  *) echo "usage: $0 start|stop|status|push IMAGE...|push --all|hub-images" >&2; exit 2 ;;
esac
