"""Content-addressed action cache with atomic publish.

A build step (an *action*) is identified by what goes into it: its command
line, the digests of its input files, the environment variables it reads and
the version of the tool. The SHA-256 of that description is the action key.

* The content-addressable store (CAS) keeps each output under the SHA-256 of
  its bytes: ``cas/<digest>``.
* The action cache (AC) maps an action key to the digests of its outputs:
  ``ac/<key>``, a small JSON file, written after the blobs it names.

Every file is published the same way: streamed into a temporary file in the
directory where it will live, flushed to disk with ``fsync``, then renamed
over its final name with ``os.replace``. A reader sees no file or the whole
file. A reader also checks each blob's digest, so a damaged blob is a miss,
never a wrong hit. A later, different result for the same key replaces the
stored one and is counted per key in ``stats.nondeterministic``; with
``strict=True`` the first result stays and the second raises
`NonHermeticActionError`.

POSIX only: the atomic rename and the directory ``fsync`` are POSIX behaviour.
"""

from snippets.build_optimization.action_cache.cache import (
    ActionCache,
    CacheStats,
    NonHermeticActionError,
)
from snippets.build_optimization.action_cache.key import Action, file_digest
from snippets.build_optimization.action_cache.publish import (
    TMP_PREFIX,
    fsync_dir,
    write_temp,
)

__all__ = [
    "TMP_PREFIX",
    "Action",
    "ActionCache",
    "CacheStats",
    "NonHermeticActionError",
    "file_digest",
    "fsync_dir",
    "write_temp",
]
