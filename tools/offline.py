"""The guide as a folder that works from file://: ``make offline``.

``python -m tools.offline`` builds the site a second time, into
``build/offline-site/concurrency-patterns``, with Material's offline plugin
switched on (tools/build.py, mode ``offline``), and zips that folder into
``build/concurrency-patterns-site.zip``. The site in ``site/`` is not touched:
the plugin turns every link into a link to an ``.html`` file, which suits a
folder on disk and not a web server.

From file:// three things need help, and get it here and in overrides/main.html:

* Search runs in a Web Worker, which browsers refuse to start from file://.
  The plugin inlines the search index and loads the ``iframe-worker`` shim;
  it would load the shim from a CDN, so main.html uses the vendored copy
  (docs/assets/vendor/iframe-worker).
* Instant navigation fetches pages with ``fetch()``, which browsers refuse
  for file:// URLs. With it on, the theme never sets up the page it opened:
  no diagram is drawn by the theme, and mermaid, left to draw the diagrams
  itself on load, reads the HTML around each diagram's source and shows
  "Syntax error". This hook switches instant navigation off for the offline
  build; every link is then an ordinary page load, which works from disk.
* Diagrams, fonts and scripts are already local (vendored or system fonts).

MkDocs runs this module as a hook (``hooks:`` in mkdocs.yml).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
SITE = BUILD / "offline-site" / "concurrency-patterns"
ZIP = BUILD / "concurrency-patterns-site.zip"


def on_config(config: Any) -> Any:
    offline = config.plugins.get("material/offline")
    if offline is not None and offline.config.enabled:
        features = config.theme["features"]
        config.theme["features"] = [f for f in features if f != "navigation.instant"]
    return config


def build(target: Path = ZIP, site_dir: Path = SITE) -> Path:
    """Build the offline site into ``site_dir`` and zip it at ``target``."""
    from tools.build import build_site

    build_site(site_dir, mode="offline", check=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The zip holds one folder, so that unpacking it makes no mess.
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        for path in sorted(site_dir.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(site_dir.parent))
    return target


if __name__ == "__main__":
    zipped = build()
    print(
        f"{zipped.relative_to(ROOT)}: {zipped.stat().st_size / 1e6:.1f} MB; "
        f"open {SITE.relative_to(ROOT)}/index.html, or unzip it anywhere"
    )
