"""Download the manifest and one part of it, checked against its hash."""

from __future__ import annotations

import hashlib
import json
import types
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Manifest", "MissingPart", "fetch_manifest", "fetch_part"]


class MissingPart(Exception):
    """A part named by the manifest is not on the server (HTTP 404).

    The Python counterpart of a browser's ``ChunkLoadError``.
    """


@dataclass(frozen=True)
class Manifest:
    """One release: its version and where each part lives."""

    version: str
    parts: Mapping[str, str]


# --8<-- [start:fetch]
def fetch_manifest(base_url: str, timeout: float = 5.0) -> Manifest:
    """Download the current manifest (never cached: it names the release)."""
    request = urllib.request.Request(
        f"{base_url}/manifest.json", headers={"Cache-Control": "no-cache"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = json.loads(response.read())
    return Manifest(version=data["version"], parts=data["parts"])


def fetch_part(
    base_url: str, manifest: Manifest, name: str, timeout: float = 5.0
) -> types.ModuleType:
    """Download one part of ``manifest``, check its hash and import it.

    The hash proves integrity (the bytes are the ones the manifest names), not
    authenticity: the manifest comes from the same host, so whoever can change
    the host's files or the plain-HTTP traffic can change both.

    Raises:
        MissingPart: The release does not name the part, or the server no
            longer has the file.
    """
    path = manifest.parts.get(name)
    if path is None:
        raise MissingPart(f"{name!r} is not in release {manifest.version}")
    try:
        with urllib.request.urlopen(f"{base_url}/{path}", timeout=timeout) as r:
            body: bytes = r.read()
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise MissingPart(f"{path} of {manifest.version} is gone") from error
        raise
    if f"parts/{hashlib.sha256(body).hexdigest()}.py" != path:
        raise ValueError(f"{path}: content does not match its hash")
    module = types.ModuleType(f"part_{name}")
    exec(compile(body, path, "exec"), module.__dict__)
    return module


# --8<-- [end:fetch]
