"""The one way the site is built: ``make build``, the tests, the PDF, the offline zip
and the benchmarks all call :func:`build_site`.

It runs ``python -m tools.build`` in a fresh interpreter (the hooks keep state
for one build, and a test may break the build on purpose), which loads
mkdocs.yml with MkDocs' own config loader and applies overrides to the loaded
configuration; mkdocs.yml itself is never copied or edited. What may change:

* ``mode``: ``site`` (the published site), ``offline`` (Material's offline
  plugin, for ``make offline``), ``pdf`` (the print-site plugin, for
  ``make pdf``, without the search index): switched by the environment
  variables that mkdocs.yml reads (``CP_OFFLINE``, ``CP_PRINT_SITE``,
  ``CP_SEARCH``); ``baseline`` (a default Material site
  over the same pages, for ``make bench``: no theme overrides, hooks, extra
  CSS or JavaScript; the same Markdown extensions and API reference);
* ``docs_dir``, ``site_dir``, ``nav``, ``site_url``: the keys of the same name;
* ``redirects``: another redirects file (``CP_REDIRECTS``, read by tools/links.py).

A strict build of the published site into ``site/`` records what it was built
from in ``.cache/site-build.json``; :func:`current_site` reuses that site while
no input has changed since, so that one test run builds it once, however many
test processes ask for it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "mkdocs.yml"
SITE = ROOT / "site"
CACHE = ROOT / ".cache"
RECORD = CACHE / "site-build.json"
LOCK = CACHE / "site-build.lock"
# What the site is built from: a change to any of these makes site/ stale.
INPUTS = ("docs", "snippets", "overrides", "tools", "links", "mkdocs.yml")

Mode = Literal["site", "offline", "pdf", "baseline"]
MODES: tuple[Mode, ...] = ("site", "offline", "pdf", "baseline")
SWITCHES: dict[Mode, dict[str, str]] = {
    "site": {"CP_OFFLINE": "false", "CP_PRINT_SITE": "false", "CP_SEARCH": "true"},
    "offline": {"CP_OFFLINE": "true", "CP_PRINT_SITE": "false", "CP_SEARCH": "true"},
    # The book needs no search index (a tenth of the build's time).
    "pdf": {"CP_OFFLINE": "false", "CP_PRINT_SITE": "true", "CP_SEARCH": "false"},
    "baseline": {"CP_OFFLINE": "false", "CP_PRINT_SITE": "false", "CP_SEARCH": "true"},
}


class BuildError(RuntimeError):
    """The build failed; the message carries MkDocs' output."""


