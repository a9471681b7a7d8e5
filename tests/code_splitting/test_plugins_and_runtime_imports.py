"""Tests for snippets/code_splitting/plugins_and_runtime_imports/.

Everything runs on the interpreter's own importlib. The plugin distribution is
a wheel built here (a zip with a ``.dist-info``) and installed by pip with
``--no-index --target`` into a temporary folder, the files ``importlib.metadata``
reads in any environment.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import platform
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from snippets.code_splitting.plugins_and_runtime_imports import (
    PathLoader,
    can_import,
    load_from_path,
    load_plugins,
)
from snippets.code_splitting.plugins_and_runtime_imports.demo import (
    GROUP,
    PLUGINS,
    install_distribution,
    load_concurrently,
    load_without_registering,
    runs_of,
    write_parent_package,
    write_plugin_file,
)
from tools.errors import ErrorRecorder

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def clean_modules() -> Iterator[None]:
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


# --------------------------------------------------------------------------- #
# Loading a module from a file path
# --------------------------------------------------------------------------- #


def test_without_sys_modules_a_dataclass_in_the_file_fails(
    tmp_path: Path, error_record: ErrorRecorder, clean_modules: None
) -> None:
    path = write_plugin_file(tmp_path)
    name = f"naive_{tmp_path.name}"
    with pytest.raises(AttributeError) as caught:
        load_without_registering(name, path)
    assert str(caught.value).startswith("'NoneType' object has no attribute '__dict__'")
    assert runs_of(path) == 1  # the body ran up to the @dataclass
    # The message without the "Did you mean: '__dir__'?" that 3.12's
    # traceback adds: one record for every version.
    error_record(
        f"AttributeError: {caught.value}",
        id="dataclass-without-sys-modules",
        component="CPython",
        version=platform.python_version(),
    )


def test_without_sys_modules_pickle_cannot_find_the_class(
    tmp_path: Path, clean_modules: None
) -> None:
    path = tmp_path / "plain.py"
    path.write_text(
        "class Row:\n    pass\n\n\ndef dump(row):\n"
        "    import pickle\n    return pickle.dumps(row)\n"
    )
    module = load_without_registering(f"plain_{tmp_path.name}", path)
    with pytest.raises(Exception) as caught:
        module.dump(module.Row())
    assert type(caught.value).__name__ == "PicklingError"
    registered = load_from_path(f"plain2_{tmp_path.name}", path)
    assert registered.dump(registered.Row())


def test_the_recipe_loads_and_pickles(tmp_path: Path, clean_modules: None) -> None:
    path = write_plugin_file(tmp_path)
    name = f"recipe_{tmp_path.name}"
    module = load_from_path(name, path)
    assert sys.modules[name] is module
    row = module.Row("north", 3)
    assert module.roundtrip(row) == row


def test_two_names_for_one_file_are_two_modules(
    tmp_path: Path, clean_modules: None
) -> None:
    path = write_plugin_file(tmp_path)
    first = load_from_path(f"a_{tmp_path.name}", path)
    second = load_from_path(f"b_{tmp_path.name}", path)
    assert runs_of(path) == 2
    assert first.Row is not second.Row
    assert not isinstance(first.Row("x", 1), second.Row)


def test_a_file_that_raises_leaves_no_half_module_behind(
    tmp_path: Path, clean_modules: None
) -> None:
    path = tmp_path / "poison.py"
    path.write_text("VALUE = 1\nraise RuntimeError('bad plugin')\n")
    name = f"poison_{tmp_path.name}"
    with pytest.raises(RuntimeError, match="bad plugin"):
        load_from_path(name, path)
    assert name not in sys.modules


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_from_path(f"missing_{tmp_path.name}", tmp_path / "missing.py")


# --------------------------------------------------------------------------- #
# Two threads, one plugin file
# --------------------------------------------------------------------------- #


def test_two_threads_run_an_unguarded_file_twice(
    tmp_path: Path, clean_modules: None
) -> None:
    path = write_plugin_file(tmp_path, f"t_{tmp_path.name}")
    modules = load_concurrently(path, None)
    assert len(modules) == 2
    assert runs_of(path) == 2
    assert modules[0] is not modules[1]


def test_path_loader_runs_the_file_once(tmp_path: Path, clean_modules: None) -> None:
    path = write_plugin_file(tmp_path, f"t_{tmp_path.name}")
    loader = PathLoader()
    modules = load_concurrently(path, loader)
    assert len(modules) == 2
    assert runs_of(path) == 1
    assert modules[0] is modules[1]
    assert loader.load(path) is modules[0]
    assert runs_of(path) == 1


def test_path_loader_holds_the_second_caller_until_the_first_is_done(
    tmp_path: Path, clean_modules: None
) -> None:
    """The second caller never sees a half-built module: it waits on the lock."""
    gate = threading.Event()
    inside = threading.Event()
    sys.modules[f"gate_{tmp_path.name}"] = type(sys)("gate")
    sys.modules[f"gate_{tmp_path.name}"].gate = gate  # type: ignore[attr-defined]
    sys.modules[f"gate_{tmp_path.name}"].inside = inside  # type: ignore[attr-defined]
    path = tmp_path / "slow.py"
    path.write_text(
        f"import gate_{tmp_path.name} as g\ng.inside.set()\n"
        "assert g.gate.wait(10)\nREADY = True\n"
    )
    loader = PathLoader()
    got: list[object] = []
    first = threading.Thread(target=lambda: got.append(loader.load(path)))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=lambda: got.append(loader.load(path)))
    second.start()
    second.join(timeout=0.2)
    assert second.is_alive()  # waiting for the load in flight
    gate.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert len(got) == 2 and got[0] is got[1]
    assert got[0].READY  # type: ignore[attr-defined]


def test_path_loader_retries_after_a_failed_load(
    tmp_path: Path, clean_modules: None
) -> None:
    path = tmp_path / "flaky.py"
    path.write_text("raise RuntimeError('first deploy was broken')\n")
    loader = PathLoader()
    with pytest.raises(RuntimeError):
        loader.load(path)
    path.write_text("VALUE = 2\n")
    importlib.invalidate_caches()
    assert loader.load(path).VALUE == 2


# --------------------------------------------------------------------------- #
# Can it be imported? find_spec
# --------------------------------------------------------------------------- #


def test_find_spec_imports_the_parent_but_not_the_module(
    tmp_path: Path, clean_modules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"fs_{tmp_path.name}"
    write_parent_package(tmp_path, package)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert can_import(package)
    assert package not in sys.modules
    assert can_import(f"{package}.heavy")  # heavy.py raises SystemExit if run
    assert package in sys.modules
    assert f"{package}.heavy" not in sys.modules
    assert not can_import(f"{package}.absent")


def test_find_spec_raises_for_a_missing_parent() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_pkg"):
        importlib.util.find_spec("no_such_pkg.sub")
    assert importlib.util.find_spec("no_such_pkg") is None
    assert can_import("no_such_pkg.sub") is False


def test_try_import_runs_the_body(tmp_path: Path, clean_modules: None) -> None:
    package = f"ti_{tmp_path.name}"
    write_parent_package(tmp_path, package)
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(SystemExit, match="body ran"):
            importlib.import_module(f"{package}.heavy")
    finally:
        sys.path.remove(str(tmp_path))


# --------------------------------------------------------------------------- #
# Entry points from an installed distribution
# --------------------------------------------------------------------------- #


def build_wheel(folder: Path, package: str) -> Path:
    """A pure-Python wheel with PLUGINS and their entry points."""
    info = f"{package}-1.0.dist-info"
    files = {f"{package}/__init__.py": ""}
    files |= {f"{package}/{name}.py": body for name, body in PLUGINS.items()}
    entries = "".join(f"{n} = {package}.{n}:export\n" for n in sorted(PLUGINS))
    files[f"{info}/entry_points.txt"] = f"[{GROUP}]\n{entries}"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n"
    )
    files[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: handmade\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={b64},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{package}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``pip install --no-index --target``: a real installed distribution."""
    root = tmp_path_factory.mktemp("dist")
    package = "pip_exporters"
    wheel = build_wheel(root, package)
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    sys.path.insert(0, str(target))
    yield package
    sys.path.remove(str(target))
    for name in [n for n in sys.modules if n.startswith(package)]:
        del sys.modules[name]


