"""Version-skew-safe loading of content-hashed parts.

A deploy publishes parts under names derived from their content
(``parts/<sha256>.py``) and a small manifest that maps part names to those
files. A client that started on manifest N keeps using it; when deploy N+1
deletes N's parts, the client's next on-demand load fails. The fix has two
halves: the deploy keeps the previous releases' parts for a grace period, and
the client reloads the manifest at most once per stale version, shared by all
concurrent failures, then fails loudly.
"""

from snippets.code_splitting.version_skew.fetch import (
    Manifest,
    MissingPart,
    fetch_manifest,
    fetch_part,
)
from snippets.code_splitting.version_skew.loader import SkewSafeLoader
from snippets.code_splitting.version_skew.releases import deploy

__all__ = [
    "Manifest",
    "MissingPart",
    "SkewSafeLoader",
    "deploy",
    "fetch_manifest",
    "fetch_part",
]
