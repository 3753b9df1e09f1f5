#!/usr/bin/env bash
# The kind tier's Debian root image, built offline from Debian's packages (no container registry is reached):
#   debootstrap --variant=minbase of DEBIAN_SUITE, imported into the local Docker as $DEBIAN_BASE_IMAGE.
# Every image of the tier that needs an OS starts FROM it. Idempotent: a present image with the same pin is kept.
# Usage: tools/testkit/kind/debian-base.sh            Env: KIND_TIER_CACHE (default ~/.cache/ambient-mesh-kind)
set -euo pipefail
DEBIAN_SUITE=${DEBIAN_SUITE:-trixie}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_BASE_IMAGE=${DEBIAN_BASE_IMAGE:-ambient-mesh.local/debian:$DEBIAN_SUITE}
CACHE=${KIND_TIER_CACHE:-$HOME/.cache/ambient-mesh-kind}
log() { printf '[debian-base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

pin="$DEBIAN_SUITE minbase"
if [[ "$(docker image inspect -f '{{index .Config.Labels "ambient-mesh.pin"}}' "$DEBIAN_BASE_IMAGE" 2>/dev/null)" == "$pin" ]]; then
  log "$DEBIAN_BASE_IMAGE up to date"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; }
root=$CACHE/work/debian-$DEBIAN_SUITE
rm -rf "$root"
mkdir -p "$root"
log "debootstrap $DEBIAN_SUITE into $root"
debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$CACHE/work/debootstrap-$DEBIAN_SUITE.log" 2>&1 \
  || { tail -20 "$CACHE/work/debootstrap-$DEBIAN_SUITE.log" >&2; exit 1; }
# Lean: no apt lists or caches in the image; images that install packages run `apt-get update` themselves.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import --change "LABEL ambient-mesh.pin=\"$pin\"" --change 'CMD ["/bin/bash"]' \
  - "$DEBIAN_BASE_IMAGE" >/dev/null
rm -rf "$root"
log "$DEBIAN_BASE_IMAGE built"
