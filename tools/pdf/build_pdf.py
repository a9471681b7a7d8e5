"""The whole guide as one PDF: ``make pdf`` (``python -m tools.pdf.build_pdf``).

Three steps, each one function below:

1. **One page of the whole guide.** A strict build (tools/build.py) with the
   print-site plugin switched on (mode ``pdf``, see mkdocs.yml) into
   ``build/pdf-site``. The plugin adds ``print_page/``: every page of the
   navigation in order, with internal links rewritten to anchors on that page
   and a table of contents that its script fills in.
2. **Pre-render in Chromium.** Playwright opens that page from ``file://`` in
   Debian's Chromium (tools/browser.py) and runs its scripts once. Then this
   module draws every mermaid diagram to SVG itself (text labels, no HTML
   inside the SVG, which WeasyPrint cannot lay out), adds the cover and each
   page's web address, keeps each content tab's label with its block, turns
   admonition icons into inline SVG, replaces each page's API reference with
   a link to it on the web, marks each chapter's last lines to stay
   together, and saves the result without scripts. Material's own script is
   not run: it would draw the diagrams into a closed shadow root and add
   buttons that mean nothing on paper.
3. **Lay out with WeasyPrint, in parallel.** WeasyPrint turns the
   pre-rendered page into the PDF with ``print.css`` beside this file: page
   size, running headers, page numbers, the PDF outline (``bookmark-level``).
   WeasyPrint, unlike Chromium, implements those parts of CSS Paged Media.
   The chapters are split into as many parts as there are cores
   (``CP_PDF_JOBS``), each laid out in a process of its own; a part numbers
   its pages from the count of the pages before it, handed to it once every
   part has counted its own (tools/pdf/weasy.py). The cover and contents are
   laid out last, with each entry's page number written in, and pypdf joins
   the parts' PDFs: pages, outline, named places, links between parts. In
   the pre-render, runs of code tokens drawn alike were made one run of text,
   since each token is a box to lay out and draw.

Nothing is fetched from the network: Chromium may read files and nothing
else, and WeasyPrint gets a URL fetcher that refuses anything but files.
The build fails when a link in the book points at no place in it.
"""

from __future__ import annotations

import datetime
import html
import multiprocessing
import os
import re
import sys
import tempfile
import time
import tomllib
import traceback
import urllib.parse
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
STYLESHEET = HERE / "print.css"
BUILD = ROOT / "build"
PRINT_SITE = BUILD / "pdf-site"
PDF = BUILD / "concurrency-patterns.pdf"
# The vendored diagram library, in the built site.
MERMAID = "assets/vendor/mermaid/mermaid.min.js"
# Scripts of the site that the book does without (see step 2 above).
SKIPPED_SCRIPTS = re.compile(r"/javascripts/(bundle\.[0-9a-f]+\.min|copy-link)\.js$")


class BookError(RuntimeError):
    """The book cannot be built as it should be; the message says why."""


@dataclass(frozen=True)
class Book:
    """What the cover and the PDF's metadata say."""

    title: str
    subtitle: str
    version: str
    author: str
    site_url: str
    language: str
    rights: str
    built: datetime.date

    @classmethod
    def from_project(cls) -> Book:
        from mkdocs.config import load_config

        config = load_config(str(ROOT / "mkdocs.yml"))
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        authors = ", ".join(a["name"] for a in project.get("authors", []))
        # SOURCE_DATE_EPOCH (reproducible builds) fixes the date on the cover.
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        built = (
            datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date()
            if epoch
            else datetime.date.today()
        )
        return cls(
            title=config["site_name"],
            subtitle=" ".join((config["site_description"] or "").split()),
            version=project["version"],
            author=authors or config["site_name"],
            site_url=config["site_url"],
            language=config["theme"]["language"],
            rights=config["copyright"] or "",
            built=built,
        )


# --------------------------------------------------------------------------- #
# Step 1: one page of the whole guide
# --------------------------------------------------------------------------- #


