"""Link-preview images: one 1200 x 630 PNG per page, drawn at build time.

Wikis and chats show the Open Graph image of a pasted link. The theme's own
social-card plugin downloads its fonts, so this hook draws the cards with
Pillow and the typeface Pillow ships with (Aileron), with no network access.
Each card is cached under .cache/previews by the text it shows, so a rebuild
only draws the cards whose title or description changed.

The page template (overrides/main.html) points og:image and twitter:image at
``assets/previews/<page path>.png``; ``preview_path`` is the single place that
names that file.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "previews"
SIZE = (1200, 630)
BACKGROUND = (26, 35, 126)  # indigo 900, the theme's primary family
ACCENT = (140, 158, 255)  # indigo A100
TEXT = (255, 255, 255)
MUTED = (197, 202, 233)  # indigo 100
DESIGN_VERSION = "1"


def preview_path(src_uri: str) -> str:
    """Where a page's card goes: ``a/b.md`` → ``assets/previews/a/b.png``."""
    return "assets/previews/" + src_uri[: -len(".md")] + ".png"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_card(
    site_name: str, section: str, title: str, description: str
) -> Image.Image:
    """The card: site and section on top, the title large, the description below."""
    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 24, SIZE[1]), fill=ACCENT)
    x = 80
    draw.text((x, 64), site_name.upper(), font=_font(30), fill=ACCENT)
    if section:
        draw.text((x, 108), section, font=_font(30), fill=MUTED)
    y = 190
    for line in textwrap.wrap(title, width=28)[:3]:
        draw.text((x, y), line, font=_font(68), fill=TEXT)
        y += 82
    y += 24
    lines = textwrap.wrap(description, width=62)
    if len(lines) > 3:
        lines = [*lines[:2], lines[2].rstrip(" ,.;:") + " …"]
    for line in lines:
        draw.text((x, y), line, font=_font(32), fill=MUTED)
        y += 44
    return image


def card_for(page: Any, config: Any) -> tuple[str, str, str, str]:
    meta = page.meta or {}
    title = str(meta.get("title") or page.title or config["site_name"])
    description = " ".join(
        str(meta.get("description") or config.get("site_description") or "").split()
    )
    parent = page.parent
    section = ""
    while parent is not None:
        section = parent.title
        parent = parent.parent
    return config["site_name"], section, title, description


_pages: list[tuple[str, tuple[str, str, str, str]]] = []


def on_pre_build(config: Any) -> None:
    _pages.clear()


def on_page_context(context: Any, page: Any, config: Any, nav: Any) -> Any:
    _pages.append((page.file.src_uri, card_for(page, config)))
    return context


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    CACHE.mkdir(parents=True, exist_ok=True)
    for src_uri, card in _pages:
        key = hashlib.sha256("\0".join((DESIGN_VERSION, *card)).encode()).hexdigest()
        cached = CACHE / f"{key[:24]}.png"
        if not cached.exists():
            draw_card(*card).save(cached, optimize=True)
        out = site / preview_path(src_uri)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, out)
