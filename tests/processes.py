"""Helpers for tests that run a pattern in a real child process."""

from __future__ import annotations

from snippets.support.processes import read_line

__all__ = ["read_line"]
