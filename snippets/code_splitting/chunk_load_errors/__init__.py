"""ChunkLoadError and failed dynamic imports after a deploy.

The page's JavaScript is in this folder (``reload-once.js``, ``classify.js``,
``naive.js``), built by Vite and webpack from ``snippets/web/`` and run in
Chromium by the tests. The Python API is the deploy step that keeps the
previous release's chunks for a grace period.
"""

from snippets.code_splitting.chunk_load_errors.deploy import Published, publish

__all__ = ["Published", "publish"]
