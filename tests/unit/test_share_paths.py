"""A share mounted at another path on this machine: studio paths are mapped to local ones."""

from pathlib import Path

import pytest

from batchdesk.errors import KnownError
from batchdesk.settings import Settings
from batchdesk.storage.share_paths import SharePaths


def test_paths_under_the_studio_prefix_are_found_under_the_local_one() -> None:
    paths = SharePaths.parse("/mnt/renders=/media/share")

    assert paths.to_local("/mnt/renders/batchdesk") == Path("/media/share/batchdesk")
    assert paths.to_local("/mnt/renders") == Path("/media/share")
    assert paths.to_local("/mnt/renders-old/batchdesk") == Path("/mnt/renders-old/batchdesk")
    assert paths.to_local("/srv/other") == Path("/srv/other")


def test_a_studio_path_written_the_windows_way_is_found_under_a_linux_mount() -> None:
    # A studio whose admin set the store from a Windows workstation (R:\batchdesk), read by a
    # Linux render node that mounts the same share at /mnt/renders.
    paths = SharePaths.parse("R:\\=/mnt/renders")

    assert paths.to_local("R:\\batchdesk\\ab\\cd") == Path("/mnt/renders/batchdesk/ab/cd")
    assert paths.to_local("r:\\batchdesk") == Path("/mnt/renders/batchdesk")  # drives ignore case
    assert paths.to_local("S:\\batchdesk") == Path("S:\\batchdesk")


def test_no_mapping_leaves_paths_as_they_are() -> None:
    assert SharePaths.parse(None).to_local("/mnt/renders/x") == Path("/mnt/renders/x")
    assert SharePaths.parse("").describe() is None


def test_a_mapping_without_both_sides_is_refused_with_an_example() -> None:
    with pytest.raises(KnownError, match="STUDIO_PATH=LOCAL_PATH"):
        SharePaths.parse("/mnt/renders")
    with pytest.raises(KnownError, match="file_store_mapping"):
        Settings.from_dict({"file_store_mapping": "=/media/share"})


def test_the_mapping_is_a_local_setting() -> None:
    settings = Settings.from_dict({"file_store_mapping": "/mnt/renders=/media/share"})

    assert settings.share_paths.to_local("/mnt/renders/a") == Path("/media/share/a")
