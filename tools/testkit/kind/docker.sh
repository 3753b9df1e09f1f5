#!/usr/bin/env bash
# The kind tier's Docker engine: `start` uses a running engine as it is, or installs Debian's docker.io (when dockerd
# is missing) and starts a daemon of its own; `stop` stops only a daemon that `start` started.
#
# On a machine whose capability bounding set lacks CAP_SYS_RESOURCE (this workplace's sandbox, not a laptop), every
# `docker run --privileged` — each kind node — fails with "unable to apply caps: operation not permitted". The
# daemon this script starts then runs containers through tools/testkit/kind/runc-drop-sys-resource, which removes
# that one capability from each container's spec. A running engine is never reconfigured.
# Usage: tools/testkit/kind/docker.sh start|stop|status      Env: KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
STATE=$CACHE/docker
PIDFILE=$STATE/dockerd.pid
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
  printf '{"storage-driver": "overlay2"%s}\n' "$runtime" >"$STATE/daemon.json"
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

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) engine_answers && docker info --format 'Docker {{.ServerVersion}}, cgroup v{{.CgroupVersion}}, runtime {{.DefaultRuntime}}' ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
