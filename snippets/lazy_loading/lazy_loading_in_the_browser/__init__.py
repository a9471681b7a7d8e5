"""Lazy loading in the browser: lazy images, and latest-wins on visibility.

The page's code is HTML and JavaScript in this folder: ``gallery.html`` and
``layout-shift.js`` for ``loading="lazy"`` images, and ``rows.html`` with
``visible.js`` (``IntersectionObserver``), ``search.js``, ``latest.js``
(``AbortController`` and a generation check) and the broken loaders in
``naive.js``. The tests and the demo run them in Chromium; the pattern has no
Python API.
"""

__all__: list[str] = []
