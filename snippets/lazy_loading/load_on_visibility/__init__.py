"""Load on visibility: show the answer to the newest request, stop the rest.

A client that loads content when it becomes needed (a tab opens, a filter
changes, a search box is typed into) starts loads that overlap. Two things go
wrong: a slow answer to an old request arrives after the answer to a newer one
and replaces it, and the server keeps working on requests nobody waits for.

* `LatestLoader` numbers every request with a generation and shows an answer
  only while its generation is still the newest (latest-wins). It cancels the
  superseded load, which closes that load's connection, and it can debounce a
  burst of requests into one.
* `NaiveLoader` is the broken version, kept for the tests and the demo.
* `fetch_json` is a small cancellable HTTP client. `SearchServer` is a search
  backend on loopback that holds each answer until it is released, stops
  searching when its client disconnects, and counts the work it did for
  nobody.
"""

from snippets.lazy_loading.load_on_visibility.fetch import LoadError, fetch_json
from snippets.lazy_loading.load_on_visibility.loader import LatestLoader

__all__ = ["LatestLoader", "LoadError", "fetch_json"]
