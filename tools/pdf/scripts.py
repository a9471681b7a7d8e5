"""The scripts that run in Chromium's copy of the print page (tools/pdf/prerender.py).

* ``TAKE_DIAGRAMS`` runs before the page's own scripts: it takes each
  diagram's source out of the page, so that no script draws it first, and
  keeps the book off the screen until ``PRERENDER`` is done with it.
* ``PRERENDER`` runs once the page's scripts have run: each block of it is one
  change that makes the page a book (diagrams as SVG, the cover, addresses,
  tabs, icons, links, code runs); it returns what went wrong, and the
  diagrams it drew (those not drawn by an earlier build).
* ``SPLIT`` runs last and returns the book's parts, each a whole document.
"""

from __future__ import annotations

__all__ = ["PRERENDER", "SPLIT", "TAKE_DIAGRAMS"]

# Runs in the print page once its scripts have run. Each block is one change;
# the argument carries the cover's text, the pages' addresses and the site URL.
PRERENDER = r"""
async ({cover, addresses, siteUrl, drawn, drawnId}) => {
  const LAST_PAGE_MIN_CHARS = 400;
  const remove = element => element.remove();
  const book = document.getElementById("print-site-page");
  const problems = [];
  const rendered = {};

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
  // A diagram drawn by an earlier build (``drawn``, by its source) is used
  // as it is, with its ids made this one's; the others are drawn and returned.
  for (const [i, figure] of [...book.querySelectorAll(".cp-diagram")].entries()) {
    try {
      let svg = drawn[figure.dataset.source]?.replaceAll(drawnId, `cp-diagram-${i}`);
      if (svg === undefined) {
        ({ svg } = await mermaid.render(`cp-diagram-${i}`, figure.dataset.source));
        rendered[figure.dataset.source] = svg.replaceAll(`cp-diagram-${i}`, drawnId);
      }
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

  // Shown again (TAKE_DIAGRAMS hid it).
  book.style.removeProperty("display");
  if (!book.getAttribute("style")) book.removeAttribute("style");

  // The book is the cover and the print page's content, nothing around it.
  const body = document.createElement("body");
  const article = document.createElement("article");
  article.className = "md-typeset cp-book";
  article.innerHTML = cover;
  article.append(book);
  body.append(article);
  document.body.replaceWith(body);
  return { problems, rendered };
}
"""

# Runs before the page's own scripts: takes each diagram's source out of the
# page, so that no script draws it before PRERENDER does.
TAKE_DIAGRAMS = """
document.addEventListener("DOMContentLoaded", () => {
  // The book is not drawn on screen until PRERENDER is done: each diagram
  // drawn would make Chromium lay out the whole book again, page after page.
  // (Styles are still computed, which is all that PRERENDER reads.)
  document.getElementById("print-site-page")?.style.setProperty("display", "none");
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
