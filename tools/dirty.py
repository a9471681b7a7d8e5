"""Live reload that rebuilds only what an edit changed (``make serve``).

``mkdocs serve`` rebuilt the whole site after every save (about ten seconds
for 57 pages). tools/build.py serves with MkDocs' dirty builds instead: a
rebuild renders only the pages whose output is older than their source. This
hook makes that safe for this site:

* A page is rebuilt when a file it includes changed, not only its Markdown:
  a snippet (``--8<-- "snippets/..."``) or a module of its API reference
  (``::: snippets.x``).
* Everything is rebuilt when something every page depends on changed: the
  configuration, the theme overrides, the hooks, the redirects.
* The search index keeps every page: a dirty build writes the entries of the
  rebuilt pages only, so they are merged into those of the last full build.

Each rebuild loads the configuration again, and with it new template
environments (the theme's, the API reference's), which compiled every
template again: a third of a one-page rebuild. Under serve, compiled templates
are kept in memory, keyed by each template's source (Jinja's bytecode cache).
A page with an API reference made griffe parse every module of ``snippets``
again, most of that page's rebuild: under serve, the syntax trees are kept
too, one per module, parsed again when its source changes.

The published site, the PDF and the tests use full builds; this hook does
nothing there.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What every page is made with: a change here rebuilds them all.
SHARED = ("mkdocs.yml", "overrides", "tools", "links", "docs/assets")
INCLUDE = re.compile(r'--8<--\s+"([^":]+)(?::[^"]*)?"')
API = re.compile(r"^:::\s+(snippets(?:\.\w+)+)", re.M)

# Set by tools/build.py when it serves with dirty builds. An environment
# variable, because MkDocs loads the configuration, and this hook with it,
# again for every rebuild: module state does not outlive one build.
SWITCH = "CP_SERVE_DIRTY"

_state: dict[str, Any] = {"rebuilt": set(), "full": True}


def _dirty() -> bool:
    return os.environ.get(SWITCH) == "1"


def on_config(config: Any) -> Any:
    if _dirty():
        _keep_compiled_templates()
        _keep_parsed_modules()
    return config


def _keep_parsed_modules() -> None:
    """Under serve, griffe parses each snippet module once per source text.

    A page with an API reference (``::: snippets.x``) makes mkdocstrings load
    the whole ``snippets`` package with griffe, every module of it parsed
    again on every rebuild: most of such a page's rebuild. The syntax trees
    are kept in memory, keyed by the source text and the file name; griffe
    detaches what it adds to a tree when its visit ends, so a kept tree is the
    tree a fresh parse gives.
    """
    import importlib

    try:
        visitor: Any = importlib.import_module("griffe._internal.agents.visitor")
        parser: Any = importlib.import_module("griffe._internal.agents.parser")
    except ImportError:
        return
    parse = visitor._compile_module
    if getattr(parse, "_cp_kept", False):
        return
    node_hooks = getattr(parser, "_NODE_AWARE_HOOKS", ())
    # One tree per file: the one parsed from its latest source.
    trees: dict[str, tuple[tuple[str, bool, bool], Any]] = {}

    def kept(code: str, *, filename: str, extensions: Any, **options: Any) -> Any:
        compiler, native = options.get("compiler", compile), options.get("allow_native")
        if compiler is not compile or set(options) - {"compiler", "allow_native"}:
            return parse(code, filename=filename, extensions=extensions, **options)
        key = (code, bool(native), bool(extensions.has_hooks(*node_hooks)))
        found = trees.get(filename)
        if found is None or found[0] != key:
            tree = parse(code, filename=filename, extensions=extensions, **options)
            found = trees[filename] = (key, tree)
        return found[1]

    kept._cp_kept = True  # type: ignore[attr-defined]
    visitor._compile_module = kept


def _keep_compiled_templates() -> None:
    """Every template environment made from now on shares one bytecode cache."""
    import jinja2

    if getattr(jinja2.Environment, "_cp_shared_cache", None) is not None:
        return
    store: dict[str, bytes] = {}

    class Compiled(jinja2.BytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if bucket.key in store:
                bucket.bytecode_from_string(store[bucket.key])

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            store[bucket.key] = bucket.bytecode_to_string()

    shared = Compiled()
    make = jinja2.Environment.__init__

    def init(self: jinja2.Environment, *args: Any, **kwargs: Any) -> None:
        make(self, *args, **kwargs)
        if self.bytecode_cache is None:
            self.bytecode_cache = shared

    jinja2.Environment.__init__ = init  # type: ignore[method-assign]
    jinja2.Environment._cp_shared_cache = shared  # type: ignore[attr-defined]


def _newest(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    if path.is_dir():
        files = (p.stat().st_mtime for p in path.rglob("*") if p.is_file())
        return max(files, default=0.0)
    return 0.0


def _dependencies(source: Path) -> list[Path]:
    text = source.read_text(encoding="utf-8")
    found = [ROOT / name for name in INCLUDE.findall(text)]
    for module in API.findall(text):
        path = ROOT / module.replace(".", "/")
        found += [path.with_suffix(".py"), path]
    page = source.relative_to(ROOT / "docs")
    # Made by other hooks: the "tested on" line from the pattern's stamp, and
    # the Errors page from every test's error records.
    topic, name = page.parent.as_posix().replace("-", "_"), page.stem.replace("-", "_")
    found.append(ROOT / "tested-on" / topic / f"{name}.json")
    if page.as_posix() == "errors.md":
        found += sorted((ROOT / "snippets").glob("*/errors"))
    return found


def _always(_: Any = None) -> bool:
    return True


def on_files(files: Any, config: Any) -> Any:
    if not _dirty():
        return files
    site = Path(config["site_dir"])
    index = site / "index.html"
    built = index.stat().st_mtime if index.is_file() else 0.0
    everything = built == 0.0 or any(_newest(ROOT / name) > built for name in SHARED)
    rebuilt = set()
    for file in files.documentation_pages():
        if not everything:
            output = Path(file.abs_dest_path)
            since = output.stat().st_mtime if output.is_file() else 0.0
            source = Path(file.abs_src_path)
            changed = source.stat().st_mtime > since or any(
                _newest(dependency) > since for dependency in _dependencies(source)
            )
            if not changed:
                continue
        file.is_modified = _always
        rebuilt.add(file.url)
    _state["rebuilt"] = rebuilt
    _state["full"] = everything
    return files


def on_post_build(config: Any) -> None:
    """Merge the rebuilt pages' search entries into the last full index."""
    if not _dirty():
        return
    written = Path(config["site_dir"]) / "search" / "search_index.json"
    if not written.is_file():
        return
    keep = written.with_name("search_index.full.json")
    index = json.loads(written.read_text())
    if not _state.get("full") and keep.is_file():
        full = json.loads(keep.read_text())
        rebuilt = _state["rebuilt"]
        docs = [
            doc
            for doc in full["docs"]
            if doc["location"].split("#", 1)[0] not in rebuilt
        ]
        index = {**full, "docs": docs + index["docs"]}
        written.write_text(json.dumps(index, separators=(",", ":")))
    keep.write_text(json.dumps(index, separators=(",", ":")))