def build_site(
    site_dir: Path = SITE,
    *,
    mode: Mode = "site",
    docs_dir: Path | None = None,
    nav: list[Any] | None = None,
    site_url: str | None = None,
    redirects: Path | None = None,
    strict: bool = True,
    config: Path = CONFIG,
    check: bool = False,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Build the site into ``site_dir``; return the finished process.

    ``config`` may be another checkout's mkdocs.yml (the benchmarks build
    older commits); the build then runs in that checkout. With ``check``, a
    failed build raises :class:`BuildError`.
    """
    overrides: dict[str, Any] = {"site_dir": str(site_dir)}
    if docs_dir is not None:
        overrides["docs_dir"] = str(docs_dir)
    if nav is not None:
        overrides["nav"] = nav
    if site_url is not None:
        overrides["site_url"] = site_url
    command, env = _command(config, mode, overrides, strict, redirects)
    result = subprocess.run(
        command,
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise BuildError(f"mkdocs build failed:\n{result.stdout}{result.stderr}")
    return result


def serve_site(
    dev_addr: str,
    *,
    mode: Mode = "site",
    config: Path = CONFIG,
    strict: bool = True,
    **popen: Any,
) -> subprocess.Popen[str]:
    """``mkdocs serve`` of the same configuration, with live reload, as a process.

    The benchmarks time its rebuilds; ``popen`` goes to :class:`subprocess.Popen`.
    """
    command, env = _command(config, mode, {}, strict, None)
    return subprocess.Popen(
        [*command, "--serve", dev_addr],
        cwd=config.parent,
        env=env,
        text=True,
        **popen,
    )


def _command(
    config: Path,
    mode: Mode,
    overrides: dict[str, Any],
    strict: bool,
    redirects: Path | None,
) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, **SWITCHES[mode], "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))
    )
    if redirects is not None:
        env["CP_REDIRECTS"] = str(redirects)
    command = [
        sys.executable,
        "-P",  # tools.build from this checkout, whatever the working directory
        "-m",
        "tools.build",
        "--config",
        str(config),
        "--mode",
        mode,
        "--overrides",
        json.dumps(overrides),
        *([] if strict else ["--no-strict"]),
    ]
    return command, env


# --------------------------------------------------------------------------- #
# Reusing site/ while it is fresh
# --------------------------------------------------------------------------- #


def input_files() -> list[Path]:
    """Every file the site is built from (git's view: tracked or not ignored)."""
    try:
        listed = subprocess.run(
            [
                *("git", "ls-files", "-z", "--cached", "--others"),
                *("--exclude-standard", "--", *INPUTS),
            ],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        paths = {ROOT / name for name in listed.split("\0") if name}
    except (OSError, subprocess.SubprocessError):
        paths = {
            path
            for name in INPUTS
            for path in ([ROOT / name] if (ROOT / name).is_file() else [])
            + list((ROOT / name).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts
        }
    return sorted(path for path in paths if path.is_file())


def inputs_digest() -> str:
    """A digest of the inputs' names, sizes and modification times."""
    digest = hashlib.sha256()
    for path in input_files():
        stat = path.stat()
        name = path.relative_to(ROOT).as_posix()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def fresh(site_dir: Path = SITE) -> dict[str, str] | None:
    """The record of ``site_dir``'s build if no input changed since, else None."""
    try:
        record: dict[str, str] = json.loads(RECORD.read_text())
    except (OSError, ValueError):
        return None
    if record.get("site_dir") != str(site_dir.resolve()):
        return None
    if not (site_dir / "index.html").is_file():
        return None
    return record if record.get("inputs") == inputs_digest() else None


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One builder at a time across processes (pytest-xdist workers, say)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_site(site_dir: Path = SITE) -> tuple[Path, str]:
    """``site_dir`` built strictly from the current inputs, and its site URL.

    Reuses the site of an earlier build (``make build`` before the tests, or
    another test process) when no input changed since; builds it otherwise.
    """
    with locked():
        record = fresh(site_dir)
        if record is None:
            build_site(site_dir, check=True)
            record = fresh(site_dir)
            if record is None:
                raise BuildError("an input of the site changed while it was built")
    return site_dir, record["site_url"]


# --------------------------------------------------------------------------- #
# The build itself: python -m tools.build
# --------------------------------------------------------------------------- #


def _baseline(raw: dict[str, Any]) -> dict[str, Any]:
    """Overrides that turn this site into a default Material site."""
    # A mapping, not a list of one-key mappings: MkDocs pops the key out of
    # each list item as it reads it, and `mkdocs serve` reads the same
    # overrides again on every rebuild ("Invalid Plugins configuration").
    plugins: dict[str, Any] = {"search": {}}
    for plugin in raw.get("plugins", []):
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugins["mkdocstrings"] = plugin["mkdocstrings"]
    return {
        "theme": {"name": "material"},
        "hooks": [],
        "extra_css": [],
        "extra_javascript": [],
        "extra": {},
        "plugins": plugins,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the site (see tools/build.py).")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--mode", choices=MODES, default="site")
    parser.add_argument("--overrides", default="{}", help="JSON: config keys to set")
    parser.add_argument("--no-strict", dest="strict", action="store_false")
    parser.add_argument("-d", "--site-dir", help="where to build (default: site/)")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only")
    parser.add_argument("--serve", metavar="ADDRESS", help="mkdocs serve instead")
    parser.add_argument(
        "--full-rebuilds",
        action="store_true",
        help="with --serve: rebuild the whole site after each save",
    )
    args = parser.parse_args(argv)

    from mkdocs import utils
    from mkdocs.commands import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException
    from mkdocs.utils.yaml import yaml_load

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-8s-  %(message)s"))
    logger = logging.getLogger("mkdocs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Quiet hides warnings from the reader, not from the strict count.
    handler.setLevel(logging.ERROR if args.quiet else logging.INFO)
    build.log.addFilter(utils.DuplicateFilter())

    os.environ.update(SWITCHES[args.mode])
    config = Path(args.config).resolve()
    overrides: dict[str, Any] = json.loads(args.overrides)
    if args.site_dir:
        overrides["site_dir"] = str(Path(args.site_dir).resolve())
    if args.mode == "baseline":
        with config.open("rb") as source:
            overrides = {**_baseline(yaml_load(source)), **overrides}
    if args.serve:
        from mkdocs.commands import serve

        overrides.pop("site_dir", None)
        # A save rebuilds the pages it changed (tools/dirty.py says which), not
        # the whole site; the default Material site of the benchmarks has no
        # such hook and rebuilds everything.
        dirty = args.mode != "baseline" and not args.full_rebuilds
        if dirty:
            os.environ["CP_SERVE_DIRTY"] = "1"  # read by tools/dirty.py
            # MkDocs warns on every dirty build, which strict mode would count.
            logging.getLogger("mkdocs.commands.build").addFilter(
                lambda record: "'dirty' build" not in record.getMessage()
            )
        serve.serve(
            str(config),
            livereload=True,
            build_type="dirty" if dirty else None,
            dev_addr=args.serve,
            strict=args.strict,
            **overrides,
        )
        return 0
    site_dir = Path(overrides.get("site_dir", config.parent / "site")).resolve()
    # The published site, built strictly from this checkout: worth recording.
    record = (
        args.strict
        and args.mode == "site"
        and config == CONFIG
        and set(overrides) <= {"site_dir"}
        and "CP_REDIRECTS" not in os.environ
    )
    inputs = inputs_digest() if record else ""
    # Whatever the record says about site_dir stops being true now.
    with contextlib.suppress(OSError, ValueError):
        if json.loads(RECORD.read_text()).get("site_dir") == str(site_dir):
            RECORD.unlink()
    try:
        cfg = load_config(str(config), strict=args.strict, **overrides)
        cfg.plugins.on_startup(command="build", dirty=False)
        try:
            build.build(cfg)
        finally:
            cfg.plugins.on_shutdown()
    except MkDocsException as error:
        print(f"mkdocs build failed: {error}", file=sys.stderr)
        return 1
    if record:
        CACHE.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(
            json.dumps(
                {
                    "site_dir": str(site_dir),
                    "inputs": inputs,
                    "site_url": cfg["site_url"] or "",
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
