#!/usr/bin/env bash
# The kind tier's Docker engine: `start` uses a running engine as it is, or installs Debian's docker.io (when dockerd
# is missing) and starts a daemon of its own; `stop` stops only a daemon that `start` started.
#
# On a machine whose capability bounding set lacks CAP_SYS_RESOURCE (this workplace's sandbox, not a laptop), every
# `docker run --privileged` — each kind node — fails with "unable to apply caps: operation not permitted". The
# daemon this script starts then runs containers through tools/testkit/kind/runc-drop-sys-resource, which removes
# that one capability from each container's spec. A running engine is never reconfigured.
#
# The daemon this script starts also lists http://127.0.0.1:$KIND_TIER_REGISTRY_PORT as its docker.io mirror: the
# tier's stand-in for Docker Hub (tools/testkit/kind/registry.sh), so a pruned docker.io image can be pulled back.
# `mirror` says whether the running engine's docker.io pulls go through that stand-in (exit 0) or not (exit 1): the
# engine's own mirror list decides, so a host engine used as it is normally says no; the registry must answer too.
# Usage: tools/testkit/kind/docker.sh start|stop|status|mirror
# Env:   KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind), KIND_TIER_REGISTRY_PORT (default 5501, as registry.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
STATE=$CACHE/docker
PIDFILE=$STATE/dockerd.pid
MIRROR=http://127.0.0.1:${KIND_TIER_REGISTRY_PORT:-5501}  # registry.sh listens there
log() { printf '[kind-tier docker %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

engine_answers() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# Bit 24 of the bounding set is CAP_SYS_RESOURCE.
lacks_sys_resource() {
  local bnd
  bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  (( (16#$bnd >> 24 & 1) == 0 ))
}

start() {
  if engine_answers; then
    log "using the running Docker engine $(docker info --format '{{.ServerVersion}}') as it is"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    log "no dockerd: installing Debian's docker.io"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
  fi
  mkdir -p "$STATE"
  local runtime=""
  if lacks_sys_resource; then
    runtime=$(printf ', "runtimes": {"kind-tier-runc": {"path": "%s"}}, "default-runtime": "kind-tier-runc"' \
      "$HERE/runc-drop-sys-resource")
    log "this machine's capability bounding set lacks CAP_SYS_RESOURCE: containers run through runc-drop-sys-resource"
  fi
  # The mirror need not answer yet (registry.sh starts after the images are built): Docker then falls back to
  # Docker Hub for each pull, as it would with no mirror.
  printf '{"storage-driver": "overlay2", "registry-mirrors": ["%s"]%s}\n' "$MIRROR" "$runtime" >"$STATE/daemon.json"
  log "starting dockerd (log: $STATE/dockerd.log)"
  setsid dockerd --config-file "$STATE/daemon.json" --pidfile "$PIDFILE" >"$STATE/dockerd.log" 2>&1 </dev/null &
  local i
  for i in $(seq 60); do
    if engine_answers; then
      log "dockerd $(docker info --format '{{.ServerVersion}}') answers after ${i}s"
      return 0
    fi
    sleep 1
  done
  tail -20 "$STATE/dockerd.log" >&2
  log "ERROR: dockerd did not answer within 60 s"
  return 1
}

stop() {
  if [[ ! -s $PIDFILE ]]; then
    log "no daemon of the tier's own to stop"
    return 0
  fi
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping dockerd $pid"
    kill "$pid"
    local i
    for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -f "$PIDFILE"
}

# Exit 0 when pulls of docker.io images go through the stand-in: it is among the engine's docker.io mirrors (Docker
# prints the URL with a trailing slash) and answers.
mirror() {
  local mirrors
  mirrors=$(docker info --format '{{json .RegistryConfig.Mirrors}}' 2>/dev/null) || { log "no Docker engine answers"; return 1; }
  if ! grep -qF "\"$MIRROR/\"" <<<"$mirrors"; then
    log "docker.io is not mirrored through $MIRROR (engine mirrors: $mirrors): pulls go to Docker Hub"
    return 1
  fi
  if ! curl -fsS -m 2 -o /dev/null "$MIRROR/v2/" 2>/dev/null; then
    log "docker.io is mirrored through $MIRROR, but nothing answers there (tools/testkit/kind/registry.sh start)"
    return 1
  fi
  log "docker.io pulls go through the stand-in for Docker Hub at $MIRROR"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) engine_answers && docker info --format 'Docker {{.ServerVersion}}, cgroup v{{.CgroupVersion}}, runtime {{.DefaultRuntime}}' ;;
  mirror) mirror ;;
  *) echo "usage: $0 start|stop|status|mirror" >&2; exit 2 ;;
esac
