"""`make bench`: this site against a default Material site over the same pages.

Builds three sites from the same docs/:

- ``site``: this project's configuration (mkdocs.yml, overrides/, tools/);
- ``baseline``: the same configuration loaded with only ``theme: material``,
  the search plugin and mkdocstrings (tools/build.py, mode ``baseline``), so
  that the pages render the same with the same Markdown extensions; no
  overrides, hooks, extra CSS or JavaScript;
- one site per older commit given (``BEFORE="<ref> <ref>"``): this project at
  that commit, named by the commit in the table.

Each is served on loopback by a server that compresses text as GitHub Pages
does (tools/loopback.py), and Lighthouse (mobile, simulated throttling) runs
three times per page on a sample that includes the heaviest page. The medians go to
the "Site speed" section of benchmarks/results.md (other sections of that file
are left as they are), with the full build time (cold and warm, wall clock
and CPU time) and the ``mkdocs serve`` rebuild time after editing one page.
Not a test: nothing here fails on a number.

To compare a change with an earlier commit on chosen pages only:
``.venv/bin/python -m benchmarks.bench --quick --before main --page <path>/``
(no baseline, no build times, runs interleaved; prints the medians, writes
nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools import browser
from tools.build import Mode, build_site, serve_site
from tools.loopback import free_port, serve

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
LIGHTHOUSE = ROOT / "benchmarks" / "node_modules" / ".bin" / "lighthouse"
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


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """How one site of the comparison is built (tools/build.py)."""

    config: Path
    mode: Mode
    strict: bool


@dataclass(frozen=True)
class Timing:
    """Full-build times: wall clock and CPU time (user + sys) of the build process."""

    wall: float
    cpu: float


def one_build(build: Build, site: Path) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = build_site(
        site,
        mode=build.mode,
        config=build.config,
        strict=build.strict,
        site_url=SITE_URL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        sys.exit(f"build failed ({build.config}):\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def timed_build(build: Build, site: Path) -> tuple[Timing, Timing]:
    """The cold build, then the median of three warm ones.

    Cold: without the build caches (.cache/ of the checkout built, as in a
    fresh clone); warm: with the caches the builds before filled.
    """
    shutil.rmtree(build.config.parent / ".cache", ignore_errors=True)
    cold = one_build(build, site)
    warm = [one_build(build, site) for _ in range(RUNS)]
    return cold, Timing(
        statistics.median(t.wall for t in warm), statistics.median(t.cpu for t in warm)
    )


def serve_rebuild(build: Build, page: Path) -> float:
    """Seconds from saving one page to `mkdocs serve` having rebuilt the site."""
    process = serve_site(
        f"127.0.0.1:{free_port()}",
        mode=build.mode,
        config=build.config,
        strict=build.strict,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
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
    """One Lighthouse run; again (twice at most) if it found no first paint.

    On a loaded machine headless Chromium now and then reports no paint at
    all (NO_FCP), and Lighthouse then gives no performance score.
    """
    for _ in range(2):
        run = lighthouse_once(url, out)
        if run is not None:
            return run
    return lighthouse_once(url, out) or sys.exit(f"no performance score for {url}")


def lighthouse_once(url: str, out: Path) -> Run | None:
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
                "--chrome-flags=" + " ".join(browser.command_line(Path(profile))),
            ],
            env={**os.environ, "CHROME_PATH": str(browser.require())},
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode:
        sys.exit(f"lighthouse failed for {url}:\n{result.stderr[-3000:]}")
    report = json.loads(out.read_text())
    cats, audits = report["categories"], report["audits"]
    if cats["performance"]["score"] is None:
        return None
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
    build_cpu: float = 0.0
    cold: float = 0.0
    cold_cpu: float = 0.0
    rebuild: float = 0.0
    pages: int = 0
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, page: str, attr: str) -> float:
        return float(statistics.median(getattr(run, attr) for run in self.runs[page]))


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
        "and the same Markdown extensions; no overrides, hooks, extra CSS or "
        "JavaScript)"
        + "".join(
            f"; **{ref}** is this project at commit `{ref}`" for ref in before_refs
        )
        + ".",
        "",
        "| page | site | perf | a11y | best pr. | SEO | requests | KB transferred "
        "| KB uncompressed | \u00d7 baseline (KB transf.) | LCP ms | TBT ms | CLS |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for page in sample:
        label = names.get(page, page.rstrip("/"))
        if has_diagram(ours.root, page):
            label += " (diagram)"
        for site in sites:
            ratio = site.median(page, "transfer") / base.median(page, "transfer")
            m = functools.partial(site.median, page)
            lines.append(
                f"| {label} | {site.name} | {m('performance'):.0f} "
                f"| {m('accessibility'):.0f} "
                f"| {m('best_practices'):.0f} | {m('seo'):.0f} "
                f"| {m('requests'):.0f} | {kb(m('transfer'))} "
                f"| {kb(m('resources'))} | {ratio:.2f} "
                f"| {m('lcp'):.0f} | {m('tbt'):.0f} "
                f"| {m('cls'):.3f} |"
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
                    label = names.get(page, page.rstrip("/"))
                    lines.append(f"| {label} | {site.name} | {kb(extra)} |")
    lines += [
        "",
        "Build and rebuild (median of 3; the rebuild is `mkdocs serve` after "
        "saving one page, until it has rebuilt the site). Warm: with the build "
        "caches of the runs before (.cache/); cold: without them, as in a fresh "
        "clone (one run). CPU is the build process's user + sys time, steadier "
        "than the wall clock on a shared machine:",
        "",
        "| site | pages | warm build s | per page ms | CPU s | CPU per page ms "
        "| cold build s | CPU s | CPU per page ms | serve rebuild s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for site in sites:
        per_page = 1000 / site.pages
        lines.append(
            f"| {site.name} | {site.pages} | {site.build:.2f} "
            f"| {site.build * per_page:.0f} "
            f"| {site.build_cpu:.2f} | {site.build_cpu * per_page:.0f} "
            f"| {site.cold:.2f} | {site.cold_cpu:.2f} "
            f"| {site.cold_cpu * per_page:.0f} | {site.rebuild:.2f} |"
        )
    section = "\n".join(lines) + "\n" + NOTES.get("text", "") + END
    write_section(out, section)


def quick_table(sites: list[Site], sample: list[str]) -> str:
    """The medians of a --quick run, with each run's score and blocking time."""
    lines = [
        f"load average {LOAD['start']:.1f} at the start, {LOAD['end']:.1f} "
        f"at the end; {RUNS} runs per page",
        "",
        "| page | site | perf | runs | TBT ms | runs | LCP ms |",
        "|---|---|--:|---|--:|---|--:|",
    ]
    for page in sample:
        for site in sites:
            runs = site.runs[page]
            lines.append(
                f"| {page or 'home'} | {site.name} "
                f"| {site.median(page, 'performance'):.0f} "
                f"| {' '.join(f'{r.performance:.0f}' for r in runs)} "
                f"| {site.median(page, 'tbt'):.0f} "
                f"| {' '.join(f'{r.tbt:.0f}' for r in runs)} "
                f"| {site.median(page, 'lcp'):.0f} |"
            )
    return "\n".join(lines)


