"""The theme's stylesheets cut down to the rules that can apply to the book.

WeasyPrint matches every selector of a stylesheet against every element of
the document it lays out, and the theme's stylesheets are written for a whole
site: search, navigation, header, dark mode. :func:`prune` keeps a selector
only if each element it describes could be in the book: every tag, class, id
and attribute it asks for occurs in the book's HTML, and it asks for no state
that paper never has (``:hover``, ``:focus`` and the like, which WeasyPrint's
selector engine never matches either). A rule whose selectors are all gone
goes too; nothing else changes, so the book looks the same. The test is on
the tags, classes, ids and attributes that occur anywhere in the book, not on
whole selectors, so a kept selector may still match nothing: the cut is safe
rather than tight.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# <link rel="stylesheet" href="..."> as Chromium writes it.
LINK = re.compile(r'<link rel="stylesheet" href="([^"]+)"')
# The states that cssselect2 (WeasyPrint's selector engine) never matches.
NEVER = {
    "visited",
    "hover",
    "active",
    "focus",
    "focus-within",
    "focus-visible",
    "target",
    "target-within",
}
SUFFIX = ".book.css"
MERGED = "book.css"
# url(...) that is not data:, another scheme or a fragment.
RELATIVE_URL = re.compile(
    r"""url\(\s*(?!["']?(?:[a-z][a-z0-9+.-]*:|#))""", re.IGNORECASE
)


class Inventory:
    """The tags, classes, ids and attributes that occur in a document."""

    def __init__(self, document: str) -> None:
        lower = document.lower()
        self.tags = set(re.findall(r"<([a-z][a-z0-9-]*)", lower))
        self.classes = {
            name
            for names in re.findall(r'\sclass="([^"]*)"', lower)
            for name in names.split()
        }
        self.ids = set(re.findall(r'\sid="([^"]*)"', lower))
        self.attributes = set(re.findall(r"\s([a-z_:][-a-z0-9_:.]*)=", lower))
        self.values = set(re.findall(r'\s([a-z_:][-a-z0-9_:.]*="[^"]{0,80}")', lower))

    def may_match(self, node: Any) -> bool:
        """False if nothing in the document can match this parsed selector."""
        from cssselect2 import parser

        if isinstance(node, parser.CombinedSelector):
            return self.may_match(node.left) and self.may_match(node.right)
        if isinstance(node, parser.CompoundSelector):
            return all(self.may_match(simple) for simple in node.simple_selectors)
        if isinstance(node, parser.LocalNameSelector):
            return node.lower_local_name in self.tags or node.local_name in self.tags
        if isinstance(node, parser.ClassSelector):
            return node.class_name.lower() in self.classes
        if isinstance(node, parser.IDSelector):
            return node.ident.lower() in self.ids
        if isinstance(node, parser.AttributeSelector):
            name = node.lower_name
            if name not in self.attributes:
                return False
            if (
                node.operator == "="
                and node.case_sensitive is not False
                and not set(node.value) & set('&"<>')
            ):
                return f'{name}="{node.value.lower()}"' in self.values or (
                    len(node.value) > 80
                )
            return True
        if isinstance(node, parser.PseudoClassSelector):
            return node.name not in NEVER
        # :not(), :is(), :where(), :has(), :nth-child() and the rest: maybe.
        return True


def prune_rules(rules: list[Any], inventory: Inventory) -> str:
    """The CSS text of ``rules`` without the selectors nothing can match."""
    import cssselect2
    import tinycss2

    out = []
    for rule in rules:
        if rule.type == "qualified-rule":
            kept = []
            for tokens in _split_commas(rule.prelude):
                try:
                    selectors = list(cssselect2.parser.parse(tokens))
                except cssselect2.SelectorError:
                    kept.append(tokens)  # WeasyPrint decides what to do with it
                    continue
                if all(inventory.may_match(s.parsed_tree) for s in selectors):
                    kept.append(tokens)
            if kept:
                prelude = ",".join(tinycss2.serialize(t).strip() for t in kept)
                out.append(f"{prelude}{{{tinycss2.serialize(rule.content)}}}")
        elif (
            rule.type == "at-rule"
            and rule.content is not None
            and (rule.lower_at_keyword in ("media", "supports", "layer", "container"))
        ):
            inner = prune_rules(
                tinycss2.parse_rule_list(
                    rule.content, skip_comments=True, skip_whitespace=True
                ),
                inventory,
            )
            if inner:
                prelude = tinycss2.serialize(rule.prelude)
                out.append(f"@{rule.at_keyword}{prelude}{{{inner}}}")
        elif rule.type != "error":
            out.append(rule.serialize())
    return "".join(out)


def _split_commas(prelude: list[Any]) -> list[list[Any]]:
    parts: list[list[Any]] = [[]]
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if any(t.type != "whitespace" for t in part)]


def prune(document: str, page: Path, parts: list[str]) -> list[str]:
    """Cut down the stylesheets ``document`` links to; return ``parts`` using them.

    ``page`` is the document's file. The cut-down sheets are written as one,
    ``book.css`` beside it, in their order: WeasyPrint matches each element
    against each stylesheet in turn, and one sheet is one search instead of
    four. If a sheet refers to a file by a relative URL (which would then
    point elsewhere), each cut-down sheet is written beside its source
    instead, named ``*.book.css``.
    """
    import tinycss2

    inventory = Inventory(document)
    sheets: dict[str, tuple[Path, str]] = {}
    for href in dict.fromkeys(LINK.findall(document)):
        source = (page.parent / href).resolve()
        if not source.is_file() or source.suffix != ".css":
            return parts  # not a stylesheet of the site: leave them all be
        rules = tinycss2.parse_stylesheet(
            source.read_text(), skip_comments=True, skip_whitespace=True
        )
        sheets[href] = (source, prune_rules(rules, inventory))
    if not sheets:
        return parts
    if not any(RELATIVE_URL.search(text) for _, text in sheets.values()):
        (page.parent / MERGED).write_text(
            "\n".join(text for _, text in sheets.values())
        )
        first = f'<link rel="stylesheet" href="{next(iter(sheets))}">'
        merged = f'<link rel="stylesheet" href="{MERGED}">'
        links = {f'<link rel="stylesheet" href="{href}">': "" for href in sheets}
        links[first] = merged
    else:
        links = {}
        for href, (source, text) in sheets.items():
            source.with_name(source.stem + SUFFIX).write_text(text)
            links[f'href="{href}"'] = f'href="{href.removesuffix(".css") + SUFFIX}"'
    pattern = re.compile("|".join(re.escape(link) for link in links))
    return [pattern.sub(lambda found: links[found[0]], part) for part in parts]
