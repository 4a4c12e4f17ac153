"""The composition root: settings, paths and the database, built once and passed down."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.settings import AppPaths, Settings
from batchdesk.storage import migrations_runner, pipeline_store
from batchdesk.storage.database import Database, resolve_target


@dataclass(frozen=True)
class AppContext:
    paths: AppPaths
    settings: Settings
    database: Database


def load_settings(environ: dict[str, str] | None = None) -> tuple[AppPaths, Settings]:
    paths = AppPaths.from_environment(environ)
    return paths, Settings.load(paths.settings_file)


def open_database(
    database_url: str | None,
    env: dict[str, str],
    *,
    upgrade: bool = True,
    on_status: Callable[[str], None] | None = None,
) -> AppContext:
    """Open the configured database and upgrade its schema unless told not to; caller closes it."""
    paths, settings = load_settings(env)
    target = resolve_target(database_url, env, settings)
    database = Database.open(target, paths, on_status)
    database.share_paths = settings.share_paths
    try:
        if upgrade:
            migrations_runner.upgrade(database)
            if database.access is None or database.access.may_write:  # not for a viewer
                pipeline_store.install_missing(database, default_pipelines())
    except BaseException:
        database.close()
        raise
    return AppContext(paths, settings, database)


@contextmanager
def open_app(
    database_url: str | None = None,
    *,
    upgrade: bool = True,
    on_status: Callable[[str], None] | None = None,
    environ: dict[str, str] | None = None,
) -> Iterator[AppContext]:
    """Open the configured database (upgrading its schema unless told not to); close it after."""
    env = dict(os.environ) if environ is None else environ
    context = open_database(database_url, env, upgrade=upgrade, on_status=on_status)
    try:
        yield context
    finally:
        context.database.close()
