"""`make bench`: this site against a default Material site over the same pages.

Builds three sites from the same docs/:

- ``site``: this project's configuration (mkdocs.yml, overrides/, hooks);
- ``baseline``: a generated configuration with only ``theme: material``, the
  search plugin, mkdocstrings and the same Markdown extensions, so that the
  pages render the same; no overrides, hooks, extra CSS or JavaScript;
- one site per older commit given (``BEFORE="<ref> <ref>"``): this project at
  that commit, named by the commit in the table.

Each is served on loopback by a server that compresses text as GitHub Pages
does, and Lighthouse (mobile, simulated throttling) runs three times per page
on a sample that includes the heaviest page. The medians go to
the "Site speed" section of benchmarks/results.md (other sections of that file
are left as they are), with the full build time and the ``mkdocs serve``
rebuild time after editing one page. Not a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
LIGHTHOUSE = ROOT / "benchmarks" / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync"
)
RUNS = 3
SITE_URL = "https://guide.example/"
# Always measured: the home page, a page with no diagram, a topic page and a
# pattern page; the heaviest page (largest HTML) is added to these.
SAMPLE = [
    "",
    "about/testing/",
    "message-queues/",
    "lazy-loading/thread-safe-lazy-init/",
]
COMPRESSIBLE = (".html", ".css", ".js", ".mjs", ".json", ".xml", ".svg", ".txt")
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "SITE_URL": SITE_URL}


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def baseline_config(source: Path, site: Path) -> Path:
    """A default Material configuration that renders the same pages."""
    text = (source / "mkdocs.yml").read_text()

    def block(name: str) -> str:
        match = re.search(rf"(?ms)^{name}:\n.*?(?=^\S|\Z)", text)
        assert match, f"no {name} in mkdocs.yml"
        return match.group(0)

    mkdocstrings = re.search(r"(?ms)^  - mkdocstrings:\n.*?(?=^\S|^  - |\Z)", text)
    assert mkdocstrings, "no mkdocstrings plugin in mkdocs.yml"
    config = (
        "site_name: Concurrency Patterns\n"
        f"site_url: {SITE_URL}\n"
        f"docs_dir: {source / 'docs'}\n"
        f"site_dir: {site}\n"
        "theme:\n  name: material\n"
        "plugins:\n  - search\n"
        + mkdocstrings.group(0)
        + block("markdown_extensions")
        + block("nav")
    )
    path = site.parent / "baseline-mkdocs.yml"
    path.write_text(config)
    return path


def project_config(source: Path, site: Path) -> Path:
    text = (source / "mkdocs.yml").read_text()
    text = re.sub(r"(?m)^site_dir: .*$", f"site_dir: {site}", text)
    path = source / "mkdocs.yml"
    if path.read_text() != text:
        path = source / f"bench-{site.name}-mkdocs.yml"
        path.write_text(text)
    return path


def mkdocs(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def timed_build(config: Path, cwd: Path, strict: bool) -> float:
    """Median wall time of three full builds (the first one warms caches)."""
    times = []
    for _ in range(RUNS + 1):
        start = time.perf_counter()
        result = mkdocs(
            "build", *(["--strict"] if strict else []), "-f", str(config), cwd=cwd
        )
        times.append(time.perf_counter() - start)
        if result.returncode:
            sys.exit(f"build failed ({config}):\n{result.stderr[-3000:]}")
    return statistics.median(times[1:])


def serve_rebuild(config: Path, cwd: Path, page: Path) -> float:
    """Seconds from saving one page to `mkdocs serve` having rebuilt the site."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "serve",
            "--livereload",
            "-f",
            str(config),
            "--dev-addr",
            f"127.0.0.1:{port}",
        ],
        cwd=cwd,
        env=ENV,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stderr
        for line in process.stderr:
            lines.append((time.perf_counter(), line))

    threading.Thread(target=read, daemon=True).start()

    def wait_for(text: str, after: int, timeout: float = 300) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for stamp, line in lines[after:]:
                if text in line:
                    return stamp
            time.sleep(0.02)
        raise TimeoutError(f"mkdocs serve never said {text!r}")

    original = page.read_text()
    times = []
    try:
        wait_for("Serving on", 0)
        time.sleep(1)
        for run in range(RUNS):
            seen = len(lines)
            start = time.perf_counter()
            page.write_text(original + f"\nEdited for benchmark run {run}.\n")
            done = wait_for("Documentation built in", seen)
            times.append(done - start)
            time.sleep(1)
    finally:
        page.write_text(original)
        process.terminate()
        process.wait(timeout=30)
    return statistics.median(times)


