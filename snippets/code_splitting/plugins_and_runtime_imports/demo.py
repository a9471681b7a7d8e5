"""The cases the plugins page shows, in temporary folders.

    python -m snippets.code_splitting.plugins_and_runtime_imports.demo CASE

``file`` loads a plugin file without and with the ``sys.modules`` step;
``threads`` loads one file from two threads at once; ``find-spec`` shows what
``find_spec`` imports; ``discover`` installs a distribution with three plugins
and finds them by entry point and by ``pkgutil.iter_modules``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from types import ModuleType

from snippets.code_splitting.plugins_and_runtime_imports import (
    PathLoader,
    can_import,
    load_from_path,
    load_plugins,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package


GROUP = "pluginhost.exporters"

# --8<-- [start:plugin-file]
PLUGIN_FILE = """\
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

with open(Path(__file__).with_suffix(".runs"), "a") as runs:
    runs.write("ran\\n")


@dataclass
class Row:
    name: str
    total: int


def roundtrip(row: Row) -> Row:
    return pickle.loads(pickle.dumps(row))
"""
# --8<-- [end:plugin-file]


def write_plugin_file(folder: Path, stem: str = "report") -> Path:
    """A plugin file whose body counts its runs in ``<stem>.runs``."""
    path = folder / f"{stem}.py"
    path.write_text(PLUGIN_FILE)
    return path


def runs_of(path: Path) -> int:
    runs = path.with_suffix(".runs")
    return len(runs.read_text().splitlines()) if runs.exists() else 0


# --8<-- [start:naive-load]
def load_without_registering(name: str, path: Path) -> ModuleType:
    """The recipe without ``sys.modules[name] = module``: do not copy."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
    # --8<-- [end:naive-load]


def last_line(error: BaseException) -> str:
    return traceback.format_exception_only(error)[-1].strip()


def show_file() -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        path = write_plugin_file(Path(folder))
        lines = ["without sys.modules[name] = module:"]
        try:
            load_without_registering("report_naive", path)
            lines.append("  module loaded: yes")
        except AttributeError as error:
            lines.append(f"  module loaded: no ({type(error).__name__})")
        before = runs_of(path)
        first = load_from_path("report_a", path)
        row = first.Row("north", 3)
        lines.append("with the recipe:")
        lines.append("  module loaded: yes")
        lines.append(f"  pickle round trip equal: {first.roundtrip(row) == row}")
        second = load_from_path("report_b", path)
        same = second.Row is first.Row
        lines.append("the same file loaded as report_a and report_b:")
        lines.append(f"  body runs: {runs_of(path) - before}")
        lines.append(f"  same Row class: {'yes' if same else 'no'}")
        lines.append(f"  isinstance(row, report_b.Row): {isinstance(row, second.Row)}")
        for name in ("report_a", "report_b"):
            sys.modules.pop(name, None)
        return lines


# --8<-- [start:threads]
def load_concurrently(path: Path, loader: PathLoader | None) -> list[ModuleType]:
    """Two threads load ``path`` at the same moment (a barrier releases both)."""
    start = threading.Barrier(2, timeout=10)
    modules: list[ModuleType] = []

    def caller(index: int) -> None:
        start.wait()
        if loader is None:
            modules.append(load_from_path(f"plugin_{path.stem}", path))
        else:
            modules.append(loader.load(path))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return modules
    # --8<-- [end:threads]


def show_threads() -> list[str]:
    lines = []
    for label, loader in (("load_from_path", None), ("PathLoader", PathLoader())):
        with tempfile.TemporaryDirectory() as folder:
            path = write_plugin_file(Path(folder))
            modules = load_concurrently(path, loader)
            distinct = len({id(module) for module in modules})
            lines.append(f"{label}: 2 threads at once")
            lines.append(f"  body runs: {runs_of(path)}")
            lines.append(f"  distinct module objects: {distinct}")
            sys.modules.pop(f"plugin_{path.stem}", None)
    return lines


