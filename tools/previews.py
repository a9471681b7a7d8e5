"""Link-preview images: one 1200 x 630 PNG per page, drawn at build time.

Wikis and chats show the Open Graph image of a pasted link. The theme's own
social-card plugin downloads its fonts, so this hook draws the cards with
Pillow and the typeface Pillow ships with (Aileron), with no network access.
Each card is cached under .cache/previews, keyed by the text it shows, by
this module's source (the design) and by Pillow's version (the typeface and
the PNG encoder), so a rebuild only draws the cards whose text or design
changed (``CP_BUILD_CACHE=0`` draws them all). A card is written to a
temporary file and renamed into place, and a cached file that does not end
as a PNG ends is drawn again. A card takes about 20 ms of CPU; the cards a
build has not drawn before are drawn in a worker process while the pages are
built, and collected at the end.

The page template (overrides/main.html) points og:image and twitter:image at
``assets/previews/<page path>.png``; ``preview_path`` is the single place that
names that file.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import shutil
import tempfile
import textwrap
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "previews"
SIZE = (1200, 630)
BACKGROUND = (26, 35, 126)  # indigo 900, the theme's primary family
ACCENT = (140, 158, 255)  # indigo A100
TEXT = (255, 255, 255)
MUTED = (197, 202, 233)  # indigo 100
DESIGN_VERSION = "1"
# CP_BUILD_CACHE=0 draws every card again (tools/build_cache.py).
SWITCH = "CP_BUILD_CACHE"
# A PNG ends with its IEND chunk: a file cut short does not.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


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


def card_key(card: tuple[str, str, str, str]) -> str:
    """What a card is cached by: its text, this module's source, Pillow's version."""
    design = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    parts = (DESIGN_VERSION, design, PIL.__version__, *card)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _complete(path: Path) -> bool:
    """Whether ``path`` is a whole PNG file (one cut short has no IEND chunk)."""
    try:
        with path.open("rb") as png:
            png.seek(-len(PNG_END), os.SEEK_END)
            return png.read() == PNG_END
    except OSError:
        return False


def drawn_card(card: tuple[str, str, str, str], cache: Path) -> tuple[Path, bool]:
    """Where the card's PNG goes under ``cache``, and whether a whole one is
    there to use (never with the caches switched off)."""
    cached = cache / f"{card_key(card)[:24]}.png"
    return cached, os.environ.get(SWITCH) != "0" and _complete(cached)


def cached_card(card: tuple[str, str, str, str], cache: Path | None = None) -> Path:
    """The card's PNG under ``cache`` (.cache/previews), drawn if missing or cut
    short."""
    cache = CACHE if cache is None else cache
    cached, usable = drawn_card(card, cache)
    if usable:
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        # zlib's default level: optimize=True (level 9 and a search for the
        # best filter) took four times as long for a file 4 % smaller.
        draw_card(*card).save(out, format="PNG")
    os.replace(temporary, cached)
    return cached


_pages: list[tuple[str, Path | Future[Path]]] = []
_drawing: list[ProcessPoolExecutor] = []


def _importable() -> Any:
    """This module as the worker process will import it, or None.

    MkDocs loads a hook from its file under another name, which a worker
    cannot import; ``tools.previews`` is importable when the project's folder
    is on the path (``python -m tools.build`` puts it there; a bare
    ``properdocs build`` does not).
    """
    try:
        module = importlib.import_module("tools.previews")
    except ImportError:
        return None
    same = Path(module.__file__ or "").resolve() == Path(__file__).resolve()
    return module if same else None


def _drawer() -> ProcessPoolExecutor:
    """The process that draws this build's new cards, started for the first one.

    A process of its own, not a thread: drawing text holds the GIL, and in a
    thread it took turns with the build on one core while the other waited.
    """
    if not _drawing:
        spawn = multiprocessing.get_context("spawn")
        _drawing.append(ProcessPoolExecutor(max_workers=1, mp_context=spawn))
    return _drawing[0]


def on_pre_build(config: Any) -> None:
    _pages.clear()


def on_page_context(context: Any, page: Any, config: Any, nav: Any) -> Any:
    card = card_for(page, config)
    cached, usable = drawn_card(card, CACHE)
    if usable:
        _pages.append((page.file.src_uri, cached))
        return context
    importable = _importable()
    if importable is None:  # no worker can import this module: drawn here
        _pages.append((page.file.src_uri, cached_card(card)))
    else:
        draw = importable.cached_card
        _pages.append((page.file.src_uri, _drawer().submit(draw, card, CACHE)))
    return context


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    try:
        for src_uri, drawn in _pages:
            out = site / preview_path(src_uri)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(drawn if isinstance(drawn, Path) else drawn.result(), out)
    finally:
        _stop()


def _stop() -> None:
    for pool in _drawing:
        pool.shutdown(cancel_futures=True)
    _drawing.clear()


def on_build_error(error: Exception) -> None:
    _stop()