def test_pip_installed_distribution_has_the_entry_points(installed: str) -> None:
    dist = importlib.metadata.distribution(installed)
    assert dist.version == "1.0"
    mine = [ep for ep in dist.entry_points if ep.group == GROUP]
    assert sorted(ep.name for ep in mine) == sorted(PLUGINS)


def test_entry_points_import_nothing_until_load(installed: str) -> None:
    found = importlib.metadata.entry_points(group=GROUP)
    ours = [ep for ep in found if ep.value.startswith(installed)]
    assert sorted(ep.name for ep in ours) == sorted(PLUGINS)
    assert not [n for n in sys.modules if n.startswith(f"{installed}.")]
    csv = next(ep for ep in ours if ep.name == "csv_out")
    assert csv.load()([]) == "csv"
    assert f"{installed}.csv_out" in sys.modules
    assert f"{installed}.json_out" not in sys.modules


def test_a_poison_plugin_is_reported_and_the_others_load(installed: str) -> None:
    report = load_plugins(GROUP)
    assert sorted(report.loaded) == ["csv_out", "json_out"]
    assert report.failed == {"broken": "RuntimeError: needs a licence server"}


def test_a_missing_attribute_is_reported_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_modules: None
) -> None:
    package = f"attr_{tmp_path.name}"
    install_distribution(tmp_path, package, {"typo": "def exprot(rows):\n    pass\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    report = load_plugins(GROUP, names=["typo"])
    assert list(report.failed) == ["typo"]
    assert report.failed["typo"].startswith("AttributeError")


def test_the_dict_interface_is_gone_in_3_12(installed: str) -> None:
    everything = importlib.metadata.entry_points()
    if sys.version_info >= (3, 12):
        assert type(everything).__name__ == "EntryPoints"
        with pytest.raises(KeyError):
            everything[GROUP]  # looks up an entry point *named* GROUP
        assert len(everything.select(group=GROUP)) == len(PLUGINS)
    else:
        assert type(everything).__name__ == "SelectableGroups"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert len(everything[GROUP]) == len(PLUGINS)
        assert "SelectableGroups dict interface is deprecated. Use select." in [
            str(w.message) for w in caught
        ]
