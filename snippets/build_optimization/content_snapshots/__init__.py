"""Incremental rebuild by content snapshot, not by timestamp.

A build step is fresh when the inputs it was built from are the inputs you have
now. Two ways to decide that:

* `MtimeBuilder` is the make-style rule: the output is fresh when it is newer
  than every input. An edit made while the step runs, or a file restored with
  an older modification time, leaves a stale output that counts as fresh.
* `SnapshotBuilder` hashes the inputs (SHA-256) *before* the step runs, records
  the output against that snapshot, and hashes them again afterwards. An input
  that changed during the step no longer matches the record, so the next build
  runs the step again; by default the builder retries at once.

The record (a small JSON manifest) is replaced atomically, so a crash leaves
the previous manifest, never half of one.
"""

from snippets.build_optimization.content_snapshots.builder import (
    BuildResult,
    SnapshotBuilder,
    Step,
    file_digest,
    snapshot,
)

__all__ = ["BuildResult", "SnapshotBuilder", "Step", "file_digest", "snapshot"]