def build_print_site(site_dir: Path = PRINT_SITE) -> Path:
    """Build the site with the print page; return the print page's file."""
    from tools.build import build_site

    result = build_site(site_dir, mode="pdf")
    if result.returncode != 0:
        raise BookError(f"mkdocs build failed:\n{result.stdout}{result.stderr}")
    return site_dir / "print_page" / "index.html"


def page_addresses(site_dir: Path) -> dict[str, str]:
    """The print page's id of each page → the page's canonical web address."""
    canonical = re.compile(r'<link rel="canonical" href="([^"]+)"')
    addresses = {}
    for index in sorted(site_dir.rglob("index.html")):
        url = index.parent.relative_to(site_dir).as_posix()
        if url == "print_page":
            continue
        found = canonical.search(index.read_text()[:4000])
        if found:
            # The print-site plugin's page key: "a/b/" → "a-b", "" → "index".
            key = url.strip("./").replace("/", "-").lower() or "index"
            addresses[key] = found[1]
    return addresses


# --------------------------------------------------------------------------- #
# Step 2: pre-render in Chromium
# --------------------------------------------------------------------------- #

# Runs in the print page once its scripts have run. Each block is one change;
# the argument carries the cover's text, the pages' addresses and the site URL.
PRERENDER = r"""
async ({cover, addresses, siteUrl}) => {
  const LAST_PAGE_MIN_CHARS = 400;
  const remove = element => element.remove();
  const book = document.getElementById("print-site-page");
  const problems = [];

  // Diagrams: drawn here as SVG with text labels, from the fence's source.
  mermaid.initialize({
    startOnLoad: false,
    theme: "neutral",
    securityLevel: "strict",
    htmlLabels: false,
    fontFamily: "DejaVu Sans, sans-serif",
    flowchart: { htmlLabels: false, useMaxWidth: true },
    sequence: { useMaxWidth: true },
  });
  for (const [i, figure] of [...book.querySelectorAll(".cp-diagram")].entries()) {
    try {
      const { svg } = await mermaid.render(`cp-diagram-${i}`, figure.dataset.source);
      figure.innerHTML = svg;
    } catch (error) {
      problems.push(`diagram ${i + 1} does not render: ${error.message ?? error}`);
    }
    delete figure.dataset.source;
  }

  // The API reference stays on the web: on paper it repeats, signature by
  // signature, the code the page has just shown. Each page's API section
  // becomes a link to it (and links into it become text, below).
  // (A chapter is a print-page section too: only the pages have addresses.)
  for (const page of book.querySelectorAll("section.print-page[id]")) {
    const url = addresses[page.id];
    const blocks = page.querySelectorAll(":scope div.doc.doc-object.doc-module");
    if (!url || !blocks.length) continue;
    const note = document.createElement("p");
    note.className = "cp-api-online";
    const link = document.createElement("a");
    link.href = link.textContent = url + "#api";
    note.append("The API reference of this page is online: ", link, ".");
    blocks[0].replaceWith(note);
    blocks.forEach(block => block.remove());
  }

  // Chapters: a navigation section whose first page is its overview. The
  // section's own heading repeats the overview's title, so it goes.
  for (const section of book.querySelectorAll("section.md-section")) {
    const first = section.querySelector(":scope > section.print-page");
    section.querySelector(":scope > h1")?.remove();
    first?.classList.add("cp-chapter");
  }
  // A page at the top of the navigation (the home page) is a chapter too.
  for (const page of book.querySelectorAll(":scope > section.print-page[id]")) {
    page.classList.add("cp-chapter");
  }

  // A chapter's last blocks, a few lines' worth, go to a page together, so
  // that its last page is never a line or two that spilled over on their own.
  const BLOCKS =
    "p, li, pre, table, h2, h3, h4, h5, dl, .admonition, .cp-diagram, .highlight";
  for (const chapter of book.querySelectorAll(".cp-chapter")) {
    const pages = chapter.parentElement.classList.contains("md-section")
      ? [...chapter.parentElement.querySelectorAll(":scope > section.print-page")]
      : [chapter];
    const blocks = [...pages.pop().querySelectorAll(BLOCKS)]
      .filter(block => !block.parentElement.closest(BLOCKS));
    let text = 0;
    while (blocks.length && text < LAST_PAGE_MIN_CHARS) {
      const block = blocks.pop();
      text += block.textContent.trim().length;
      block.dataset.cpKeep = text < LAST_PAGE_MIN_CHARS ? "with-previous" : "first";
    }
  }

  // The contents list a chapter once: its overview page is the chapter.
  for (const chapter of book.querySelectorAll("#print-page-toc nav > ul > li")) {
    const overview = chapter.querySelector(":scope > nav > ul > li:first-child");
    if (!overview) continue;
    const target = overview.querySelector("a").getAttribute("href");
    chapter.querySelector(":scope > a").setAttribute("href", target);
    overview.remove();
  }

  // Each page says where it lives on the web, so that readers can cite it.
  for (const page of book.querySelectorAll("section.print-page[id]")) {
    const url = addresses[page.id];
    const title = page.querySelector(":scope > h1");
    if (!url || !title) continue;
    const address = document.createElement("p");
    address.className = "cp-address";
    const link = document.createElement("a");
    link.href = link.textContent = url;
    address.append(link);
    title.after(address);
  }

  // Content tabs: every block shown, each after its own label.
  for (const set of book.querySelectorAll(".tabbed-set")) {
    const labels = set.querySelectorAll(":scope > .tabbed-labels > label");
    const blocks = set.querySelectorAll(":scope > .tabbed-content > .tabbed-block");
    blocks.forEach((block, i) => {
      const label = document.createElement("p");
      label.className = "cp-tab-label";
      label.textContent = labels[i]?.textContent.trim() ?? "";
      block.prepend(label);
    });
    set.querySelectorAll(":scope > input, :scope > .tabbed-labels").forEach(remove);
  }

  // Admonition icons are CSS masks, which WeasyPrint does not draw: inline them.
  for (const title of book.querySelectorAll(".admonition-title, details > summary")) {
    const before = getComputedStyle(title, "::before");
    const mask = before.maskImage || before.webkitMaskImage || "";
    const data = /^url\("data:image\/svg\+xml;charset=utf-8,(.*)"\)$/s.exec(mask);
    if (!data) continue;
    const icon = document.createElement("span");
    icon.className = "cp-icon";
    icon.style.color = before.backgroundColor;
    icon.innerHTML = data[1].replace(/\\"/g, '"');
    icon.querySelector("svg")?.setAttribute("fill", "currentColor");
    title.prepend(icon);
  }
  book.querySelectorAll("details").forEach(d => d.setAttribute("open", ""));

  // Links. The plugin makes API references the site leaves unlinked
  // (Python's own types, say) into links to nowhere: they become text again,
  // as on the site. It writes a link to the home page as "#."; relative links
  // to files of the site become links to the published site.
  for (const a of book.querySelectorAll("a.autorefs[href^='#']")) {
    if (document.getElementById(a.getAttribute("href").slice(1))) continue;
    const text = Object.assign(document.createElement("span"), { title: a.title });
    text.append(...a.childNodes);
    a.replaceWith(text);
  }
  for (const a of book.querySelectorAll("a[href]")) {
    const href = a.getAttribute("href");
    if (href === "#." || href.startsWith("#.-")) {
      a.setAttribute("href", "#index" + href.slice(2));
    } else if (!href.startsWith("#") && !/^[a-z]+:/i.test(href)) {
      const path = new URL(href, location.href).pathname;
      const site = new URL("..", location.href).pathname;
      a.setAttribute("href", siteUrl + path.slice(site.length));
    }
  }

  // Code: the tokens of a run drawn alike become one run of text. Most
  // tokens (names, punctuation) are drawn like their neighbours; each span
  // is a box that the layout breaks into lines and draws on its own.
  // (A token without a background of its own shows the block's.)
  const looks = (element, block = false) => {
    const style = getComputedStyle(element);
    const background = style.backgroundColor;
    return [style.color, style.fontWeight, style.fontStyle, style.textDecorationLine,
            block || background === "rgba(0, 0, 0, 0)" ? "" : background].join("|");
  };
  const plainBackground = look => look.endsWith("|none|");
  // Every style is read before anything changes: a change in between would
  // make the browser work out the page's styles again for the next read.
  const plans = [...book.querySelectorAll("pre > code")].map(code => {
    const own = looks(code, true);
    const runs = [];  // [look, text, className] or [null, node]
    for (const node of [...code.childNodes]) {
      let look, text, name = "";
      if (node.nodeType === Node.TEXT_NODE) {
        [look, text] = [own, node.data];
      } else if (node.nodeType === Node.ELEMENT_NODE && node.tagName === "SPAN"
                 && !node.children.length && !node.id) {
        [look, text, name] = [looks(node), node.textContent, node.className];
      } else {
        runs.push([null, node]);
        continue;
      }
      const last = runs[runs.length - 1];
      // White space looks the same in any colour.
      if (last && last[0] !== null && (last[0] === look ||
          (!text.trim() && plainBackground(last[0]) && plainBackground(look)))) {
        last[1] += text;
      } else {
        runs.push([look, text, name]);
      }
    }
    return [code, own, runs];
  });
  for (const [code, own, runs] of plans) {
    code.replaceChildren(...runs.map(([look, text, name]) => {
      if (look === null) return text;
      if (look === own) return document.createTextNode(text);
      const span = document.createElement("span");
      span.className = name;
      span.textContent = text;
      return span;
    }));
  }

  // What means nothing on paper: permalinks, buttons, scripts.
  book.querySelectorAll(".headerlink, button, .md-clipboard, .cp-copy").forEach(remove);
  document.querySelectorAll("script").forEach(remove);

  // The book is the cover and the print page's content, nothing around it.
  const body = document.createElement("body");
  const article = document.createElement("article");
  article.className = "md-typeset cp-book";
  article.innerHTML = cover;
  article.append(book);
  body.append(article);
  document.body.replaceWith(body);
  return problems;
}
"""

