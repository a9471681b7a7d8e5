"""Two changes to how WeasyPrint lays out the book, applied in the process that
lays it out (tools/pdf/layout.py); written against WeasyPrint 70.

* **Page numbers from an offset.** The book is laid out in parts, one process
  each, side by side. A part's page numbers depend on how many pages come
  before it, which is known only once every part is laid out. WeasyPrint makes
  the margin boxes (running headers, page numbers) after all of a document's
  pages are laid out, so :func:`number_pages_from` makes them wait there for
  the offset, then number the pages from it: nothing is laid out twice.
* **SVG text in one run.** WeasyPrint draws SVG text letter by letter, a text
  layout per letter, so that each letter may have its own position or
  rotation. Diagram labels have one position per label; :func:`fast_svg_text`
  lays such a label out once. The labels in the book's diagrams took a third
  of the time spent drawing the whole book.
"""

from __future__ import annotations

from collections.abc import Callable
from math import inf
from typing import Any

_ORIGINAL_TEXT: Any = None


def number_pages_from(offset: Callable[[int], int]) -> None:
    """Number the pages of the next documents laid out from ``offset(pages)``.

    ``offset`` gets the document's number of pages once its pages are laid
    out, and returns how many pages come before the document.
    """
    import weasyprint.layout

    make_margin_boxes = weasyprint.layout.page.make_margin_boxes
    known: dict[int, int] = {}

    def margin_boxes(context: Any, page: Any, state: Any) -> Any:
        key = id(context)
        if key not in known:
            # make_all_pages keeps one entry per page, plus the initial one.
            known.clear()
            known[key] = offset(len(context.page_maker) - 1)
        quote_depth, counter_values, counter_scopes, page_groups = state
        counter_values = dict(counter_values)
        counter_values["page"] = [n + known[key] for n in counter_values["page"]]
        return make_margin_boxes(
            context, page, (quote_depth, counter_values, counter_scopes, page_groups)
        )

    weasyprint.layout.make_margin_boxes = margin_boxes


def fast_svg_text() -> None:
    """Lay out SVG text with a single position as one run of glyphs."""
    global _ORIGINAL_TEXT
    import weasyprint.svg

    if _ORIGINAL_TEXT is not None:
        return
    _ORIGINAL_TEXT = weasyprint.svg.text
    for tag, draw in list(weasyprint.svg.TAGS.items()):
        if draw is _ORIGINAL_TEXT:
            weasyprint.svg.TAGS[tag] = _text
    # draw_node compares a tag's function with this name to find text nodes.
    weasyprint.svg.text = _text


def _single(node: Any, name: str) -> bool:
    from weasyprint.svg.utils import normalize

    value = node.attrib.get(name)
    return value is None or len(normalize(value).strip().split(" ")) <= 1


def _text(svg: Any, node: Any, font_size: float) -> None:
    """WeasyPrint's ``svg.text.text``, with one layout per run of text."""
    if (
        not node.text
        or any(not _single(node, name) for name in ("x", "y", "dx", "dy"))
        or "rotate" in node.attrib
        or node.get("letter-spacing")
        or node.get("textLength")
    ):
        _ORIGINAL_TEXT(svg, node, font_size)
        return

    from weasyprint.css.properties import INITIAL_VALUES
    from weasyprint.draw.text import draw_emojis, draw_first_line
    from weasyprint.matrix import Matrix
    from weasyprint.svg.bounding_box import extend_bounding_box
    from weasyprint.svg.text import Style, TextBox
    from weasyprint.svg.utils import normalize, size
    from weasyprint.text.line_break import split_first_line

    style = Style()
    style.update(INITIAL_VALUES)
    style.font_config = svg.font_config
    style["font_family"] = [
        font.strip("\"'") for font in node.get("font-family", "sans-serif").split(",")
    ]
    style["font_style"] = node.get("font-style", "normal")
    weight = node.get("font-weight", 400)
    if node.get("direction") in ("ltr", "rtl"):
        style["direction"] = node.get("direction")
    try:
        style["font_weight"] = {"normal": 400, "bold": 700}.get(weight) or int(weight)
    except ValueError:
        style["font_weight"] = 400
    style["font_size"] = font_size

    def first(name: str, reference: float) -> float | None:
        value = node.attrib.get(name)
        return (
            None
            if value is None
            else size(normalize(value).strip(), font_size, reference)
        )

    x, y = first("x", svg.inner_width), first("y", svg.inner_height)
    dx, dy = first("dx", svg.inner_width), first("dy", svg.inner_height)

    layout, _, _, width, height, baseline = split_first_line(
        node.text, style, svg.context, inf, 0
    )
    ascent, descent = font_size * 0.8, font_size * 0.2
    y_align = 0.0
    display_anchor = node.get("display-anchor")
    alignment_baseline = node.get("dominant-baseline", node.get("alignment-baseline"))
    if display_anchor == "middle":
        y_align = -height / 2
    elif display_anchor == "top":
        pass
    elif display_anchor == "bottom":
        y_align = -height
    elif alignment_baseline in ("central", "middle"):
        y_align = (ascent + descent) / 2 - descent
    elif alignment_baseline in (
        "text-before-edge",
        "before_edge",
        "top",
        "hanging",
        "text-top",
    ):
        y_align = ascent
    elif alignment_baseline in (
        "text-after-edge",
        "after_edge",
        "bottom",
        "text-bottom",
    ):
        y_align = -descent

    if x is not None:
        svg.cursor_d_position[0] = 0
    if y is not None:
        svg.cursor_d_position[1] = 0
    svg.cursor_d_position[0] += dx or 0
    svg.cursor_d_position[1] += dy or 0
    x = svg.cursor_position[0] if x is None else x
    y = svg.cursor_position[1] if y is None else y
    svg.cursor_position = x + width, y
    x_position = x + svg.cursor_d_position[0]
    y_position = y + svg.cursor_d_position[1] + y_align
    node.text_bounding_box = extend_bounding_box(
        node.text_bounding_box,
        (
            (x_position, y_position - baseline),
            (x_position + width, y_position - baseline + height),
        ),
    )

    svg.stream.push_state()
    fill, stroke = svg.set_graphical_state(node, font_size)
    svg.stream.begin_text()
    layout.reactivate(style)
    svg.fill_stroke(fill, stroke, text=True)
    text_box = TextBox(layout, style)
    text_box.baseline = baseline
    emojis = draw_first_line(
        svg.stream, text_box, "none", "none", Matrix(d=-1, e=x_position, f=y_position)
    )
    svg.stream.end_text()
    svg.stream.pop_state()
    draw_emojis(svg.stream, style, x, y, emojis)
