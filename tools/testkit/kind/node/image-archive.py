#!/usr/bin/env python3
"""One `docker save` archive of several images that kind's `build node-image --type file` side-loads whole.

kind reads exactly four archives of a kubernetes-server tarball (server/bin/kube-{apiserver,controller-manager,
scheduler,proxy}.tar), takes an image as present when its fully qualified name is among an archive's tags, and pulls
every other image it needs — which fails offline. It reads the tags from whichever of `repositories` and
`manifest.json` comes first in the archive, and of manifest.json only the first entry. So this writes the archive
with `repositories` first, listing every image by its fully qualified name (docker save writes Docker Hub images by
their familiar name, kindest/kindnetd:TAG); containerd's import then loads every image of manifest.json.

Usage: image-archive.py OUT.tar IMAGE [IMAGE ...]
"""

import io
import json
import subprocess
import sys
import tarfile
import tempfile


def qualified(ref: str) -> str:
    """docker.io/library/x:t for x:t, docker.io/kindest/x:t for kindest/x:t; a name with a registry stays."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def main(out: str, images: list[str]) -> None:
    with tempfile.NamedTemporaryFile(suffix=".tar") as saved:
        subprocess.run(["docker", "save", "-o", saved.name, *images], check=True)
        with tarfile.open(saved.name) as source:
            members = {m.name: m for m in source.getmembers()}
            manifest = json.loads(source.extractfile(members["manifest.json"]).read())  # type: ignore[union-attr]
            for entry in manifest:
                entry["RepoTags"] = [qualified(t) for t in entry.get("RepoTags") or []]
            repositories: dict[str, dict[str, str]] = {}
            for entry in manifest:
                layer_id = entry["Layers"][-1].split("/")[0]
                for tag in entry["RepoTags"]:
                    repo, _, version = tag.rpartition(":")
                    repositories.setdefault(repo, {})[version] = layer_id
            wanted = {qualified(i) for i in images}
            found = {t for e in manifest for t in e["RepoTags"]}
            if wanted - found:
                raise SystemExit(f"image-archive: docker save wrote no tag for {sorted(wanted - found)}")
            with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as target:
                for name, payload in (("repositories", repositories), ("manifest.json", manifest)):
                    data = json.dumps(payload, separators=(",", ":")).encode()
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(data), 0o644, members[name].mtime if name in members else 0
                    target.addfile(info, io.BytesIO(data))
                for member in source.getmembers():
                    if member.name in ("repositories", "manifest.json"):
                        continue
                    target.addfile(member, source.extractfile(member) if member.isfile() else None)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])