# Runs before the page's own scripts: takes each diagram's source out of the
# page, so that no script draws it before PRERENDER does.
TAKE_DIAGRAMS = """
document.addEventListener("DOMContentLoaded", () => {
  for (const pre of document.querySelectorAll("pre.mermaid")) {
    const figure = document.createElement("div");
    figure.className = "cp-diagram";
    figure.dataset.source = pre.textContent;
    pre.replaceWith(figure);
  }
});
"""

# Runs after PRERENDER: the book's parts, each a whole HTML document of its
# own. ``groups`` lists, for each part, the indexes of the print page's
# top-level sections it holds (0 is the contents); the first part also has
# the cover. A link to a place in another part becomes "cp-book:<id>", which
# join() turns back into a link to that place once the parts are one PDF.
SPLIT = r"""
({groups, link}) => {
  const parts = [];
  for (const [n, keep] of groups.entries()) {
    const root = document.documentElement.cloneNode(true);
    const book = root.querySelector("#print-site-page");
    [...book.children].forEach((section, i) => keep.includes(i) || section.remove());
    if (n > 0) root.querySelector("#cover")?.remove();
    const ids = new Set([...root.querySelectorAll("[id]")].map(element => element.id));
    for (const a of root.querySelectorAll("a[href^='#']")) {
      const target = a.getAttribute("href").slice(1);
      if (!ids.has(decodeURIComponent(target))) a.setAttribute("href", link + target);
    }
    parts.push("<!DOCTYPE html>\n" + root.outerHTML);
  }
  return parts;
}
"""

