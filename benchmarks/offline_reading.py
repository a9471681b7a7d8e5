"""Measure the offline formats: ``make bench-offline``.

Builds the PDF and the offline zip (the code behind ``make pdf`` and
``make offline``), records how long the PDF took (wall clock and CPU time,
with the machine's load, since other work on the machine stretches the wall
clock) and how large both files are, and writes them into the "Offline
reading" section of benchmarks/results.md, leaving the file's other sections
as they are. ``RUNS=3 make bench-offline`` builds the PDF three times and
reports the median.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.bench import write_section
from tools import browser, offline
from tools.pdf import build_pdf

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "benchmarks" / "results.md"
BEGIN = "<!-- offline-reading: written by `make bench-offline` -->"
END = "<!-- /offline-reading -->"
TARGET_SECONDS = 60


def cpu_seconds() -> float:
    """CPU time of this process and every process it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def chromium_version() -> str:
    try:
        out = subprocess.run(
            [str(browser.CHROMIUM), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except OSError:
        return "not found"
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def measure(runs: int) -> str:
    walls, cpus, loads = [], [], []
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        wall, cpu = time.perf_counter(), cpu_seconds()
        pdf = build_pdf.build()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    bundle = offline.build()
    from pypdf import PdfReader

    pages = len(PdfReader(pdf).pages)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    verdict = "within" if wall < TARGET_SECONDS else "over"
    import weasyprint

    return "\n".join(
        [
            BEGIN,
            "## Offline reading",
            "",
            f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, WeasyPrint {weasyprint.__version__}, "
            f"{chromium_version()}; median of {runs} run(s).",
            "",
            "| What | Result |",
            "|---|---|",
            f"| `make pdf`, wall clock | {wall:.1f} s ({verdict} the "
            f"{TARGET_SECONDS} s target) |",
            f"| `make pdf`, CPU time (all processes) | {cpu:.1f} s |",
            f"| load average when it started | {statistics.median(loads):.1f} |",
            f"| PDF | {pdf.stat().st_size / 1e6:.2f} MB, {pages} pages |",
            f"| offline zip (`make offline`) | {bundle.stat().st_size / 1e6:.2f} MB |",
            "",
            "The wall clock grows with the machine's load (other builds on the same",
            "two cores); the CPU time is the steadier measure of the work itself.",
            END,
        ]
    )


if __name__ == "__main__":
    section = measure(int(os.environ.get("RUNS", "1")))
    write_section(RESULTS, section)
    print(section)
