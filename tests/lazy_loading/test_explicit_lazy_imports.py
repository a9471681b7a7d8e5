"""Tests for snippets/lazy_loading/explicit_lazy_imports.py and its exporters.

These tests run on Python 3.11 to 3.13; none of them runs Python 3.15, so
none exercises PEP 810 itself. They check what 3.11-3.14 do with the same
source (ignore `__lazy_modules__`), that the Python 3.15 listing on the page
declares the same imports, and the hazard lazy imports bring: a plugin's
import-time registration moves to first use. Before 3.15 the tests defer the
plugin's import with module `__getattr__` (PEP 562), which gives it the same
timing for attribute access.
"""

from __future__ import annotations

import platform
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import snippets.lazy_loading.explicit_lazy_imports as lazy_imports
from snippets.lazy_loading.explicit_lazy_imports import (
    Registry,
    latency_summary,
)
from snippets.lazy_loading.lazy_submodules import modules_imported_by
from snippets.support.lazy_loading_apps import (
    Apps,
    plain,
    scratch_apps,
    with_providers,
)
from tests.conftest import ROOT
from tools.errors import ErrorRecorder

LISTING_315 = ROOT / "snippets" / "lazy_loading" / "explicit_lazy_imports_315.txt"
THREADS = 32


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    with scratch_apps(tmp_path) as made:
        yield made


# -- what Python 3.11 to 3.14 do with the same file ---------------------------- #


def test_lazy_modules_declaration_is_ignored_before_3_15() -> None:
    declared = set(lazy_imports.__lazy_modules__)
    assert declared == {"statistics"}
    startup = set(modules_imported_by("pass"))
    imported = set(modules_imported_by(f"import {lazy_imports.__name__}"))
    assert not declared & startup  # so the import below is what loads them
    loaded = declared & imported
    if sys.version_info < (3, 15):  # what ran here: 3.11, 3.12, 3.13
        assert loaded == declared
    else:  # what PEP 810 specifies; these tests never ran on 3.15
        assert loaded == set()


def test_module_works_with_the_declaration_ignored() -> None:
    assert latency_summary([10, 20, 30, 40, 200]) == "median 30.0 ms, p95 168.0 ms"


def test_python_315_listing_declares_the_same_lazy_imports() -> None:
    text = LISTING_315.read_text()
    lazy_lines = [line for line in text.splitlines() if line.startswith("lazy ")]
    lazily_imported = {line.split()[2] for line in lazy_lines}
    assert lazily_imported == set(lazy_imports.__lazy_modules__)
    assert all(line.startswith("lazy import ") for line in lazy_lines)
    assert "import *" not in text  # `lazy from m import *` is a syntax error
    assert "    lazy " not in text  # module level only: not in a function
    assert "try:" not in text  # nor in a try block


def test_python_315_listing_is_not_valid_before_3_15() -> None:
    # The proof that no test here ran it: this Python cannot even compile it.
    text = LISTING_315.read_text()
    if sys.version_info < (3, 15):
        with pytest.raises(SyntaxError):
            compile(text, str(LISTING_315), "exec")
    else:
        compile(text, str(LISTING_315), "exec")


# -- see it break: the registration moves to first use ------------------------- #


def test_deferred_plugin_is_missing_from_a_plain_registry(
    apps: Apps, error_record: ErrorRecorder
) -> None:
    app, probe = apps.make(plain)
    with pytest.raises(KeyError, match="csv") as caught:
        probe.registry.get("csv")
    error_record(
        caught.value,
        id="missing-plugin",
        component="CPython",
        version=platform.python_version(),
    )
    assert probe.runs == 0  # the plugin's module never ran
    app.csv_export  # noqa: B018  (the first use of the deferred name)
    assert probe.registry.get("csv") is app.csv_export.export
    assert probe.runs == 1


def test_registry_imports_the_provider_on_a_miss(apps: Apps) -> None:
    app, probe = apps.make(with_providers)
    assert probe.registry.keys() == []
    export = probe.registry.get("csv")
    assert export is app.csv_export.export
    assert probe.registry.get("csv") is export
    assert probe.runs == 1


def test_prewarm_registers_everything_at_start_up(apps: Apps) -> None:
    _, probe = apps.make(with_providers)
    registry = probe.registry
    assert isinstance(registry, Registry)
    assert registry.prewarm() == ["csv"]
    assert probe.runs == 1


def test_unknown_key_and_silent_provider_are_errors(apps: Apps) -> None:
    _, probe = apps.make(with_providers, plugin="import {probe} as probe\n")
    with pytest.raises(KeyError):
        probe.registry.get("json")
    with pytest.raises(LookupError, match="did not register 'csv'"):
        probe.registry.get("csv")


def test_concurrent_first_lookups_run_the_plugin_once(apps: Apps) -> None:
    _, probe = apps.make(with_providers)
    # The plugin's body waits up to 0.5 s for other threads inside it; none
    # come, because they wait on the import lock for its module.
    probe.meeting = threading.Barrier(THREADS, timeout=0.5)
    start = threading.Barrier(THREADS)
    found: list[object] = []
    errors: list[BaseException] = []

    def lookup() -> None:
        start.wait(timeout=5)
        try:
            found.append(probe.registry.get("csv"))
        except Exception as error:
            errors.append(error)

    pool = [threading.Thread(target=lookup) for _ in range(THREADS)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert errors == []
    assert probe.runs == 1
    assert len(found) == THREADS
    assert len({id(entry) for entry in found}) == 1


def test_a_broken_provider_fails_the_first_lookup_on_its_thread(
    apps: Apps,
) -> None:
    app, probe = apps.make(with_providers, plugin="import no_such_exporter_lib\n")
    assert app is not None  # importing the app itself succeeded
    failures: list[BaseException] = []

    def request() -> None:
        try:
            probe.registry.get("csv")
        except ImportError as error:
            failures.append(error)

    worker = threading.Thread(target=request, name="request-1")
    worker.start()
    worker.join(timeout=10)
    assert [type(error) for error in failures] == [ModuleNotFoundError]
    registry = probe.registry
    assert isinstance(registry, Registry)
    with pytest.raises(ModuleNotFoundError, match="no_such_exporter_lib"):
        registry.prewarm()  # at start-up instead: the start fails, loudly


def test_module_getattr_does_not_cover_names_used_inside_the_module(
    apps: Apps,
) -> None:
    # PEP 562: "Looking up a name as a module global will bypass module
    # __getattr__". The fallback defers only reads from outside; PEP 810's
    # lazy names also resolve inside the importing module.
    app, _ = apps.make(plain)
    exec("def uses_the_plugin():\n    return csv_export\n", vars(app))
    with pytest.raises(NameError, match="csv_export"):
        app.uses_the_plugin()
    assert app.csv_export is not None  # from outside, the same name works


# -- the output the page shows ---------------------------------------------------- #


def test_the_exporter_exports() -> None:
    from snippets.lazy_loading.exporters import registry

    export = registry.get("csv")
    assert export([["id", "ms"], [1, 12.5]]) == "id,ms\n1,12.5\n"
