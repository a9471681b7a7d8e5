"""The action key: a SHA-256 over everything that goes into a build step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Action", "file_digest"]


# --8<-- [start:key]
@dataclass(frozen=True)
class Action:
    """What goes into a build step, and nothing else.

    Args:
        argv: The command line, exactly as it runs.
        inputs: Input path -> SHA-256 of its content (see `file_digest`).
        env: Only the environment variables the tool reads.
        tool: The tool's identity, such as the output of ``cc --version``.
    """

    argv: Sequence[str]
    inputs: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    tool: str = ""

    def key(self) -> str:
        """The action key: SHA-256 over a canonical encoding of the fields."""
        description = {
            "v": 1,  # bump when the encoding changes: old keys must not match
            "argv": list(self.argv),
            "inputs": sorted(self.inputs.items()),
            "env": sorted(self.env.items()),
            "tool": self.tool,
        }
        # JSON keeps field boundaries: ["a b"] and ["a", "b"] differ.
        encoded = json.dumps(description, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --8<-- [end:key]
