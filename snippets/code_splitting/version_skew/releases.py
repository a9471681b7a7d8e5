"""Publish a release of content-hashed parts and keep old ones for a while."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["deploy"]


# --8<-- [start:deploy]
def deploy(
    root: Path, version: str, parts: Mapping[str, bytes], keep_previous: int
) -> None:
    """Publish a release and prune parts no recent release still needs.

    Args:
        root: The directory the static host serves.
        version: A unique release name, such as a commit id.
        parts: Part name to source bytes.
        keep_previous: How many earlier releases keep their parts (the grace
            period). ``0`` deletes every part the new release does not use.
    """
    (root / "parts").mkdir(parents=True, exist_ok=True)
    (root / "releases").mkdir(exist_ok=True)
    files = {}
    for name, body in sorted(parts.items()):
        path = f"parts/{hashlib.sha256(body).hexdigest()}.py"
        if not (root / path).exists():  # same name, same content: leave it alone
            tmp = root / f"{path}.{os.getpid()}.tmp"
            tmp.write_bytes(body)
            os.replace(tmp, root / path)  # a download in progress keeps its file
        files[name] = path
    manifest = json.dumps({"version": version, "parts": files}).encode()
    (root / "releases" / f"{version}.json").write_bytes(manifest)
    tmp = root / "manifest.json.tmp"
    tmp.write_bytes(manifest)
    os.replace(tmp, root / "manifest.json")  # readers see old or new, never half
    history = root / "releases.txt"
    with history.open("a") as log:
        log.write(version + "\n")
    live = history.read_text().split()[-(keep_previous + 1) :]
    needed = set()
    for release in live:
        data = json.loads((root / "releases" / f"{release}.json").read_bytes())
        needed.update(data["parts"].values())
    for part in (root / "parts").iterdir():
        if f"parts/{part.name}" not in needed:
            part.unlink()


# --8<-- [end:deploy]