# --------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CompressingHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, gzip-compressed for text types, as GitHub Pages serves them."""

    cache: dict[Path, bytes] = {}

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        wants_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (wants_gzip and path.suffix in COMPRESSIBLE and path.is_file()):
            return super().send_head()
        if path not in self.cache:
            self.cache[path] = gzip.compress(path.read_bytes(), 6)
        body = self.cache[path]
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        import io

        return io.BytesIO(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[str]:
    handler = functools.partial(CompressingHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------
# Lighthouse
# --------------------------------------------------------------------------


@dataclass
class Run:
    performance: float
    accessibility: float
    best_practices: float
    seo: float
    requests: int
    transfer: int
    resources: int
    lcp: float
    tbt: float
    cls: float
    diagram_library: int
    failed_requests: int


def lighthouse(url: str, out: Path) -> Run:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                str(LIGHTHOUSE),
                url,
                "--quiet",
                "--output=json",
                f"--output-path={out}",
                "--only-categories=performance,accessibility,best-practices,seo",
                "--disable-full-page-screenshot",
                f"--chrome-flags={CHROME_FLAGS} --user-data-dir={profile}",
            ],
            env={**os.environ, "CHROME_PATH": CHROMIUM},
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode:
        sys.exit(f"lighthouse failed for {url}:\n{result.stderr[-3000:]}")
    report = json.loads(out.read_text())
    cats, audits = report["categories"], report["audits"]
    items = audits["network-requests"]["details"]["items"]
    return Run(
        performance=cats["performance"]["score"] * 100,
        accessibility=cats["accessibility"]["score"] * 100,
        best_practices=cats["best-practices"]["score"] * 100,
        seo=cats["seo"]["score"] * 100,
        requests=len(items),
        transfer=sum(int(i.get("transferSize", 0)) for i in items),
        resources=sum(int(i.get("resourceSize", 0)) for i in items),
        lcp=audits["largest-contentful-paint"]["numericValue"],
        tbt=audits["total-blocking-time"]["numericValue"],
        cls=audits["cumulative-layout-shift"]["numericValue"],
        diagram_library=sum(
            int(i.get("transferSize", 0)) for i in items if "mermaid" in i["url"]
        ),
        failed_requests=sum(
            1
            for i in items
            if i.get("statusCode", 0) >= 400 or i.get("statusCode") == -1
        ),
    )


@dataclass
class Site:
    name: str
    root: Path
    build: float = 0.0
    rebuild: float = 0.0
    pages: int = 0
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, page: str, attr: str) -> float:
        return statistics.median(getattr(run, attr) for run in self.runs[page])


def has_diagram(site: Path, page: str) -> bool:
    return 'class="mermaid"' in (site / page / "index.html").read_text()


def heaviest(site: Path) -> str:
    pages = sorted(site.rglob("index.html"), key=lambda p: p.stat().st_size)
    return str(pages[-1].parent.relative_to(site)) + "/"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def kb(value: float) -> str:
    return f"{value / 1024:.0f}"


BEGIN = "<!-- site-speed: written by `make bench` -->"
END = "<!-- /site-speed -->"


