"""Preload, modulepreload and prefetch, measured in Chromium.

The page's code is HTML and JavaScript in this folder: ``hints.html`` and the
scripts it hints at, the lazy routes the test bed (``snippets/web/``) builds
with Vite and webpack, and ``prefetch-after-load.js``. The tests and the demo
run them in Chromium and read the requests through the DevTools protocol; the
pattern has no Python API.
"""

__all__: list[str] = []
