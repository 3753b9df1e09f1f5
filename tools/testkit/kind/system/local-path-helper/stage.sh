#!/usr/bin/env bash
# stage.sh DIR BINARY...: copies each BINARY (found on PATH) and the shared libraries it loads into DIR, under
# merged-/usr paths, with the /bin, /sbin, /lib and /lib64 links Debian has; sh is bash.
set -euo pipefail
dir=$1
shift
# A path as it is on disk under /usr (Debian's /bin, /lib, /lib64, /sbin are links into /usr).
usr_path() { case $1 in /bin/* | /sbin/* | /lib/* | /lib64/*) printf '/usr%s\n' "$1" ;; *) printf '%s\n' "$1" ;; esac; }
copy() {
  local p
  p=$(usr_path "$1")
  [[ -e $dir$p || -L $dir$p ]] && return 0
  mkdir -p "$dir$(dirname "$p")"
  if [[ -L $p ]]; then
    cp -P "$p" "$dir$p"
    copy "$(cd "$(dirname "$p")" && realpath -s "$(readlink "$p")")"
  else
    cp -p "$p" "$dir$p"
  fi
}
for bin in "$@"; do
  path=$(command -v "$bin")
  copy "$path"
  ldd "$path" | sed -E 's#.* => ##' | awk '$1 ~ /^\// {print $1}' | while read -r lib; do copy "$lib"; done
done
for link in bin sbin lib lib64; do
  if [[ -d $dir/usr/$link ]]; then ln -sfn "usr/$link" "$dir/$link"; fi
done
ln -sfn bash "$dir/usr/bin/sh"
mkdir -p "$dir/tmp"
chmod 1777 "$dir/tmp"
find "$dir" | sort
