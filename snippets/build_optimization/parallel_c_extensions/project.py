"""A small package with several C extensions, written into a directory.

Each extension ``demo_pkg.extN`` has a module file (``mod.c``, the only file
that includes ``Python.h``) and a few ``workM.c`` files of plain C whose
nested macros take gcc a noticeable moment to compile at ``-O3``. The plain C
files also build as a static library with the ``CMakeLists.txt`` written
beside ``setup.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SETUP_CFG", "SETUP_PY", "Project", "write_project"]

# --8<-- [start:setup_py]
SETUP_PY = """\
from setuptools import Extension, setup

N, FILES = {extensions}, {files}
setup(
    name="demo-pkg",
    version="1.0",
    packages=["demo_pkg"],
    ext_modules=[
        Extension(
            f"demo_pkg.ext{{i}}",
            sources=[f"src/ext{{i}}/mod.c"]
            + [f"src/ext{{i}}/work{{j}}.c" for j in range(FILES)],
        )
        for i in range(N)
    ],
)
"""
# --8<-- [end:setup_py]

# --8<-- [start:setup_cfg]
SETUP_CFG = """\
[build_ext]
parallel = 4
"""
# --8<-- [end:setup_cfg]

CMAKE_LISTS = """\
cmake_minimum_required(VERSION 3.20)
project(demo_work C)
file(GLOB WORK CONFIGURE_DEPENDS src/*/work*.c)
add_library(work STATIC ${WORK})
"""

WORK_C = """\
#define ROUND(x, a, b) x ^= x << a; x ^= x >> b; x *= 2654435761u;
#define ROUND4(x, a, b) ROUND(x, a, b) ROUND(x, b, a) ROUND(x, a, a) ROUND(x, b, b)
#define ROUND16(x, a, b) ROUND4(x, a, b) ROUND4(x, b, a) ROUND4(x, a, 3) ROUND4(x, 5, b)

{functions}
unsigned work_{ext}_{file}(unsigned x) {{
    return {calls};
}}
"""

MOD_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

{declarations}

static PyObject *run(PyObject *self, PyObject *arg) {{
    unsigned long x = PyLong_AsUnsignedLong(arg);
    if (x == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    return PyLong_FromUnsignedLong({calls});
}}

static PyMethodDef methods[] = {{{{"run", run, METH_O, NULL}}, {{NULL}}}};
static struct PyModuleDef module = {{
    PyModuleDef_HEAD_INIT, "ext{ext}", NULL, -1, methods}};

PyMODINIT_FUNC PyInit_ext{ext}(void) {{ return PyModule_Create(&module); }}
"""


@dataclass(frozen=True)
class Project:
    """Where the package is, and its shape."""

    root: Path
    extensions: int
    files: int

    @property
    def compiles(self) -> int:
        """Compiler runs in a full build: every work file plus one mod.c each."""
        return self.extensions * (self.files + 1)


def write_project(
    root: Path, extensions: int = 4, files: int = 2, weight: int = 6
) -> Project:
    """Write the package: ``extensions`` extensions of ``files`` work files.

    ``weight`` is how many heavy functions each work file has: the knob for
    how long gcc takes per file.
    """
    (root / "demo_pkg").mkdir(parents=True, exist_ok=True)
    (root / "demo_pkg" / "__init__.py").write_text("")
    (root / "setup.py").write_text(SETUP_PY.format(extensions=extensions, files=files))
    (root / "CMakeLists.txt").write_text(CMAKE_LISTS)
    for ext in range(extensions):
        src = root / "src" / f"ext{ext}"
        src.mkdir(parents=True, exist_ok=True)
        for file in range(files):
            functions = "\n".join(
                (
                    f"static unsigned f{k}(unsigned x) {{\n"
                    + "".join(
                        f"    ROUND16(x, {1 + (k + r) % 13}, {2 + r % 11})\n"
                        for r in range(12)
                    )
                    + "    return x;\n}"
                )
                for k in range(weight)
            )
            calls = " ^ ".join(f"f{k}(x)" for k in range(weight))
            (src / f"work{file}.c").write_text(
                WORK_C.format(functions=functions, calls=calls, ext=ext, file=file)
            )
        declarations = "\n".join(
            f"unsigned work_{ext}_{file}(unsigned x);" for file in range(files)
        )
        calls = " ^ ".join(f"work_{ext}_{file}((unsigned)x)" for file in range(files))
        (src / "mod.c").write_text(
            MOD_C.format(declarations=declarations, calls=calls, ext=ext)
        )
    return Project(root, extensions, files)