COVER = """
<section class="cp-cover" id="cover">
  <p class="cp-cover__kicker">A field guide</p>
  <h1 class="cp-cover__title">{title}</h1>
  <p class="cp-cover__subtitle">{subtitle}</p>
  <dl class="cp-cover__facts">
    <dt>Version</dt><dd>{version}</dd>
    <dt>Built</dt><dd>{built}</dd>
    <dt>Online</dt><dd><a href="{site_url}">{site_url}</a></dd>
  </dl>
  <p class="cp-cover__rights">{rights}</p>
</section>
"""


def cover_html(book: Book) -> str:
    return COVER.format(
        title=html.escape(book.title),
        subtitle=html.escape(book.subtitle),
        version=html.escape(book.version),
        built=book.built.isoformat(),
        site_url=html.escape(book.site_url),
        rights=html.escape(book.rights),
    )


def head_metadata(book: Book) -> str:
    """What WeasyPrint writes into the PDF's document information."""
    fields = {
        "author": book.author,
        "description": book.subtitle,
        "keywords": "concurrency, patterns, message queues, webhooks",
        "generator": f"{book.title} {book.version}",
        "dcterms.created": book.built.isoformat(),
    }
    metas = "".join(
        f'<meta name="{name}" content="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return f"<title>{html.escape(book.title)}</title>{metas}"


@dataclass(frozen=True)
class Prerendered:
    """The pre-rendered book: whole, and in parts to lay out side by side."""

    document: str
    parts: list[str]  # the cover and the contents first, then the chapters


def prerender(
    print_page: Path, book: Book, addresses: dict[str, str], jobs: int = 1
) -> Prerendered:
    """Run the print page in Chromium; return its HTML, ready for WeasyPrint.

    ``jobs``: how many parts the chapters are split into.
    """
    from playwright.sync_api import Route

    from tools import browser

    try:
        browser.require()
    except browser.NoChromium as error:
        raise BookError(str(error)) from None

    refused: list[str] = []

    def only_files(route: Route) -> None:
        url = route.request.url
        if not url.startswith("file://"):
            refused.append(url)
            route.abort()
        elif SKIPPED_SCRIPTS.search(url):
            route.fulfill(body="", content_type="text/javascript")
        else:
            route.continue_()

    with browser.chromium() as chromium:
        page = chromium.new_page()
        page.route("**/*", only_files)
        page.add_init_script(TAKE_DIAGRAMS)
        page.goto(print_page.as_uri(), wait_until="load")
        if not page.evaluate("typeof mermaid !== 'undefined'"):
            # However the site loads the diagram library, the book needs it now.
            library = print_page.parent.parent / MERMAID
            if not library.exists():
                raise BookError(f"the diagram library is not at {library}")
            page.add_script_tag(path=library)
        problems = page.evaluate(
            PRERENDER,
            {
                "cover": cover_html(book),
                "addresses": addresses,
                "siteUrl": book.site_url,
            },
        )
        document = page.content()
        sizes = page.evaluate(
            "() => [...document.getElementById('print-site-page').children]"
            ".map(section => section.innerHTML.length)"
        )
        groups = [[0], *parts_of(sizes[1:], jobs, first=1)]
        parts = page.evaluate(SPLIT, {"groups": groups, "link": PART_LINK})
    if refused:
        raise BookError("the print page asked for other hosts: " + ", ".join(refused))
    if problems:
        raise BookError("\n".join(problems))
    return Prerendered(finish(document, book), [finish(part, book) for part in parts])


def finish(document: str, book: Book) -> str:
    """The book's title, metadata and language in a document's head."""
    document = re.sub(r"<title>.*?</title>", "", document, count=1, flags=re.S)
    document = document.replace("<head>", "<head>" + head_metadata(book), 1)
    return re.sub(r"<html\b[^>]*>", f'<html lang="{book.language}">', document, count=1)


def parts_of(sizes: list[int], jobs: int, first: int = 0) -> list[list[int]]:
    """Split sections in order into at most ``jobs`` runs of about equal size.

    Returns each run's section indexes, counted from ``first``; the largest
    run is as small as it can be.
    """
    count = len(sizes)
    jobs = max(1, min(jobs, count))
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    # best[k][i]: the largest run when the first i sections make k runs.
    best = [[float("inf")] * (count + 1) for _ in range(jobs + 1)]
    cut = [[0] * (count + 1) for _ in range(jobs + 1)]
    best[0][0] = 0
    for k in range(1, jobs + 1):
        for i in range(1, count + 1):
            for j in range(k - 1, i):
                largest = max(best[k - 1][j], prefix[i] - prefix[j])
                if largest < best[k][i]:
                    best[k][i], cut[k][i] = largest, j
    runs, end = [], count
    for k in range(jobs, 0, -1):
        start = cut[k][end]
        runs.append(list(range(first + start, first + end)))
        end = start
    return [run for run in reversed(runs) if run]


def broken_links(document: str) -> list[str]:
    """Internal links of the book that point at no element of it."""
    ids = set(re.findall(r'\sid="([^"]+)"', document))
    targets = re.findall(r'<a\b[^>]*\shref="#([^"]*)"', document)
    return sorted({html.unescape(t) for t in targets} - {html.unescape(i) for i in ids})


# --------------------------------------------------------------------------- #
# Step 3: lay out with WeasyPrint
# --------------------------------------------------------------------------- #


# A link from one part of the book to a place in another (SPLIT, join()).
PART_LINK = "cp-book:"
# The contents' page numbers, once the parts' pages are counted.
CONTENTS_NUMBERS = """
#print-page-toc a[data-cp-page]::after {
  content: leader(". ") attr(data-cp-page) !important;
}
"""
# While the contents are counted: room for the widest page number.
PLACEHOLDER_PAGE = "888"


def jobs() -> int:
    """How many processes lay out the book: ``$CP_PDF_JOBS``, else the cores."""
    return max(1, int(os.environ.get("CP_PDF_JOBS") or os.cpu_count() or 1))


def _fetcher() -> Any:
    import weasyprint

    # Files and inline data only; anything else, or a missing file, stops it.
    return weasyprint.URLFetcher(
        allowed_protocols={"file", "data"}, fail_on_errors=True
    )


def render(document: str, base: str, extra_css: str = "") -> Any:
    """Lay out one document with the book's stylesheet; a WeasyPrint Document."""
    import weasyprint

    from tools.pdf import weasy

    weasy.fast_svg_text()
    fetcher = _fetcher()
    stylesheets = [weasyprint.CSS(filename=str(STYLESHEET), url_fetcher=fetcher)]
    if extra_css:
        stylesheets.append(weasyprint.CSS(string=extra_css))
    return weasyprint.HTML(string=document, base_url=base, url_fetcher=fetcher).render(
        stylesheets=stylesheets, optimize_images=True
    )


def save(rendering: Any, target: Path) -> None:
    rendering.write_pdf(target, pdf_identifier=False, uncompressed_pdf=False)


def lay_out_part(document: str, base: str, target: str, conn: Connection) -> None:
    """A worker process: lay out one part of the book and write its PDF.

    It tells the parent how many pages the part has, waits for the number of
    pages before it, and tells where each of its places landed.
    """
    try:
        from tools.pdf import weasy

        def offset(pages: int) -> int:
            conn.send(("pages", pages))
            return int(conn.recv())

        weasy.number_pages_from(offset)
        rendering = render(document, base)
        anchors: dict[str, int] = {}
        for index, page in enumerate(rendering.pages):
            for name in page.anchors:
                anchors.setdefault(name, index)
        conn.send(("anchors", anchors))
        save(rendering, Path(target))
        conn.send(("done", None))
    except BaseException:  # the parent reports it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _expect(conn: Connection, what: str) -> Any:
    try:
        kind, value = conn.recv()
    except EOFError:
        raise BookError("a process laying out the book stopped") from None
    if kind == "error":
        raise BookError(f"laying out a part of the book failed:\n{value}")
    if kind != what:
        raise BookError(f"expected {what} from a part of the book, got {kind}")
    return value


def numbered_contents(contents: str, pages: dict[str, int]) -> str:
    """The contents part with each entry's page number written in."""
    link = re.compile(r'href="' + PART_LINK + r'([^"]*)"')

    def number(found: re.Match[str]) -> str:
        name = urllib.parse.unquote(html.unescape(found[1]))
        if name not in pages:
            raise BookError(f"the contents link to #{name}, which is on no page")
        return f'{found[0]} data-cp-page="{pages[name]}"'

    return link.sub(number, contents)


def write_pdf(parts: list[str], base: Path, target: Path) -> None:
    """Lay out the parts side by side and join them into the PDF at ``target``.

    ``parts[0]`` is the cover and the contents; the others, the chapters in
    order, each go to a process of their own. The contents are laid out last,
    when every entry's page number is known.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    contents, chapters = parts[0], parts[1:]
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        files = [Path(scratch) / f"part-{n}.pdf" for n in range(len(parts))]
        workers: list[tuple[BaseProcess, Connection]] = []
        try:
            for part, file in zip(chapters, files[1:], strict=True):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=lay_out_part,
                    args=(part, base.as_uri(), str(file), theirs),
                    daemon=True,
                )
                process.start()
                theirs.close()
                workers.append((process, mine))
            placeholder = re.sub(
                r'href="' + PART_LINK + r'[^"]*"',
                rf'\g<0> data-cp-page="{PLACEHOLDER_PAGE}"',
                contents,
            )
            first = len(render(placeholder, base.as_uri(), CONTENTS_NUMBERS).pages)
            offsets, before = [], first
            for _, conn in workers:
                offsets.append(before)
                before += _expect(conn, "pages")
            for (_, conn), offset in zip(workers, offsets, strict=True):
                conn.send(offset)
            pages: dict[str, int] = {}
            for (_, conn), offset in zip(workers, offsets, strict=True):
                for name, index in _expect(conn, "anchors").items():
                    pages.setdefault(name, offset + index + 1)
            numbered = numbered_contents(contents, pages)
            rendering = render(numbered, base.as_uri(), CONTENTS_NUMBERS)
            if len(rendering.pages) != first:
                raise BookError(
                    f"the contents took {len(rendering.pages)} pages with their page"
                    f" numbers and {first} without: the numbers would be wrong"
                )
            save(rendering, files[0])
            for _, conn in workers:
                _expect(conn, "done")
        finally:
            for worker, conn in workers:
                conn.close()
                worker.join(timeout=5)
                if worker.is_alive():
                    worker.kill()
        join(files, target)


def join(files: list[Path], target: Path) -> None:
    """One PDF of the parts: pages, outline, places, links between parts."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    writer = PdfWriter()
    first = PdfReader(files[0])
    for file in files:
        writer.append(file)
    names = set(writer.named_destinations)
    broken = []
    for number, page in enumerate(writer.pages, 1):
        for annotation in page.get("/Annots") or []:
            link = annotation.get_object()
            action = link.get("/A")
            uri = str(action.get("/URI", "")) if action else ""
            if not uri.startswith(PART_LINK):
                continue
            name = urllib.parse.unquote(uri[len(PART_LINK) :])
            if name not in names:
                broken.append(f"page {number}: #{name}")
            del link["/A"]
            link[NameObject("/Dest")] = TextStringObject(name)
    if broken:
        raise BookError("links to no place in the book: " + ", ".join(broken))
    if first.metadata:
        writer.add_metadata(dict(first.metadata))
    catalog = cast(DictionaryObject, first.trailer["/Root"].get_object())
    language = catalog.get("/Lang")
    if language is not None:
        writer._root_object[NameObject("/Lang")] = TextStringObject(str(language))
    writer.write(target)


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #


def build(target: Path = PDF, site_dir: Path = PRINT_SITE) -> Path:
    """Build the PDF at ``target``; return its path."""
    book = Book.from_project()
    print_page = build_print_site(site_dir)
    book_html = prerender(print_page, book, page_addresses(site_dir), jobs())
    prerendered = print_page.with_name("book.html")
    prerendered.write_text(book_html.document)
    broken = broken_links(book_html.document)
    if broken:
        raise BookError(
            f"links to no place in the book ({prerendered}): " + ", ".join(broken)
        )
    write_pdf(book_html.parts, prerendered, target)
    return target


def main() -> int:
    started = time.perf_counter()
    try:
        target = build()
    except BookError as error:
        print(f"make pdf: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    size = target.stat().st_size / 1e6
    print(f"{target.relative_to(ROOT)}: {size:.1f} MB in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
