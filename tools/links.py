"""Links that last: page redirects, anchor redirects, and the link ledger.

People paste links to this guide into wikis and chats, so a published address
must keep working:

* ``links/redirects.yml`` maps moved pages to their new place, and renamed
  anchors to their new id. For a moved page the build writes a small page at the
  old address that forwards to the new one, fragment included. A renamed anchor
  is resolved in the browser on load, since no server-side redirect can see the
  fragment. Anchors listed under a moved page's *old* path are followed by its
  forwarding page before the new page's own renames: when two pages merge into
  one, each old ``#problem`` can land on its own section.
* ``links/link-ledger.txt`` lists every page address and heading anchor
  that has been published. A test fails when an entry no longer exists and no
  redirect covers it. ``make ledger`` rewrites the file from a fresh build.

MkDocs runs this module as a hook (see ``hooks:`` in mkdocs.yml).
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# CP_REDIRECTS lets the tests build with a redirects file of their own.
REDIRECTS_FILE = Path(os.environ.get("CP_REDIRECTS", ROOT / "links" / "redirects.yml"))
LEDGER_FILE = ROOT / "links" / "link-ledger.txt"
HEADING_ID = re.compile(r"<h[1-6][^>]*\sid=\"([^\"]+)\"")
LEDGER_HEADER = """\
# Every published page address and heading anchor of the site, one a line,
# relative to the site root. Regenerate with `make ledger` after adding pages
# or headings. A test fails when an entry disappears from the built site
# without a redirect in links/redirects.yml.
"""


# API reference anchors are the Python names mkdocstrings renders
# ("snippets.<topic>.<pattern>.<name>"). A name that leaves a pattern's
# __all__ leaves the page; a link to it lands on the page's API section.
API_PREFIX = "snippets."
API_SECTION = "api"


class RedirectsError(ValueError):
    """links/redirects.yml is malformed; the message names file and line."""


def page_url(src: str) -> str:
    """``topic/page.md`` → ``topic/page/``; ``topic/index.md`` → ``topic/``."""
    stem = src[: -len(".md")] if src.endswith(".md") else src
    if stem == "index":
        return ""
    if stem.endswith("/index"):
        return stem[: -len("index")]
    return stem + "/"


@dataclass
class Redirects:
    """Moved pages (by source path) and renamed anchors (per source page)."""

    pages: dict[str, str] = field(default_factory=dict)
    anchors: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = REDIRECTS_FILE) -> Redirects:
        if not path.exists():
            return cls()
        text = path.read_text()
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise RedirectsError(f"{path}:{line}: not valid YAML: {error}") from None

        def line_of(needle: str) -> int:
            for number, line in enumerate(text.splitlines(), 1):
                if needle in line:
                    return number
            return 1

        if not isinstance(data, dict) or set(data) - {"pages", "anchors"}:
            raise RedirectsError(
                f"{path}:1: expected only the keys 'pages' and 'anchors'"
            )
        pages = data.get("pages") or {}
        anchors = data.get("anchors") or {}
        if not isinstance(pages, dict) or not isinstance(anchors, dict):
            raise RedirectsError(f"{path}:1: 'pages' and 'anchors' must be mappings")
        for old, new in pages.items():
            if not (isinstance(old, str) and isinstance(new, str)) or not (
                old.endswith(".md") and new.endswith(".md")
            ):
                raise RedirectsError(
                    f"{path}:{line_of(str(old))}: page redirects map one .md path "
                    f"to another, not {old!r}: {new!r}"
                )
        for page, renames in anchors.items():
            if not isinstance(page, str) or not page.endswith(".md"):
                raise RedirectsError(
                    f"{path}:{line_of(str(page))}: {page!r} is not a .md path"
                )
            if not isinstance(renames, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in renames.items()
            ):
                raise RedirectsError(
                    f"{path}:{line_of(page)}: anchors of {page} must map old to new ids"
                )
        return cls(pages=dict(pages), anchors={p: dict(r) for p, r in anchors.items()})

    def anchor_map(self, src: str) -> dict[str, str]:
        """Renamed anchors of a page, following chains (a → b → c gives a → c)."""
        renames = self.anchors.get(src, {})
        resolved = {}
        for old in renames:
            new, seen = renames[old], {old}
            while new in renames and new not in seen:
                seen.add(new)
                new = renames[new]
            resolved[old] = new
        return resolved

    def moved_anchors(self, old: str) -> dict[str, str]:
        """What the forwarding page at ``old`` does with a fragment.

        The old page's own renames first, then the renames of the page it
        moved to (a → b under the old path, b → c under the new gives a → c).
        """
        new = self.anchor_map(self.final_page(old))
        own = self.anchor_map(old)
        combined = dict(new)
        for anchor, renamed in own.items():
            combined[anchor] = new.get(renamed, renamed)
        return combined

    def final_page(self, src: str) -> str:
        """Where a page lives now, following chains of moves."""
        seen = {src}
        while src in self.pages:
            src = self.pages[src]
            if src in seen:
                raise RedirectsError(f"{REDIRECTS_FILE}:1: redirect loop through {src}")
            seen.add(src)
        return src


# --------------------------------------------------------------------------- #
# The ledger
# --------------------------------------------------------------------------- #


def is_redirect_page(path: Path) -> bool:
    return 'name="generator" content="redirect"' in path.read_text()[:600]


def site_anchors(site: Path) -> dict[str, set[str]]:
    """Page URL → heading ids, for every real page of a built site."""
    found = {}
    for index in sorted(site.rglob("index.html")):
        if is_redirect_page(index):
            continue
        url = index.parent.relative_to(site).as_posix()
        url = "" if url == "." else url + "/"
        found[url] = set(HEADING_ID.findall(index.read_text()))
    return found


def ledger_entries(site: Path) -> list[str]:
    entries = []
    for url, ids in site_anchors(site).items():
        entries.append(url or "/")
        entries.extend(f"{url or '/'}#{anchor}" for anchor in sorted(ids))
    return sorted(entries)


def read_ledger(path: Path = LEDGER_FILE) -> list[tuple[int, str]]:
    """(line number, entry) for every entry of the committed ledger."""
    if not path.exists():
        return []
    return [
        (number, line.strip())
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip() and not line.startswith("#")
    ]


def broken_entries(
    site: Path,
    redirects: Redirects,
    entries: list[tuple[int, str]] | None = None,
    docs: Path = ROOT / "docs",
) -> dict[str, str]:
    """Ledger entries that no longer resolve → where and why.

    ``docs`` is the folder the site was built from.
    """
    anchors = site_anchors(site)
    source_of = {
        page_url(path.relative_to(docs).as_posix()): path.relative_to(docs).as_posix()
        for path in docs.rglob("*.md")
    }
    moved = {page_url(src): src for src in redirects.pages}
    problems = {}
    for number, entry in read_ledger() if entries is None else entries:
        url, _, anchor = entry.partition("#")
        url = "" if url == "/" else url
        target = url
        forwarded: dict[str, str] = {}
        if url not in anchors and url in moved:
            target = page_url(redirects.final_page(moved[url]))
            forwarded = redirects.moved_anchors(moved[url])
        if target not in anchors:
            problems[entry] = (
                f"{LEDGER_FILE.name}:{number}: {entry} — the page {url or '/'} is gone "
                "and no page redirect in links/redirects.yml covers it"
            )
            continue
        if anchor in forwarded:  # the old page's own rename decides
            if forwarded[anchor] not in anchors[target]:
                problems[entry] = (
                    f"{LEDGER_FILE.name}:{number}: {entry} — the forwarding page "
                    f"sends #{anchor} to #{forwarded[anchor]}, which is not on "
                    f"{target or '/'}; fix anchors: {moved[url]} in links/redirects.yml"
                )
            continue
        if not anchor or anchor in anchors[target]:
            continue
        if anchor.startswith(API_PREFIX) and API_SECTION in anchors[target]:
            continue  # a name the API reference no longer shows: see API_FALLBACK
        src = source_of.get(target, "")
        renamed = redirects.anchor_map(src).get(anchor)
        if renamed is None or renamed not in anchors[target]:
            problems[entry] = (
                f"{LEDGER_FILE.name}:{number}: {entry} — the anchor #{anchor} is no "
                f"longer on {target or '/'}; add `{anchor}: <new-id>` under "
                f"anchors: {src} in links/redirects.yml"
            )
    return problems


def update_ledger(site: Path) -> tuple[int, list[str]]:
    """Add the built site's pages and anchors; keep old entries that still resolve.

    Returns the number of entries and the problems of entries that no longer
    resolve (those are kept too, so the tests keep failing until a redirect
    covers them).
    """
    old = read_ledger()
    broken = broken_entries(site, Redirects.load(), old)
    entries = sorted(set(ledger_entries(site)) | {entry for _, entry in old})
    LEDGER_FILE.write_text(LEDGER_HEADER + "\n".join(entries) + "\n")
    return len(entries), list(broken.values())


# --------------------------------------------------------------------------- #
# The MkDocs hook
# --------------------------------------------------------------------------- #

_redirects = Redirects()

ANCHOR_SCRIPT = """<script>(function (renamed) {
  function follow() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (!Object.prototype.hasOwnProperty.call(renamed, id)) return;
    history.replaceState(null, "", "#" + renamed[id]);
    var target = document.getElementById(renamed[id]);
    if (target) target.scrollIntoView();
  }
  document.addEventListener("DOMContentLoaded", follow);
  window.addEventListener("hashchange", follow);
})(%s);</script>"""

# Lands a link to a name the API reference no longer shows on the API section
# (API_PREFIX and API_SECTION, spelt out).
API_FALLBACK = """<script>(function () {
  function follow() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (id.indexOf("snippets.") !== 0 || document.getElementById(id)) return;
    var api = document.getElementById("api");
    if (!api) return;
    history.replaceState(null, "", "#api");
    api.scrollIntoView();
  }
  document.addEventListener("DOMContentLoaded", follow);
  window.addEventListener("hashchange", follow);
})();</script>"""

REDIRECT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="redirect">
<meta name="robots" content="noindex">
<title>Moved: {title}</title>
<link rel="canonical" href="{canonical}">
<script>(function (renamed) {{
  var id = decodeURIComponent(location.hash.slice(1));
  if (Object.prototype.hasOwnProperty.call(renamed, id)) id = renamed[id];
  location.replace("{target}" + (id ? "#" + encodeURIComponent(id) : ""));
}})({anchors});</script>
<meta http-equiv="refresh" content="0; url={target}">
</head>
<body><p>This page has moved to <a href="{target}">{title}</a>.</p></body>
</html>
"""


