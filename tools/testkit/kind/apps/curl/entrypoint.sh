#!/bin/sh
# Bare arguments (`docker run IMAGE -s URL`) go to curl; a command (`sh -c ...`, `sleep infinity`) runs as given.
set -e
case "$1" in
  -*) set -- curl "$@" ;;
  *) command -v "$1" >/dev/null 2>&1 || set -- curl "$@" ;;
esac
exec "$@"
