"""A small application and its dependencies as a local wheel folder.

No package index is reachable from inside the builds, so the dependencies are
wheels written here, in the folder `pip install --no-index --find-links`
reads: pure-Python packages with enough modules that installing them (unpack,
byte-compile) takes measurable time, as a real dependency set does.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

__all__ = ["DOCKERFILES", "edit_source", "make_wheel", "write_project"]

HERE = Path(__file__).parent
DOCKERFILES = {
    "source first": HERE / "source-first.Dockerfile",
    "deps first": HERE / "deps-first.Dockerfile",
    "cache mount": HERE / "cache-mount.Containerfile",
}
MODULE = "".join(
    f"def function_{n}(value: int) -> int:\n    return value * {n} + {n}\n\n\n"
    for n in range(40)
)


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, modules: int) -> Path:
    """Write `name-version-py3-none-any.whl` with `modules` modules in it."""
    dist = f"{name}-{version}"
    files: dict[str, bytes] = {f"{name}/__init__.py": b'"""A dependency."""\n'}
    for number in range(modules):
        files[f"{name}/module_{number}.py"] = MODULE.encode()
    files[f"{dist}.dist-info/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    ).encode()
    files[f"{dist}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = "".join(
        f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items()
    )
    files[f"{dist}.dist-info/RECORD"] = (
        record + f"{dist}.dist-info/RECORD,,\n"
    ).encode()
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            archive.writestr(info, data)
    return wheel


def write_project(root: Path, packages: int = 3, modules: int = 300) -> None:
    """app.py, a pinned requirements.txt and the wheels/ folder it names."""
    (root / "wheels").mkdir(parents=True)
    names = [f"dependency_{number}" for number in range(packages)]
    for name in names:
        make_wheel(root / "wheels", name, "1.0", modules)
    (root / "requirements.txt").write_text("".join(f"{n}==1.0\n" for n in names))
    (root / "app.py").write_text('print("version 1")\n')


def edit_source(root: Path, version: int) -> None:
    """The one-line source edit of a commit."""
    (root / "app.py").write_text(f'print("version {version}")\n')
