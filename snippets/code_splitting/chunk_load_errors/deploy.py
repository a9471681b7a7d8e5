"""Publish a release of hashed assets without deleting what open tabs still load.

A static deploy that replaces the whole folder deletes the previous release's
chunks while tabs opened before the deploy still ask for them. :func:`publish`
adds the new release's files beside the old ones, switches ``index.html`` last,
and deletes a release's files only after a grace period since the release that
replaced it went live.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["Published", "publish"]

LEDGER = ".releases.json"


@dataclass(frozen=True)
class Published:
    """What one :func:`publish` did: files copied, files kept, files deleted."""

    release: str
    copied: int
    kept: int
    deleted: int


# --8<-- [start:publish]
def publish(
    build: Path, site: Path, release: str, *, grace: timedelta, now: datetime
) -> Published:
    """Copy the build into the site; delete old releases' files after ``grace``.

    Assets go first and ``index.html`` last, by an atomic rename, so no visitor
    gets an ``index.html`` whose chunks are not there yet. A release's files
    stay until ``grace`` after the release that replaced it went live.
    """
    ledger_file = site / LEDGER
    ledger = json.loads(ledger_file.read_text()) if ledger_file.is_file() else []
    files = sorted(
        path.relative_to(build).as_posix()
        for path in build.rglob("*")
        if path.is_file() and path.name != "index.html"
    )
    copied = 0
    for name in files:
        target = site / name
        if not target.exists():  # hashed names: same name, same content
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(build / name, target)
            copied += 1
    staged = site / ".index.html.new"
    shutil.copy2(build / "index.html", staged)
    os.replace(staged, site / "index.html")
    ledger.append({"release": release, "live_from": now.isoformat(), "files": files})

    def retired_long_ago(index: int) -> bool:
        replaced_at = datetime.fromisoformat(ledger[index + 1]["live_from"])
        return now - replaced_at >= grace

    keep = [e for i, e in enumerate(ledger[:-1]) if not retired_long_ago(i)]
    keep.append(ledger[-1])
    wanted = {name for entry in keep for name in entry["files"]}
    gone = {name for entry in ledger for name in entry["files"]} - wanted
    for name in gone:
        (site / name).unlink(missing_ok=True)
    ledger_file.write_text(json.dumps(keep, indent=1) + "\n")
    kept = len(wanted - set(files))
    return Published(release, copied=copied, kept=kept, deleted=len(gone))


# --8<-- [end:publish]
