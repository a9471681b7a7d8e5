"""The tools that build the guide: hooks MkDocs runs, and the builders around it.

``mkdocs.yml`` lists the hooks (``page_checks``, ``links``, ``previews``,
``offline``); ``build`` is the one way the site is built for the tests, the
PDF, the offline zip and the benchmarks; ``browser`` is the one way Chromium
is started; ``pdf`` lays out the book.
"""
