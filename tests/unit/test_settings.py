"""Settings load, save and validate; BATCHDESK_HOME moves every local path."""

import json
from pathlib import Path

import pytest

from batchdesk.errors import InvalidRequest, KnownError
from batchdesk.settings import MAX_WORKER_THREADS, AppPaths, Settings


def test_a_missing_settings_file_gives_the_defaults(tmp_path: Path) -> None:
    assert Settings.load(tmp_path / "settings.json") == Settings()


def test_settings_round_trip_and_keep_keys_from_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "config" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"future_option": "keep me"}))
    settings = Settings(database_url="postgresql://anna@db/x", fallback_prefix="OTHER")
    settings.save(path)
    assert Settings.load(path) == settings
    assert json.loads(path.read_text())["future_option"] == "keep me"


def test_a_password_never_reaches_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    Settings(database_url="postgresql://anna:s3cret@db/x").save(path)
    assert "s3cret" not in path.read_text()


def test_a_broken_settings_file_is_reported_with_its_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{\n  "database_url": \n}')
    with pytest.raises(KnownError, match=r"settings.json is not valid JSON \(line 3\)"):
        Settings.load(path)


def test_a_bad_prefix_pattern_in_settings_is_refused_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"prefix_pattern": "([A-Z"}))
    with pytest.raises(InvalidRequest):
        Settings.load(path)


def test_batchdesk_home_moves_every_local_path(tmp_path: Path) -> None:
    paths = AppPaths.from_environment({"BATCHDESK_HOME": str(tmp_path)})
    for folder in (paths.config_dir, paths.data_dir, paths.log_dir, paths.pgdata):
        assert folder.is_relative_to(tmp_path)


def test_new_fields_round_trip_with_their_defaults_and_changed(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert Settings().run_jobs is True
    assert Settings().notifications is True
    changed = Settings(run_jobs=False, notifications=False, delivery_folder="/mnt/deliveries")
    changed.save(path)
    stored = json.loads(path.read_text())
    assert stored["run_jobs"] is False
    assert stored["notifications"] is False
    assert Settings.load(path) == changed


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "true"])
def test_a_switch_must_be_json_true_or_false(tmp_path: Path, value: object) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"run_jobs": value}))
    expected = rf"The setting 'run_jobs' in .*settings.json must be true or false, not {value!r}\."
    with pytest.raises(KnownError, match=expected):
        Settings.load(path)


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("worker_threads", True, "a whole number"),
        ("worker_threads", "4", "a whole number"),
        ("worker_threads", None, "a whole number"),
        ("fallback_prefix", 7, "text"),
        ("delivery_folder", False, "text or null"),
    ],
)
def test_numbers_and_text_are_refused_in_the_wrong_type(key: str, value: object, kind: str) -> None:
    with pytest.raises(KnownError, match=rf"The setting {key!r} must be {kind}, not "):
        Settings.from_dict({key: value})


def test_optional_settings_may_be_null() -> None:
    assert Settings.from_dict({"database_url": None, "delivery_folder": None}) == Settings()


@pytest.mark.parametrize("value", [0, -1, MAX_WORKER_THREADS + 1, 100_000])
def test_worker_threads_out_of_range_are_refused_with_a_sentence(
    tmp_path: Path, value: int
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"worker_threads": value}))
    expected = (
        rf"The setting 'worker_threads' in .*settings.json must be a whole number from 1 to "
        rf"{MAX_WORKER_THREADS}, not {value:,}\."
    )
    with pytest.raises(KnownError, match=expected):
        Settings.load(path)


@pytest.mark.parametrize("value", [1, MAX_WORKER_THREADS])
def test_worker_threads_from_1_to_the_cap_are_kept(value: int) -> None:
    assert Settings.from_dict({"worker_threads": value}).worker_threads == value