NOTES: dict[str, str] = {}
LOAD: dict[str, float] = {}


def date() -> str:
    return time.strftime("%Y-%m-%d")


DIAGRAM_ON_SCROLL: dict[tuple[str, str], int] = {}


def chromium_version() -> str:
    result = subprocess.run(
        [str(browser.require()), "--version"], capture_output=True, text=True
    )
    match = re.search(r"[\d.]+", result.stdout)
    return match.group(0) if match else "unknown"


def diagram_bytes_on_scroll(url: str) -> int:
    """Bytes of the diagram library a reader downloads on scrolling to a diagram."""
    with browser.chromium() as chromium:
        page = chromium.new_page()
        page.add_init_script(browser.OPEN_SHADOW_ROOTS)
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
        page.goto(url, wait_until="load")
        page.evaluate(
            "document.querySelector('pre.mermaid, div.mermaid')?.scrollIntoView()"
        )
        # Drawn means every module the diagrams needed has arrived.
        page.wait_for_function(browser.ALL_DIAGRAMS_RENDERED, timeout=30_000)
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
    parser.add_argument(
        "--page",
        action="append",
        default=[],
        help="measure this page (path under the site, e.g. message-queues/) "
        "instead of the sample; repeatable",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only this site and the --before refs, built once, no build times "
        "and no baseline; prints the medians and writes nothing",
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
    for name in ("docs", "overrides", "tools", "links", "snippets", "mkdocs.yml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name
        )
    # No .cache/: each site's first build is the cold one (timed_build).

    sites = [Site("site", WORK / "site")]
    builds = {"site": Build(src / "mkdocs.yml", "site", strict=True)}
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
        builds[ref] = Build(ref_src / "mkdocs.yml", "site", strict=False)
    if not args.quick:
        sites.append(Site("baseline", WORK / "baseline"))
        builds["baseline"] = Build(src / "mkdocs.yml", "baseline", strict=False)

    for site in sites:
        build = builds[site.name]
        print(f"building {site.name} ...", flush=True)
        if args.quick:
            result = build_site(
                site.root,
                mode=build.mode,
                config=build.config,
                strict=build.strict,
                site_url=SITE_URL,
            )
            if result.returncode:
                sys.exit(f"build failed ({build.config}):\n{result.stderr[-3000:]}")
            continue
        cold, warm = timed_build(build, site.root)
        site.build, site.build_cpu = warm.wall, warm.cpu
        site.cold, site.cold_cpu = cold.wall, cold.cpu
        site.pages = len(list(site.root.rglob("index.html")))
        print(
            f"  {site.pages} pages, warm {warm.wall:.2f} s (CPU {warm.cpu:.2f} s), "
            f"cold {cold.wall:.2f} s (CPU {cold.cpu:.2f} s); serve rebuild ...",
            flush=True,
        )
        edited = build.config.parent / "docs" / "about" / "licenses.md"
        site.rebuild = serve_rebuild(build, edited)
        print(f"  rebuild {site.rebuild:.2f} s", flush=True)

    sample = args.page or [*SAMPLE, heaviest(sites[0].root)]
    sample = list(dict.fromkeys(sample))
    reports = WORK / "lighthouse"
    reports.mkdir()
    # All sites served at once and their runs interleaved (run 1 of every
    # site, then run 2, ...), so that the load of a shared machine falls on
    # every site alike.
    with contextlib.ExitStack() as stack:
        urls = {
            site.name: stack.enter_context(serve(site.root, compress=True)).url
            for site in sites
        }
        for page in sample:
            slug = page.strip("/").replace("/", "_") or "home"
            for site in sites:
                site.runs[page] = []
            for run in range(RUNS):
                for site in sites:
                    out = reports / f"{site.name}-{slug}-{run}.json"
                    site.runs[page].append(lighthouse(urls[site.name] + page, out))
            for site in sites:
                print(
                    f"lighthouse {site.name} {page or 'home'}: perf "
                    f"{site.median(page, 'performance'):.0f}, "
                    f"TBT {site.median(page, 'tbt'):.0f} ms, "
                    f"{kb(site.median(page, 'transfer'))} KB",
                    flush=True,
                )
            ours = sites[0]
            if not args.quick and has_diagram(ours.root, page):
                DIAGRAM_ON_SCROLL[(ours.name, page)] = diagram_bytes_on_scroll(
                    urls[ours.name] + page
                )

    LOAD["end"] = os.getloadavg()[0]
    if args.quick:
        print(quick_table(sites, sample))
        return 0
    notes = Path(args.notes)
    if notes.exists():
        NOTES["text"] = "\n" + notes.read_text()
    report(sites, sample, Path(args.out), args.before)
    print(f"wrote {Path(args.out).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
