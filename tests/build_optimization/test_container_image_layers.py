"""Tests for snippets/build_optimization/container_image_layers/.

Real image builds on this machine, with no registry and no network: Docker's
legacy builder (`DOCKER_BUILDKIT=0`, the `docker` fixture's local base image)
for layer order, and Debian's buildah for `RUN --mount=type=cache`. The
dependencies are a folder of wheels written by project.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snippets.build_optimization.container_image_layers import (
    DOCKERFILES,
    edit_source,
    write_project,
)
from snippets.build_optimization.container_image_layers.demo import (
    MODULES,
    PACKAGES,
    builds_counted,
    edit_and_rebuild,
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
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    write_project(root, PACKAGES, MODULES)
    return root


@pytest.fixture(scope="module")
def builds(docker: str, project: Path) -> dict[str, tuple[Build, Build]]:
    """(cold, after a source edit) for each layer order."""
    return {
        order: edit_and_rebuild(project, order)
        for order in ("source first", "deps first")
    }


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_dockerfiles_pass_hadolint(name: str) -> None:
    hadolint = str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILES[name])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_source_first_reinstalls_every_dependency_after_a_source_edit(
    builds: dict[str, tuple[Build, Build]],
) -> None:
    cold, rebuild = builds["source first"]
    assert cold.install_ran and rebuild.install_ran
    # only WORKDIR came from the cache: `COPY . .` took the edit, so pip and
    # every step after it ran again (ARG and FROM print no "Using cache")
    assert rebuild.cached == 1 < builds["deps first"][1].cached


def test_deps_first_reuses_the_install_layer_after_a_source_edit(
    builds: dict[str, tuple[Build, Build]],
) -> None:
    cold, rebuild = builds["deps first"]
    assert cold.install_ran and not rebuild.install_ran
    # every step up to the install came from the cache (ARG and FROM print no
    # "Using cache"; the source COPY and the CMD after it ran again)
    assert rebuild.cached >= rebuild.steps - 4


def test_deps_first_reinstalls_when_the_lock_file_changes(
    docker: str, project: Path
) -> None:
    tag = unique_tag("layers")
    requirements = project / "requirements.txt"
    pins = requirements.read_text()
    fresh(project, tag)
    images = []
    try:
        images.append(docker_build(project, DOCKERFILES["deps first"], tag).image)
        requirements.write_text(requirements.read_text() + "# a new pin\n")
        edit_source(project, 3)
        changed = docker_build(project, DOCKERFILES["deps first"], tag)
        images.append(changed.image)
    finally:
        requirements.write_text(pins)
        edit_source(project, 1)
        remove_images(tag, *images)
    assert changed.install_ran


def test_the_legacy_builder_refuses_a_cache_mount(docker: str, project: Path) -> None:
    tag = unique_tag("legacy")
    with pytest.raises(RuntimeError) as failed:
        docker_build(project, DOCKERFILES["cache mount"], tag)
    # the steps before the failing one left their layers: remove those too
    layers = re.findall(r"---> ([0-9a-f]{12})\n", str(failed.value))
    remove_images(tag, *reversed(layers[1:]))  # not the first: the base image
    assert (
        "the --mount option requires BuildKit. Refer to "
        "https://docs.docker.com/go/buildkit/ to learn how to build images "
        "with BuildKit enabled"
    ) in str(failed.value)


@pytest.fixture
def buildah(docker: str) -> Iterator[None]:
    try:
        from snippets.support.build_optimization_images import buildah_base

        buildah_base()
    except ServiceUnavailable as error:
        unavailable("buildah", str(error))
    yield


def test_a_cache_mount_survives_a_rebuilt_layer_and_stays_out_of_the_image(
    buildah: None, tmp_path: Path
) -> None:
    write_project(tmp_path, PACKAGES, MODULES)
    tag = unique_tag("cache-mount")
    containerfile = DOCKERFILES["cache mount"]
    requirements = tmp_path / "requirements.txt"
    fresh(tmp_path, tag)
    try:
        first = buildah_bud(tmp_path, containerfile, tag)
        again = buildah_bud(tmp_path, containerfile, tag)
        requirements.write_text(requirements.read_text() + "# a new pin\n")
        changed = buildah_bud(tmp_path, containerfile, tag)
        assert first.install_ran and not again.install_ran and changed.install_ran
        # the counter file in the cache mount was kept from the first build (it
        # may have grown more: any build on the machine with the same cache id,
        # the target path by default, shares the cache)
        assert builds_counted(changed) > builds_counted(first) >= 1
        assert not in_image(tag, "/root/.cache/pip/builds")
        assert in_image(tag, "/usr/local/lib/python3.11/dist-packages/dependency_0")
    finally:
        remove_images(tag)
