"""The cases the container-image-layers page shows.

    python -m snippets.build_optimization.container_image_layers.demo rebuild
    python -m snippets.build_optimization.container_image_layers.demo cache_mount

`rebuild` builds each Dockerfile with Docker's legacy builder, edits one line
of source, and builds again; `cache_mount` builds the Containerfile with
buildah three times. Both build on a local base image with no network; the
dependencies are the project's wheel folder (project.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snippets.build_optimization.container_image_layers import (
    DOCKERFILES,
    edit_source,
    write_project,
)
from snippets.support.build_optimization_images import (
    Build,
    buildah_bud,
    docker_build,
    fresh,
    in_image,
    remove_images,
    unique_tag,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

PACKAGES, MODULES = 3, 100


def ran(build: Build) -> str:
    return "ran" if build.install_ran else "from the cache"


def edit_and_rebuild(root: Path, order: str) -> tuple[Build, Build]:
    """Cold build, then the same build after a one-line source edit."""
    tag = unique_tag("layers")
    requirements = root / "requirements.txt"
    pins = requirements.read_text()
    fresh(root, tag)
    built: list[Build] = []
    try:
        built.append(docker_build(root, DOCKERFILES[order], tag))
        edit_source(root, 2)
        built.append(docker_build(root, DOCKERFILES[order], tag))
        return built[0], built[1]
    finally:
        requirements.write_text(pins)
        edit_source(root, 1)
        remove_images(tag, *(build.image for build in built))


def show_rebuild() -> list[str]:
    lines = [
        f"{PACKAGES} wheels of {MODULES} modules; DOCKER_BUILDKIT=0 docker build",
        f"{'Dockerfile':<14}{'cold build':<16}after a one-line source edit",
    ]
    rebuilds = {}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_project(root, PACKAGES, MODULES)
        for order in ("source first", "deps first"):
            cold, rebuild = edit_and_rebuild(root, order)
            rebuilds[order] = rebuild
            lines.append(f"{order:<14}{'pip ' + ran(cold):<16}pip {ran(rebuild)}")
    lines.append("steps the rebuild took from the cache:")
    for order, rebuild in rebuilds.items():
        lines.append(f"  {order:<14}{rebuild.cached} of {rebuild.steps}")
    return lines


def builds_counted(build: Build) -> int:
    """How many `build` lines the step printed: the counter in the cache."""
    return sum(line.strip() == "build" for line in build.output.splitlines())


def show_cache_mount() -> list[str]:
    tag = unique_tag("cache-mount")
    containerfile = DOCKERFILES["cache mount"]
    lines = [f"buildah bud --layers -f {containerfile.name}"]
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_project(root, PACKAGES, MODULES)
        requirements = root / "requirements.txt"
        fresh(root, tag)  # no layer of an earlier run answers the first build
        try:
            first = buildah_bud(root, containerfile, tag)
            requirements.write_text(requirements.read_text() + "# a new pin\n")
            second = buildah_bud(root, containerfile, tag)
            third = buildah_bud(root, containerfile, tag)
            cache_in_image = in_image(tag, "/root/.cache/pip/builds")
            installed = in_image(tag, "/usr/local/lib/python3.11/dist-packages")
        finally:
            remove_images(tag)
    # Another build on the machine may share the cache (its id is the target
    # path) and count too: what matters is that the first build's line is kept.
    kept = builds_counted(second) > builds_counted(first) >= 1
    return [
        *lines,
        f"first build:                    pip install {ran(first)}",
        f"requirements.txt edited:        pip install {ran(second)}, "
        f"the cache kept the first build's counter: {'yes' if kept else 'no'}",
        f"nothing changed:                pip install {ran(third)}",
        f"the cache in the image:         {'yes' if cache_in_image else 'no'}",
        f"the packages in the image:      {'yes' if installed else 'no'}",
    ]


if __name__ == "__main__":
    sys.exit(run_cases({"rebuild": show_rebuild, "cache_mount": show_cache_mount}))
