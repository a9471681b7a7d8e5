"""Parallel builds that do not race: the Makefiles, CMakeLists.txt and runs.

The page's build files live beside this package: ``header_race.mk`` (a
generated header nobody declared), ``outdir_race.mk`` (an output directory
ordered only by the goal list), ``fixed.mk`` (every prerequisite declared,
an order-only directory, ``-MMD -MP`` dependency files) and
``src/CMakeLists.txt`` (a custom command's header, with and without the
declaration that Ninja needs). `make_build` and `ninja_build` run a clean
build with the real tools and keep its error lines.
"""

from snippets.build_optimization.make_races.builds import (
    HERE,
    Build,
    Runner,
    errors,
    make_build,
    ninja_build,
    outputs,
    plain_runner,
    prepare_sources,
)

__all__ = [
    "HERE",
    "Build",
    "Runner",
    "errors",
    "make_build",
    "ninja_build",
    "outputs",
    "plain_runner",
    "prepare_sources",
]