def write_section(out: Path, section: str) -> None:
    """Put ``section`` into ``out`` in place of its earlier version.

    A section's first and last lines are its markers (an HTML comment each);
    the rest of the file is left as it is. make bench-offline uses this too.
    """
    lines = section.strip("\n").splitlines()
    begin, end = lines[0], lines[-1]
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def report(
    sites: list[Site], sample: list[str], out: Path, before_refs: list[str]
) -> None:
    ours, base = sites[0], sites[-1]
    names = {"": "home"}
    lines = [
        BEGIN,
        "## Site speed: this site against a default Material site",
        "",
        "Written by `make bench` (benchmarks/bench.py); not a test. Lighthouse "
        f"12.2.3, mobile preset (simulated slow 4G and 4x CPU slowdown), {RUNS} runs "
        "per page, medians; Debian Chromium "
        f"{chromium_version()}; sites served on loopback with gzip, as GitHub Pages "
        f"serves them. Machine: 2 cores, shared; load average {LOAD['start']:.1f} "
        f"when the run started and {LOAD['end']:.1f} when it ended ({date()}).",
        "",
        "Sites: **site** is this project; **baseline** is a default Material "
        "configuration over the same pages (`theme: material`, search, mkdocstrings "
        "and the same Markdown extensions; no overrides, hooks, extra CSS or JavaScript)"
        + "".join(f"; **{ref}** is this project at commit `{ref}`" for ref in before_refs)
        + ".",
        "",
        "| page | site | perf | a11y | best pr. | SEO | requests | KB transferred "
        "| KB uncompressed | × baseline (KB transf.) | LCP ms | TBT ms | CLS |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for page in sample:
        label = names.get(page, page.rstrip("/"))
        if has_diagram(ours.root, page):
            label += " (diagram)"
        for site in sites:
            ratio = site.median(page, "transfer") / base.median(page, "transfer")
            lines.append(
                f"| {label} | {site.name} | {site.median(page, 'performance'):.0f} "
                f"| {site.median(page, 'accessibility'):.0f} "
                f"| {site.median(page, 'best_practices'):.0f} | {site.median(page, 'seo'):.0f} "
                f"| {site.median(page, 'requests'):.0f} | {kb(site.median(page, 'transfer'))} "
                f"| {kb(site.median(page, 'resources'))} | {ratio:.2f} "
                f"| {site.median(page, 'lcp'):.0f} | {site.median(page, 'tbt'):.0f} "
                f"| {site.median(page, 'cls'):.3f} |"
            )
    lines += [
        "",
        "The diagram library is not in these numbers for **site**: it loads when a "
        "diagram nears the viewport, and Lighthouse does not scroll. What a reader "
        "who scrolls to the diagram downloads in addition:",
        "",
        "| page | site | diagram library, KB transferred when scrolled to |",
        "|---|---|--:|",
    ]
    for page in sample:
        if has_diagram(ours.root, page):
            for site in sites:
                extra = DIAGRAM_ON_SCROLL.get((site.name, page))
                if extra is not None:
                    lines.append(
                        f"| {names.get(page, page.rstrip('/'))} | {site.name} | {kb(extra)} |"
                    )
    lines += [
        "",
        "Build and rebuild, wall time (median of 3; the rebuild is `mkdocs serve` after "
        "saving one page, until it has rebuilt the site):",
        "",
        "| site | pages | full build s | per page ms | serve rebuild s | per page ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for site in sites:
        lines.append(
            f"| {site.name} | {site.pages} | {site.build:.2f} | {1000 * site.build / site.pages:.0f} "
            f"| {site.rebuild:.2f} | {1000 * site.rebuild / site.pages:.0f} |"
        )
    section = "\n".join(lines) + "\n" + NOTES.get("text", "") + END
    write_section(out, section)


NOTES: dict[str, str] = {}
LOAD: dict[str, float] = {}


def date() -> str:
    return time.strftime("%Y-%m-%d")


DIAGRAM_ON_SCROLL: dict[tuple[str, str], int] = {}


def chromium_version() -> str:
    result = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
    match = re.search(r"[\d.]+", result.stdout)
    return match.group(0) if match else "unknown"


def diagram_bytes_on_scroll(url: str) -> int:
    """Bytes of the diagram library a reader downloads on scrolling to a diagram."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROME_FLAGS.replace("--headless=new ", "").split(),
        )
        page = browser.new_page()
        sizes: list[int] = []
        page.on(
            "requestfinished",
            lambda r: (
                sizes.append(
                    r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]
                )
                if "mermaid" in r.url
                else None
            ),
        )
        page.goto(url, wait_until="networkidle")
        page.evaluate(
            "document.querySelector('pre.mermaid, div.mermaid')?.scrollIntoView()"
        )
        page.wait_for_timeout(500)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(2000)
        browser.close()
    return sum(sizes)


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        help="also measure the project at this git ref (repeatable)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    parser.add_argument(
        "--notes",
        default=str(ROOT / "benchmarks" / "notes.md"),
        help="text appended to the results (what the numbers mean)",
    )
    args = parser.parse_args()
    if not LIGHTHOUSE.exists():
        sys.exit("Lighthouse is missing: run `make bench`, which runs `npm ci` first")

    LOAD["start"] = os.getloadavg()[0]
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    # The working tree, copied, so that editing a page for the rebuild time
    # never touches docs/.
    src = WORK / "src"
    for name in ("docs", "overrides", "snippets", "mkdocs.yml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name
        )
    if (ROOT / ".cache").is_dir():
        shutil.copytree(ROOT / ".cache", src / ".cache")

    sites = [Site("site", WORK / "site")]
    configs = {"site": (project_config(src, WORK / "site"), src, True)}
    for ref in args.before:
        ref_src = WORK / f"src-{ref}"
        ref_src.mkdir()
        archive = subprocess.run(
            ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(
            ["tar", "-x", "-C", str(ref_src)], input=archive.stdout, check=True
        )
        sites.append(Site(ref, WORK / f"site-{ref}"))
        # An older commit may not pass today's strict checks; it is only measured.
        configs[ref] = (project_config(ref_src, WORK / f"site-{ref}"), ref_src, False)
    sites.append(Site("baseline", WORK / "baseline"))
    configs["baseline"] = (baseline_config(src, WORK / "baseline"), src, False)

    for site in sites:
        config, cwd, strict = configs[site.name]
        print(f"building {site.name} ...", flush=True)
        site.build = timed_build(config, cwd, strict)
        site.pages = len(list(site.root.rglob("index.html")))
        print(
            f"  {site.pages} pages, {site.build:.2f} s; serve rebuild ...", flush=True
        )
        edited = cwd / "docs" / "about" / "licenses.md"
        site.rebuild = serve_rebuild(config, cwd, edited)
        print(f"  rebuild {site.rebuild:.2f} s", flush=True)

    sample = [*SAMPLE, heaviest(sites[0].root)]
    sample = list(dict.fromkeys(sample))
    reports = WORK / "lighthouse"
    reports.mkdir()
    for site in sites:
        with serve(site.root) as url:
            for page in sample:
                site.runs[page] = []
                for run in range(RUNS):
                    out = (
                        reports
                        / f"{site.name}-{page.strip('/').replace('/', '_') or 'home'}-{run}.json"
                    )
                    site.runs[page].append(lighthouse(url + page, out))
                print(
                    f"lighthouse {site.name} {page or 'home'}: perf "
                    f"{site.median(page, 'performance'):.0f}, "
                    f"{kb(site.median(page, 'transfer'))} KB",
                    flush=True,
                )
                if site.name == "site" and has_diagram(site.root, page):
                    DIAGRAM_ON_SCROLL[(site.name, page)] = diagram_bytes_on_scroll(
                        url + page
                    )

    LOAD["end"] = os.getloadavg()[0]
    notes = Path(args.notes)
    if notes.exists():
        NOTES["text"] = "\n" + notes.read_text()
    report(sites, sample, Path(args.out), args.before)
    print(f"wrote {Path(args.out).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
