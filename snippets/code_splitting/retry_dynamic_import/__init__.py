"""Retrying a failed dynamic ``import()`` in the browser.

The pattern is JavaScript, in this folder: ``retry.js`` (a bounded retry with
backoff, a loader that forgets a failure, a cache-busting URL), run in
Chromium by the tests against a plain-ES-module site (``site/``) and a webpack
build (``app/``). The Python API computes the retry's waits in advance.
"""

from snippets.code_splitting.retry_dynamic_import.budget import (
    backoff_delays,
    longest_wait_ms,
)

__all__ = ["backoff_delays", "longest_wait_ms"]