# --8<-- [start:parent-package]
def write_parent_package(folder: Path, package: str) -> None:
    """A package whose ``__init__`` marks that it ran, with one submodule."""
    (folder / package).mkdir()
    (folder / package / "__init__.py").write_text("INIT_RAN = True\n")
    (folder / package / "heavy.py").write_text("raise SystemExit('body ran')\n")
    # --8<-- [end:parent-package]


def show_find_spec() -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        package = "findspec_demo"
        write_parent_package(Path(folder), package)
        sys.path.insert(0, folder)
        try:
            lines = [
                f"can_import({package!r}): {can_import(package)}",
                f"  {package} imported: {package in sys.modules}",
                f"can_import('{package}.heavy'): {can_import(package + '.heavy')}",
                f"  {package} imported: {package in sys.modules}",
                f"  {package}.heavy imported: {package + '.heavy' in sys.modules}",
                f"can_import('no_such_pkg.sub'): {can_import('no_such_pkg.sub')}",
            ]
        finally:
            sys.path.remove(folder)
            sys.modules.pop(package, None)
        return lines


# --8<-- [start:distribution]
def install_distribution(site: Path, package: str, plugins: dict[str, str]) -> None:
    """Write the files ``pip install`` leaves for a distribution with plugins.

    ``<package>/<name>.py`` per plugin and a ``.dist-info`` folder with
    ``METADATA`` and ``entry_points.txt``, which is all
    ``importlib.metadata`` reads.
    """
    (site / package).mkdir()
    (site / package / "__init__.py").write_text("")
    entries = [f"[{GROUP}]"]
    for name, body in sorted(plugins.items()):
        (site / package / f"{name}.py").write_text(body)
        entries.append(f"{name} = {package}.{name}:export")
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n"
    )
    info.joinpath("entry_points.txt").write_text("\n".join(entries) + "\n")
    # --8<-- [end:distribution]


PLUGINS = {
    "csv_out": "def export(rows):\n    return 'csv'\n",
    "json_out": "def export(rows):\n    return 'json'\n",
    "broken": "raise RuntimeError('needs a licence server')\n",
}


def imported_of(modules: list[str]) -> list[str]:
    return [module for module in modules if module in sys.modules]


def show_discover() -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        package = "exporters_demo"
        install_distribution(Path(folder), package, PLUGINS)
        sys.path.insert(0, folder)
        try:
            modules = [f"{package}.{name}" for name in sorted(PLUGINS)]
            found = importlib.metadata.entry_points(group=GROUP)
            lines = [f"entry points in {GROUP}: {', '.join(sorted(found.names))}"]
            lines.append(f"  plugin modules imported: {len(imported_of(modules))}")
            report = load_plugins(GROUP)
            lines.append(f"  loaded: {', '.join(sorted(report.loaded))}")
            for name, error in sorted(report.failed.items()):
                lines.append(f"  failed: {name} ({error})")
            for module in modules:
                sys.modules.pop(module, None)
            parent = importlib.import_module(package)
            names = sorted(m.name for m in pkgutil.iter_modules(parent.__path__))
            lines.append(f"pkgutil.iter_modules: {', '.join(names)}")
            lines.append(f"  plugin modules imported: {len(imported_of(modules))}")
            exports = []
            for name in names:  # the only way to learn what a module offers
                try:
                    plugin = importlib.import_module(f"{package}.{name}")
                except Exception:
                    continue
                if hasattr(plugin, "export"):
                    exports.append(name)
            lines.append(f"  after reading each one: {', '.join(exports)}")
            lines.append(f"  plugin modules run: {len(names)}")
        finally:
            sys.path.remove(folder)
            for name in [package, *(f"{package}.{n}" for n in PLUGINS)]:
                sys.modules.pop(name, None)
        return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "file": show_file,
                "threads": show_threads,
                "find-spec": show_find_spec,
                "discover": show_discover,
            }
        )
    )