def on_config(config: Any) -> Any:
    global _redirects
    _redirects = Redirects.load()
    return config


def on_files(files: Any, config: Any) -> Any:
    for old, new in _redirects.pages.items():
        if files.get_file_from_path(old) is not None:
            raise RedirectsError(
                f"{REDIRECTS_FILE}: {old} is redirected but still exists in docs/"
            )
        if files.get_file_from_path(_redirects.final_page(new)) is None:
            raise RedirectsError(
                f"{REDIRECTS_FILE}: the target of {old}, {new}, is not in docs/"
            )
    return files


def on_post_page(output: str, page: Any, config: Any) -> str:
    renamed = _redirects.anchor_map(page.file.src_uri)
    scripts = []
    if renamed:
        scripts.append(ANCHOR_SCRIPT % json.dumps(renamed, sort_keys=True))
    if f'id="{API_SECTION}"' in output:
        scripts.append(API_FALLBACK)
    if not scripts:
        return output
    return output.replace("</head>", "\n".join(scripts) + "\n</head>", 1)


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    for old in _redirects.pages:
        new = _redirects.final_page(old)
        old_url, new_url = page_url(old), page_url(new)
        relative = posixpath.relpath(new_url or ".", old_url or ".") + "/"
        target = "./" if relative == "./" else relative
        out = site / old_url / "index.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            REDIRECT_PAGE.format(
                title=html.escape(new_url or "home"),
                canonical=html.escape((config.get("site_url") or "") + new_url),
                target=target,
                anchors=json.dumps(_redirects.moved_anchors(old), sort_keys=True),
            )
        )


if __name__ == "__main__":
    site_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "site")
    count, problems = update_ledger(site_dir)
    print(f"{LEDGER_FILE.relative_to(ROOT)}: {count} entries")
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)
