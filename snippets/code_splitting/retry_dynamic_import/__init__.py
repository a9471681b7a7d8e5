"""Retrying a failed dynamic ``import()`` in the browser.

The pattern is JavaScript, in this folder: ``retry.js`` (a bounded retry with
backoff, a loader that forgets a failure, a cache-busting URL), run in
Chromium by the tests against a plain-ES-module site (``site/``) and a webpack
build (``app/``). There is no Python API.
"""

__all__: list[str] = []
